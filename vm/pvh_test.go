package vm

import (
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/vmmdev/vmm/vm/boot"
	"github.com/vmmdev/vmm/vm/boot/boottest"
	"github.com/vmmdev/vmm/vm/layout"
	"github.com/vmmdev/vmm/vm/memory"
)

// pvhProbe is 32-bit code that reports the PVH entry state on port 0x11:
// the dword at EBX (hvm_start_info's magic), EBX itself and CR0, then
// halts. Decoded as 16-bit or 64-bit code it reports something else.
var pvhProbe = []byte{
	0x8b, 0x03, // mov eax, [ebx]
	0x66, 0xba, 0x11, 0x00, // mov dx, 0x11
	0xef,       // out dx, eax
	0x89, 0xd8, // mov eax, ebx
	0xef,             // out dx, eax
	0x0f, 0x20, 0xc0, // mov eax, cr0
	0xef,       // out dx, eax
	0xf4,       // hlt
	0xeb, 0xfd, // jmp to the hlt
}

// The boot vCPU of a PVH image starts where its note says, in 32-bit
// protected mode with paging off and EBX at hvm_start_info: the loader's
// Entry, set up by the vCPU manager as for a real boot. Runs where KVM runs
// guest code, else it is skipped.
func TestPVHBootVCPUStartsIn32BitProtectedModeOnKVM(t *testing.T) {
	const ram = 4 << 20
	sys, kvmVM, mem := newTestVM(t, ram)
	supported, err := sys.SupportedCPUID()
	if err != nil {
		t.Skip(err)
	}
	img, err := boot.ParseImage(boot.FromBytes(boottest.PVHELF(layout.KernelStart, pvhProbe)))
	if err != nil {
		t.Fatal(err)
	}
	entry, err := boot.Load(mem, boot.Payload{Image: img, RAM: memory.BootRAM(ram), RSDPAddr: layout.ACPIStart})
	if err != nil {
		t.Fatal(err)
	}
	h := &countingHandler{}
	m := newCPUManager(kvmVM, cpuConfig{maxVCPUs: 1, cpuid: supported, entry: entry}, h, nopLogger(), nil)
	if err := m.create(0, true); err != nil {
		t.Fatal(err)
	}
	defer m.stopAll()
	if err := m.plug(0); err != nil {
		t.Fatal(err)
	}
	var got []string
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < 3 {
		if time.Now().After(deadline) {
			t.Skipf("this KVM did not run the probe (port writes %v, failure: %v)", got, h.failure)
		}
		time.Sleep(time.Millisecond)
		h.mu.Lock()
		got = append([]string(nil), h.other...)
		h.mu.Unlock()
	}
	// Each write is "out 0x11 " and the dword's bytes in hex.
	dword := func(i int) uint32 {
		hexBytes, ok := strings.CutPrefix(got[i], "out 0x11 ")
		b, err := hex.DecodeString(hexBytes)
		if !ok || err != nil || len(b) != 4 {
			t.Fatalf("port write %d: %q", i, got[i])
		}
		return binary.LittleEndian.Uint32(b)
	}
	t.Logf("port writes %v", got)
	if magic := dword(0); magic != 0x336ec578 {
		t.Errorf("the dword at EBX is %#x, want hvm_start_info's magic 0x336ec578", magic)
	}
	if ebx := dword(1); ebx != layout.PVHStartInfoStart {
		t.Errorf("EBX %#x, want %#x", ebx, layout.PVHStartInfoStart)
	}
	if cr0 := dword(2); cr0&1 == 0 || cr0&(1<<31) != 0 {
		t.Errorf("CR0 %#x: want PE set and PG clear", cr0)
	}
	if len(got) != 3 {
		t.Errorf("port writes %v, want 3", got)
	}
}
