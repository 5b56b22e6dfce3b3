package boot

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/vmmdev/vmm/kvm"
	"github.com/vmmdev/vmm/vm/boot/boottest"
	"github.com/vmmdev/vmm/vm/layout"
	"github.com/vmmdev/vmm/vm/memory"
)

// unhex decodes hex written with spaces and newlines between bytes.
func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPVHStartInfoBytesAreStartInfoH(t *testing.T) {
	b, err := PVHStartInfo{
		CmdlineAddr: layout.CmdlineStart, RSDPAddr: layout.ACPIStart,
		InitrdAddr: 0x3fe0_0000, InitrdSize: 0x1b_0000,
		E820: E820Map(memory.BootRAM(layout.GiB)),
	}.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	// struct hvm_start_info (start_info.h): magic, version, flags,
	// nr_modules, modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr,
	// memmap_entries, reserved; then hvm_modlist_entry (paddr, size,
	// cmdline_paddr, reserved) at 0x7040 and hvm_memmap_table_entry (addr,
	// size, type, reserved) from 0x7080.
	want := unhex(t, `
		78c56e33 01000000 00000000 01000000  4070000000000000
		0000020000000000  00000e0000000000  8070000000000000
		04000000 00000000
		00000000 00000000
		0000e03f00000000 00001b0000000000 0000000000000000 0000000000000000
		00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000
		0000000000000000 00fc090000000000 01000000 00000000
		00000e0000000000 0000020000000000 02000000 00000000
		0000100000000000 0000f03f00000000 01000000 00000000
		000000e000000000 0000000100000000 02000000 00000000`)
	if !bytes.Equal(b, want) {
		t.Errorf("start info block:\n got %x\nwant %x", b, want)
	}
	if len(b) != layout.PVHMemmapStart-layout.PVHStartInfoStart+4*pvhMemmapEntrySize {
		t.Errorf("block of %d bytes", len(b))
	}
}

func TestPVHStartInfoLeavesAbsentThingsZero(t *testing.T) {
	b, err := PVHStartInfo{}.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	if le.Uint32(b[siMagic:]) != pvhStartMagic || le.Uint32(b[siVersion:]) != 1 {
		t.Errorf("magic %#x version %d", le.Uint32(b[siMagic:]), le.Uint32(b[siVersion:]))
	}
	for _, off := range []int{siNrModules, siModlistPaddr, siCmdlinePaddr, siRSDPPaddr, siMemmapPaddr, siMemmapEntries} {
		if b[off] != 0 {
			t.Errorf("field at %d is %#x, want 0 (not present)", off, b[off])
		}
	}
	if _, err := (PVHStartInfo{E820: make([]E820Entry, layout.PVHMemmapMax+1)}).Bytes(); err == nil {
		t.Error("a memory map longer than its room was accepted")
	}
}

func TestPVHGDTAndRegistersAreWhatPVHWants(t *testing.T) {
	g := PVHGDT()
	le := binary.LittleEndian
	for _, c := range []struct {
		name     string
		sel      int
		got, exp uint64
	}{
		{"32-bit code", SelectorCode, le.Uint64(g[SelectorCode:]), 0x00cf9b000000ffff},
		{"data", SelectorData, le.Uint64(g[SelectorData:]), 0x00cf93000000ffff},
		{"TSS", SelectorTSS, le.Uint64(g[SelectorTSS:]), 0x00008b0000000067},
	} {
		if c.got != c.exp {
			t.Errorf("%s descriptor at %#x: %#016x, want %#016x", c.name, c.sel, c.got, c.exp)
		}
	}
	// What KVM hands a fresh vCPU: CR0 with CD and NW, KVM's APIC base.
	s := PVHSregs(kvm.Sregs{CR0: 0x60000010, APICBase: 0xfee00900, EFER: eferLME, CR4: cr4PAE, CR3: 0x9000})
	if s.CR0 != cr0PE|cr0ET || s.CR4 != 0 || s.EFER != 0 || s.CR3 != 0 || s.APICBase != 0xfee00900 {
		t.Errorf("CR0 %#x CR4 %#x EFER %#x CR3 %#x APIC base %#x", s.CR0, s.CR4, s.EFER, s.CR3, s.APICBase)
	}
	if c := s.CS; c.Base != 0 || c.Limit != 0xffffffff || c.DB != 1 || c.L != 0 || c.Type != 0xb || c.Selector != SelectorCode {
		t.Errorf("CS %+v", c)
	}
	for name, d := range map[string]kvm.Segment{"DS": s.DS, "ES": s.ES, "SS": s.SS, "FS": s.FS, "GS": s.GS} {
		if d.Base != 0 || d.Limit != 0xffffffff || d.DB != 1 || d.Type != 3 || d.Present != 1 {
			t.Errorf("%s %+v", name, d)
		}
	}
	if tr := s.TR; tr.Base != 0 || tr.Limit != 0x67 || tr.Type != 0xb || tr.S != 0 || tr.Present != 1 {
		t.Errorf("TR %+v", tr)
	}
	if s.GDT.Base != layout.GDTStart || int(s.GDT.Limit) != len(g)-1 {
		t.Errorf("GDTR %+v", s.GDT)
	}
	r := Entry{Protocol: PVH, Addr: testEntry}.Regs()
	if r != (kvm.Regs{RIP: testEntry, RBX: layout.PVHStartInfoStart, RFLAGS: 2}) {
		t.Errorf("regs %+v", r)
	}
	if got := (Entry{Protocol: PVH}).Sregs(kvm.Sregs{}); got.CS.DB != 1 || got.CR0&cr0PG != 0 {
		t.Errorf("Entry.Sregs for PVH: %+v", got.CS)
	}
	if got := (Entry{Protocol: Linux64, Addr: 0x100200}); got.Regs() != Regs() || got.Sregs(kvm.Sregs{}).CS.L != 1 {
		t.Errorf("Entry for a bzImage: regs %+v", got.Regs())
	}
}

