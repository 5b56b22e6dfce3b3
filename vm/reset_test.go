package vm

import (
	"fmt"
	"testing"
	"time"

	"github.com/vmmdev/vmm/kvm"
	"github.com/vmmdev/vmm/vm/boot"
	"github.com/vmmdev/vmm/vm/layout"
)

// Linux reboots a hardware-reduced ACPI machine without EFI by jumping to
// the BIOS reset vector in real mode; the stub there must write the reset
// register. Runs the stub on KVM where KVM runs real-mode code.
func TestResetStubWritesTheResetRegisterOnKVM(t *testing.T) {
	sys, vm, mem := newTestVM(t, 2<<20)
	if err := mem.WriteAt(boot.ResetStub(layout.ResetRegisterPort, layout.ResetValue), layout.ResetVector); err != nil {
		t.Fatal(err)
	}
	h := &countingHandler{}
	m := newCPUManager(vm, cpuConfig{maxVCPUs: 1}, h, nopLogger(), nil)
	m.cfg.cpuid, _ = sys.SupportedCPUID()
	if err := m.create(0, false); err != nil {
		t.Fatal(err)
	}
	defer m.stopAll()
	// What machine_real_restart leaves: real mode, ljmp $0xf000, $0xfff0.
	if err := m.onThread(0, func(kv *kvm.VCPU) error {
		s, err := kv.Sregs()
		if err != nil {
			return err
		}
		s.CS.Base, s.CS.Selector = 0xf0000, 0xf000
		if err := kv.SetSregs(s); err != nil {
			return err
		}
		return kv.SetRegs(kvm.Regs{RIP: 0xfff0, RFLAGS: 2})
	}); err != nil {
		t.Fatal(err)
	}
	if err := m.plug(0); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("out %#x %x", layout.ResetRegisterPort, []byte{layout.ResetValue})
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.mu.Lock()
		got := append([]string(nil), h.other...)
		h.mu.Unlock()
		if len(got) > 0 {
			if got[0] != want || len(got) != 1 {
				t.Errorf("port writes %v, want [%s]", got, want)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Skipf("this KVM did not run the stub (failure: %v)", h.failure)
		}
		time.Sleep(time.Millisecond)
	}
}
