package vm

import (
	"fmt"

	"github.com/vmmdev/vmm/kvm"
	"github.com/vmmdev/vmm/vm/boot"
)

// MSRs set on every vCPU before it first runs (Intel SDM vol. 4).
const (
	msrIA32SysenterCS  = 0x174
	msrIA32SysenterESP = 0x175
	msrIA32SysenterEIP = 0x176
	msrIA32MiscEnable  = 0x1a0
	msrMTRRDefType     = 0x2ff
	msrSTAR            = 0xc000_0081
	msrLSTAR           = 0xc000_0082
	msrCSTAR           = 0xc000_0083
	msrSyscallMask     = 0xc000_0084
	msrKernelGSBase    = 0xc000_0102

	miscEnableFastString = 1 << 0
	// mtrrDefTypeWB enables the MTRRs with write-back as the default type.
	mtrrDefTypeWB = 1<<11 | 6
)

// bootMSRs are the MSR values of a CPU fresh out of firmware: syscall MSRs
// clear, fast strings on, MTRRs on with all memory write-back.
func bootMSRs() []kvm.MSR {
	return []kvm.MSR{
		{Index: msrIA32SysenterCS}, {Index: msrIA32SysenterESP}, {Index: msrIA32SysenterEIP},
		{Index: msrSTAR}, {Index: msrLSTAR}, {Index: msrCSTAR}, {Index: msrSyscallMask},
		{Index: msrKernelGSBase},
		{Index: msrIA32MiscEnable, Data: miscEnableFastString},
		{Index: msrMTRRDefType, Data: mtrrDefTypeWB},
	}
}

// LAPIC local vector table delivery modes (Intel SDM vol. 3, 11.5.1).
const (
	lvtDeliveryModeMask = 7 << 8
	lvtDeliveryNMI      = 4 << 8
	lvtDeliveryExtINT   = 7 << 8
	lvtMasked           = 1 << 16
)

// setup gives a new vCPU its CPUID, MSRs and LAPIC wiring; the boot vCPU
// also gets the registers of the payload's entry (the bzImage's 64-bit
// entry or a PVH entry). Other vCPUs wait for the guest's INIT and SIPI, as
// KVM starts them.
func (m *cpuManager) setup(kv *kvm.VCPU, index int, bootCPU bool) error {
	if err := kv.SetCPUID(CPUIDFor(m.cfg.cpuid, index, m.cfg.topology(), m.cfg.tscDeadline)); err != nil {
		return err
	}
	if err := m.setMSRs(kv, bootMSRs()); err != nil {
		return err
	}
	if err := m.setLAPIC(kv); err != nil {
		return err
	}
	if err := kv.SetFPU(boot.FPU()); err != nil {
		return err
	}
	if !bootCPU {
		return nil
	}
	s, err := kv.Sregs()
	if err != nil {
		return err
	}
	if err := kv.SetSregs(m.cfg.entry.Sregs(s)); err != nil {
		return err
	}
	return kv.SetRegs(m.cfg.entry.Regs())
}

// KVM's paravirtual MSRs (Documentation/virt/kvm/x86/msr.rst) and their
// values in a CPU fresh from reset: everything off, host polling allowed.
const (
	msrKVMSystemTime    = 0x12
	msrKVMSystemTimeNew = 0x4b56_4d01
	msrKVMAsyncPFEn     = 0x4b56_4d02
	msrKVMStealTime     = 0x4b56_4d03
	msrKVMPVEOIEn       = 0x4b56_4d04
	msrKVMPollControl   = 0x4b56_4d05
	msrKVMAsyncPFInt    = 0x4b56_4d06
)

// resetAP puts a vCPU that ran before and was hot-unplugged back into the
// state of an AP fresh from power-on: boot MSRs, KVM's paravirtual MSRs
// off, LAPIC and FPU as set up, and waiting for INIT and SIPI
// (KVM_MP_STATE_UNINITIALIZED), which reset its registers when the guest
// sends them. QEMU resets a re-added CPU the same way.
func (m *cpuManager) resetAP(kv *kvm.VCPU) error {
	if err := m.setMSRs(kv, append(bootMSRs(),
		kvm.MSR{Index: msrKVMSystemTime}, kvm.MSR{Index: msrKVMSystemTimeNew},
		kvm.MSR{Index: msrKVMAsyncPFEn}, kvm.MSR{Index: msrKVMStealTime},
		kvm.MSR{Index: msrKVMPVEOIEn}, kvm.MSR{Index: msrKVMPollControl, Data: 1},
		kvm.MSR{Index: msrKVMAsyncPFInt})); err != nil {
		return err
	}
	if err := m.setLAPIC(kv); err != nil {
		return fmt.Errorf("LAPIC: %w", err)
	}
	if err := kv.SetFPU(boot.FPU()); err != nil {
		return fmt.Errorf("FPU: %w", err)
	}
	if err := kv.SetMPState(kvm.MPStateUninitialized); err != nil {
		return fmt.Errorf("MP state: %w", err)
	}
	return nil
}

// setLAPIC wires the vCPU's LAPIC as firmware leaves it on a PC: LINT0
// takes the legacy PIC's ExtINT, LINT1 NMI.
func (m *cpuManager) setLAPIC(kv *kvm.VCPU) error {
	l, err := kv.LAPIC()
	if err != nil {
		return err
	}
	l.SetReg32(kvm.LAPICRegLVT0, l.Reg32(kvm.LAPICRegLVT0)&^(lvtDeliveryModeMask|lvtMasked)|lvtDeliveryExtINT)
	l.SetReg32(kvm.LAPICRegLVT1, l.Reg32(kvm.LAPICRegLVT1)&^(lvtDeliveryModeMask|lvtMasked)|lvtDeliveryNMI)
	return kv.SetLAPIC(l)
}

// setMSRs writes msrs. KVM_SET_MSRS stops at the first MSR it refuses:
// such an MSR (one this KVM does not have) is logged and skipped, and the
// rest written; an ioctl that fails is an error.
func (m *cpuManager) setMSRs(kv msrSetter, msrs []kvm.MSR) error {
	for len(msrs) > 0 {
		n, err := kv.SetMSRs(msrs)
		if err != nil {
			return fmt.Errorf("MSRs: %w", err)
		}
		if n < len(msrs) {
			m.log.Warn("KVM refused an MSR; skipped", "vcpu", kv.ID(), "msr", fmt.Sprintf("%#x", msrs[n].Index))
			n++
		}
		msrs = msrs[n:]
	}
	return nil
}

// msrSetter is the part of a vCPU setMSRs uses.
type msrSetter interface {
	SetMSRs([]kvm.MSR) (int, error)
	ID() int
}