func TestLoadPVHWritesSegmentsStartInfoAndInitramfs(t *testing.T) {
	const ram = 256 * layout.MiB
	g, err := memory.Map(memory.BootRAM(ram))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	// Stale bytes where the bss goes: Load must clear them.
	if err := g.WriteAt(bytes.Repeat([]byte{0xee}, 0x3000), testKernelAt+0x20_0000); err != nil {
		t.Fatal(err)
	}
	img, err := ParseImage(FromBytes(testELF()))
	if err != nil {
		t.Fatal(err)
	}
	initrd := bytes.Repeat([]byte{0x42}, 3*layout.MiB+5)
	entry, err := Load(g, Payload{Image: img, Initramfs: FromBytes(initrd), Cmdline: "console=ttyS0",
		RAM: memory.BootRAM(ram), RSDPAddr: layout.ACPIStart})
	if err != nil {
		t.Fatal(err)
	}
	if entry != (Entry{Protocol: PVH, Addr: testEntry}) {
		t.Errorf("entry %+v", entry)
	}
	read := func(gpa uint64, n int) []byte {
		b := make([]byte, n)
		if err := g.ReadAt(b, gpa); err != nil {
			t.Fatal(err)
		}
		return b
	}
	if b := read(testKernelAt, 0x1000); !bytes.Equal(b, bytes.Repeat([]byte{0x90}, 0x1000)) {
		t.Error("segment 0 not written")
	}
	data := read(testKernelAt+0x20_0000, 0x3000)
	if !bytes.Equal(data[:0x800], bytes.Repeat([]byte{0xdd}, 0x800)) || !bytes.Equal(data[0x800:], make([]byte, 0x2800)) {
		t.Error("segment 1 not written with its bss cleared")
	}
	le := binary.LittleEndian
	si := read(layout.PVHStartInfoStart, PVHStartInfoSize)
	if le.Uint32(si[siMagic:]) != pvhStartMagic || le.Uint64(si[siCmdlinePaddr:]) != layout.CmdlineStart ||
		le.Uint64(si[siRSDPPaddr:]) != layout.ACPIStart || le.Uint32(si[siMemmapEntries:]) != 4 {
		t.Errorf("start info %x", si)
	}
	mod := read(layout.PVHModlistStart, pvhModlistEntrySize)
	addr, size := le.Uint64(mod[0:]), le.Uint64(mod[8:])
	if size != uint64(len(initrd)) || addr%layout.PageSize != 0 || addr+size > ram || addr < 250*layout.MiB {
		t.Errorf("initramfs at %#x, %d bytes", addr, size)
	}
	if !bytes.Equal(read(addr, len(initrd)), initrd) {
		t.Error("initramfs not written")
	}
	if got := read(layout.CmdlineStart, 14); string(got) != "console=ttyS0\x00" {
		t.Errorf("command line %q", got)
	}
	if !bytes.Equal(read(layout.GDTStart, 40), PVHGDT()) {
		t.Error("PVH GDT not written")
	}
}

