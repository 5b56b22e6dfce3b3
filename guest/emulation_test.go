package guest

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEmulationSignaturesMatchOnlyTheEmulationsStatesInALoggedDump(t *testing.T) {
	s := &EmulationSignatures{vmrunReturns: map[uint64]string{0xffffffffc046820c: "kvm_amd .noinstr.text+0x11c"}}
	dump := func(state string) string {
		return `time=2026-12-02T10:00:00Z level=WARN msg="state dump" vcpu=1 state="plugged=true running=true exits=9 ` + state + `"`
	}
	cases := []struct {
		name, log, want string
	}{
		{"a healthy dump", dump("rip=0xffffffff81c3a1b2 rflags=0x246 cr2=0x0 cr3=0x10a000 cr4=0x3506f0"), ""},
		{"CR3 outside guest RAM", dump("rip=0xffffffff81c3a1b2 rflags=0x246 cr2=0x0 cr3=0x1f2e4d000 (outside guest RAM) cr4=0x3506f0"), "CR3 0x1f2e4d000, outside guest RAM"},
		{"RIP at the KVM host's VMRUN return", dump("rip=0xffffffffc046820c rflags=0x246 cr2=0x0 cr3=0x10a000 cr4=0x3506f0"), "return from VMRUN (kvm_amd .noinstr.text+0x11c)"},
		{"a failed entry of a running vCPU", `level=ERROR msg="VM failed" err="vCPU 2: KVM_EXIT_FAIL_ENTRY: hardware entry failure reason 0xffffffffffffffff on host CPU 1 after 5301 exits"`, "vCPU 2's VM entry failed after it had run (5301 exits)"},
		{"a failed first entry is this VMM's", `msg="VM failed" err="vCPU 0: KVM_EXIT_FAIL_ENTRY: hardware entry failure reason 0x80000021 on host CPU 0 after 0 exits"`, ""},
		{"a triple fault carries no signature", `level=WARN msg="triple fault" vcpu=0 rip=0xfff0`, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := s.Match("time=x level=INFO msg=boot\n" + c.log + "\n")
			if c.want == "" && got != "" || !strings.Contains(got, c.want) {
				t.Errorf("Match = %q, want %q", got, c.want)
			}
		})
	}
	var none *EmulationSignatures
	if got := none.Match(cases[1].log); got != "" {
		t.Errorf("a nil EmulationSignatures (not in the KVM host) matched %q", got)
	}
}

func TestLoadEmulationSignaturesIsOffOutsideTheEmulatedKVMHost(t *testing.T) {
	t.Setenv(EnvKVMHost, "")
	if s := LoadEmulationSignatures(); s != nil {
		t.Errorf("LoadEmulationSignatures = %+v outside the KVM host, want nil", s)
	}
}

// TestVMRUNReturnsFindsEachVMRUNInATinyELFModule builds a minimal ELF64
// relocatable object (the only stand-in here: a module file written by the
// test) whose .noinstr.text holds two VMRUNs, and a sysfs-like sections
// directory saying where that section was loaded.
func TestVMRUNReturnsFindsEachVMRUNInATinyELFModule(t *testing.T) {
	dir := t.TempDir()
	text := []byte{0x90, 0x0f, 0x01, 0xd8, 0xc3, 0x0f, 0x01, 0xd8, 0x90}
	mod := filepath.Join(dir, "kvm_amd.ko")
	if err := os.WriteFile(mod, tinyELF(".noinstr.text", text), 0o644); err != nil {
		t.Fatal(err)
	}
	secs := filepath.Join(dir, "sections")
	if err := os.MkdirAll(secs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secs, ".noinstr.text"), []byte("0xffffffffc0414000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := vmrunReturns(mod, secs)
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64]string{0xffffffffc0414004: "kvm_amd .noinstr.text+0x4", 0xffffffffc0414008: "kvm_amd .noinstr.text+0x8"}
	if len(got) != len(want) {
		t.Fatalf("vmrunReturns = %v, want %v", got, want)
	}
	for a, w := range want {
		if got[a] != w {
			t.Errorf("at %#x: %q, want %q", a, got[a], w)
		}
	}
}

// tinyELF is an ELF64 little-endian relocatable with one executable
// PROGBITS section, name, holding code, and the section name table.
func tinyELF(name string, code []byte) []byte {
	shstr := append([]byte("\x00.shstrtab\x00"), append([]byte(name), 0)...)
	const ehsize, shentsize = 64, 64
	codeOff := uint64(ehsize)
	strOff := codeOff + uint64(len(code))
	shOff := (strOff + uint64(len(shstr)) + 7) &^ 7
	var b bytes.Buffer
	le := binary.LittleEndian
	ident := [16]byte{0x7f, 'E', 'L', 'F', 2, 1, 1}
	b.Write(ident[:])
	binary.Write(&b, le, uint16(1))    // ET_REL
	binary.Write(&b, le, uint16(0x3e)) // EM_X86_64
	binary.Write(&b, le, uint32(1))
	binary.Write(&b, le, uint64(0)) // entry
	binary.Write(&b, le, uint64(0)) // phoff
	binary.Write(&b, le, shOff)     // shoff
	binary.Write(&b, le, uint32(0)) // flags
	binary.Write(&b, le, uint16(ehsize))
	binary.Write(&b, le, uint16(0)) // phentsize
	binary.Write(&b, le, uint16(0)) // phnum
	binary.Write(&b, le, uint16(shentsize))
	binary.Write(&b, le, uint16(3)) // shnum
	binary.Write(&b, le, uint16(2)) // shstrndx
	b.Write(code)
	b.Write(shstr)
	for uint64(b.Len()) < shOff {
		b.WriteByte(0)
	}
	sh := func(nameOff uint32, typ uint32, flags, off, size uint64) {
		binary.Write(&b, le, nameOff)
		binary.Write(&b, le, typ)
		binary.Write(&b, le, flags)
		binary.Write(&b, le, uint64(0)) // addr
		binary.Write(&b, le, off)
		binary.Write(&b, le, size)
		binary.Write(&b, le, uint32(0)) // link
		binary.Write(&b, le, uint32(0)) // info
		binary.Write(&b, le, uint64(1)) // addralign
		binary.Write(&b, le, uint64(0)) // entsize
	}
	sh(0, 0, 0, 0, 0)                          // SHT_NULL
	sh(11, 1, 0x6, codeOff, uint64(len(code))) // PROGBITS, ALLOC|EXECINSTR
	sh(1, 3, 0, strOff, uint64(len(shstr)))    // STRTAB
	return b.Bytes()
}