func TestPVHWithoutCommandLineOrInitramfsSaysNone(t *testing.T) {
	g, err := memory.Map(memory.BootRAM(64 * layout.MiB))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	img, _ := ParseImage(FromBytes(testELF()))
	if _, err := Load(g, Payload{Image: img, RAM: memory.BootRAM(64 * layout.MiB)}); err != nil {
		t.Fatal(err)
	}
	si := make([]byte, PVHStartInfoSize)
	_ = g.ReadAt(si, layout.PVHStartInfoStart)
	le := binary.LittleEndian
	if le.Uint64(si[siCmdlinePaddr:]) != 0 || le.Uint32(si[siNrModules:]) != 0 || le.Uint64(si[siModlistPaddr:]) != 0 {
		t.Errorf("start info %x: a command line or module where there is none", si)
	}
}

func TestCheckPVHRefusesWhatDoesNotFit(t *testing.T) {
	ram := memory.BootRAM(64 * layout.MiB)
	// seg is an image with a segment at paddr and, after it, a small one
	// at 16 MiB with the entry.
	seg := func(paddr, size uint64) []byte {
		return boottest.ELF(boottest.Segment{Type: ptLoad, Paddr: paddr, Data: make([]byte, 0x10), MemSize: size},
			boottest.Segment{Type: ptLoad, Paddr: testKernelAt, Data: make([]byte, 0x1000)},
			boottest.Segment{Type: ptNote, Data: boottest.Note("Xen", 18, u64(testEntry), 4), Align: 4})
	}
	big := memory.BootRAM(layout.LowRAMEnd + layout.GiB)
	for _, c := range []struct {
		name      string
		image     []byte
		ram       []memory.Range
		initramfs int
		cmdline   int
		says      string
	}{
		{"in the first MiB", seg(0x8000, 0x1000), ram, 0, 0, "segment 0 at 0x8000-0x9000 overlaps the first MiB"},
		{"named by its program header", boottest.ELF(boottest.Segment{Type: ptNote, Data: boottest.Note("Xen", 18, u64(testEntry), 4), Align: 4},
			boottest.Segment{Type: ptLoad, Paddr: testKernelAt, Data: make([]byte, 0x1000)},
			boottest.Segment{Type: ptLoad, Paddr: 0x9000, Data: make([]byte, 0x10)}), ram, 0, 0, "segment 2 at 0x9000-0x9010 overlaps"},
		{"over the ACPI tables", seg(0xf0000, 0x20000), ram, 0, 0, "overlaps the first MiB"},
		{"past the end of RAM", seg(60*layout.MiB, 8*layout.MiB), ram, 0, 0, "segment 0 at 0x3c00000-0x4400000 is outside guest RAM (0x0-0x4000000)"},
		{"in the 32-bit hole", seg(0xf000_0000, 0x1000), ram, 0, 0, "outside guest RAM"},
		{"above RAM", seg(1<<40, 0x1000), ram, 0, 0, "outside guest RAM"},
		{"across the 32-bit hole", seg(layout.LowRAMEnd-layout.MiB, 2*layout.MiB), big, 0, 0,
			"outside guest RAM (0x0-0xc0000000, 0x100000000-0x140000000)"},
		{"an initramfs over the image", seg(layout.MiB, 60*layout.MiB), ram, 8 * layout.MiB, 0,
			"initramfs of 8 MiB and ELF segment 0 at 0x100000-0x3d00000 do not fit together in 64 MiB of low RAM"},
		{"an initramfs larger than RAM", testELF(), ram, 64 * layout.MiB, 0, "initramfs of 64 MiB does not fit in 64 MiB of low RAM"},
		{"a command line of 64 KiB", testELF(), ram, 0, layout.CmdlineMax, "command line: 65536 bytes, at most 65535"},
		{"no RAM", testELF(), nil, 0, 0, "does not reach above 1 MiB"},
	} {
		img, err := ParseImage(FromBytes(c.image))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		p := Payload{Image: img, RAM: c.ram, Initramfs: FromBytes(make([]byte, c.initramfs)), Cmdline: strings.Repeat("x", c.cmdline)}
		err = Check(p)
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.says)
		}
	}
	// The segment in RAM above 4 GiB and the initramfs below both fit.
	img, _ := ParseImage(FromBytes(seg(layout.HighRAMStart, layout.MiB)))
	if err := Check(Payload{Image: img, RAM: big, Initramfs: FromBytes(make([]byte, layout.MiB))}); err != nil {
		t.Errorf("a segment in high RAM: %v", err)
	}
	if err := Check(Payload{}); err == nil {
		t.Error("an empty payload was accepted")
	}
}
