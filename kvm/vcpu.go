package kvm

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// VCPU is a KVM vCPU fd and its mapped kvm_run area. Its ioctls belong on one
// OS thread: the caller locks a goroutine to a thread and issues them there.
type VCPU struct {
	fd  int
	id  int
	run []byte
	hdr *runHeader
}

// ErrInterrupted is returned by Run when a signal or immediate_exit stopped
// KVM_RUN before or during guest execution (EINTR).
var ErrInterrupted = errors.New("KVM_RUN interrupted")

// ID is the vCPU id given to CreateVCPU.
func (c *VCPU) ID() int { return c.id }

// Close unmaps kvm_run and closes the fd. KVM keeps the vCPU itself until
// the VM is destroyed.
func (c *VCPU) Close() error {
	if c.fd < 0 {
		return nil
	}
	c.hdr = nil
	err := unix.Munmap(c.run)
	if cerr := unix.Close(c.fd); err == nil {
		err = cerr
	}
	c.fd = -1
	c.run = nil
	return err
}

// Run enters the guest once (KVM_RUN). It returns nil after an exit to be
// handled (see ExitReason), ErrInterrupted when a signal or immediate_exit
// cut it short, or another error.
func (c *VCPU) Run() error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(c.fd), ioRun, 0)
	switch errno {
	case 0:
		return nil
	case unix.EINTR, unix.EAGAIN:
		return ErrInterrupted
	}
	return fmt.Errorf("KVM_RUN vCPU %d: %w", c.id, errno)
}

// SetImmediateExit sets kvm_run.immediate_exit: while set, KVM_RUN returns
// EINTR at once. Another thread may set it to kick the vCPU; it pairs with a
// signal to the vCPU's thread for a vCPU already in the guest.
func (c *VCPU) SetImmediateExit(on bool) {
	var b uint8
	if on {
		b = 1
	}
	*(*uint8)(unsafe.Pointer(&c.hdr.ImmediateExit)) = b
}

// ExitReason is the reason for the last exit from KVM_RUN.
func (c *VCPU) ExitReason() ExitReason { return ExitReason(c.hdr.ExitReason) }

// IOExit describes a KVM_EXIT_IO: Count accesses of Size bytes at Port.
// Data is Count*Size bytes inside kvm_run: for an OUT it holds the values
// written, for an IN the handler fills it before the next Run.
type IOExit struct {
	Out   bool
	Size  int
	Port  uint16
	Count int
	Data  []byte
}

// IO decodes the current KVM_EXIT_IO. ok is false when the exit data does
// not fit kvm_run (which a correct kernel never reports).
func (c *VCPU) IO() (e IOExit, ok bool) {
	r := (*runIO)(unsafe.Pointer(&c.hdr.Exit[0]))
	n := uint64(r.Size) * uint64(r.Count)
	if r.DataOffset > uint64(len(c.run)) || n > uint64(len(c.run))-r.DataOffset {
		return IOExit{}, false
	}
	return IOExit{
		Out:   r.Direction == IODirectionOut,
		Size:  int(r.Size),
		Port:  r.Port,
		Count: int(r.Count),
		Data:  c.run[r.DataOffset : r.DataOffset+n],
	}, true
}

// MMIOExit describes a KVM_EXIT_MMIO. Data is inside kvm_run: for a write it
// holds the value, for a read the handler fills it before the next Run.
type MMIOExit struct {
	Write bool
	Addr  uint64
	Data  []byte
}

// MMIO decodes the current KVM_EXIT_MMIO.
func (c *VCPU) MMIO() MMIOExit {
	r := (*runMMIO)(unsafe.Pointer(&c.hdr.Exit[0]))
	n := min(int(r.Len), len(r.Data))
	return MMIOExit{Write: r.IsWrite != 0, Addr: r.PhysAddr, Data: r.Data[:n]}
}

// SystemEvent decodes the current KVM_EXIT_SYSTEM_EVENT: its type
// (SystemEvent*) and data.
func (c *VCPU) SystemEvent() (typ uint32, data []uint64) {
	r := (*runSystemEvent)(unsafe.Pointer(&c.hdr.Exit[0]))
	n := min(int(r.NData), len(r.Data))
	return r.Type, append([]uint64(nil), r.Data[:n]...)
}

// InternalError decodes the current KVM_EXIT_INTERNAL_ERROR.
func (c *VCPU) InternalError() (suberror uint32, data []uint64) {
	r := (*runInternal)(unsafe.Pointer(&c.hdr.Exit[0]))
	n := min(int(r.NData), len(r.Data))
	return r.Suberror, append([]uint64(nil), r.Data[:n]...)
}

// FailEntry decodes the current KVM_EXIT_FAIL_ENTRY.
func (c *VCPU) FailEntry() (reason uint64, cpu uint32) {
	r := (*runFailEntry)(unsafe.Pointer(&c.hdr.Exit[0]))
	return r.HardwareEntryFailureReason, r.CPU
}

// Regs reads the general purpose registers.
func (c *VCPU) Regs() (Regs, error) { return vcpuGet[Regs](c, ioGetRegs, "KVM_GET_REGS") }

// SetRegs writes the general purpose registers.
func (c *VCPU) SetRegs(r Regs) error { return vcpuSet(c, ioSetRegs, "KVM_SET_REGS", r) }

// Sregs reads the special registers.
func (c *VCPU) Sregs() (Sregs, error) { return vcpuGet[Sregs](c, ioGetSregs, "KVM_GET_SREGS") }

// SetSregs writes the special registers.
func (c *VCPU) SetSregs(s Sregs) error { return vcpuSet(c, ioSetSregs, "KVM_SET_SREGS", s) }

// FPU reads the floating point state.
func (c *VCPU) FPU() (FPU, error) { return vcpuGet[FPU](c, ioGetFPU, "KVM_GET_FPU") }

// SetFPU writes the floating point state.
func (c *VCPU) SetFPU(f FPU) error { return vcpuSet(c, ioSetFPU, "KVM_SET_FPU", f) }

// vcpuGet reads a T from the vCPU with the ioctl req, named name in errors.
func vcpuGet[T any](c *VCPU, req uintptr, name string) (T, error) {
	var v T
	if _, err := ioctlPtr(c.fd, req, unsafe.Pointer(&v)); err != nil {
		return v, fmt.Errorf("%s vCPU %d: %w", name, c.id, err)
	}
	return v, nil
}

// vcpuSet writes v to the vCPU with the ioctl req, named name in errors.
func vcpuSet[T any](c *VCPU, req uintptr, name string, v T) error {
	if _, err := ioctlPtr(c.fd, req, unsafe.Pointer(&v)); err != nil {
		return fmt.Errorf("%s vCPU %d: %w", name, c.id, err)
	}
	return nil
}

// SetCPUID sets the CPUID the guest sees (KVM_SET_CPUID2). Call it before
// the first Run.
func (c *VCPU) SetCPUID(entries []CPUIDEntry) error {
	if len(entries) == 0 {
		return fmt.Errorf("KVM_SET_CPUID2 vCPU %d: no entries", c.id)
	}
	buf := cpuidBufferFrom(entries)
	if _, err := ioctlPtr(c.fd, ioSetCPUID2, unsafe.Pointer(&buf[0])); err != nil {
		return fmt.Errorf("KVM_SET_CPUID2 vCPU %d (%d entries): %w", c.id, len(entries), err)
	}
	return nil
}

// CPUID reads back the CPUID set on the vCPU (KVM_GET_CPUID2).
func (c *VCPU) CPUID() ([]CPUIDEntry, error) {
	entries, err := getCPUID(c.fd, ioGetCPUID2)
	if err != nil {
		return nil, fmt.Errorf("KVM_GET_CPUID2 vCPU %d: %w", c.id, err)
	}
	return entries, nil
}

// msrsHeader is the head of struct kvm_msrs.
type msrsHeader struct {
	NMSRs uint32
	_     uint32
}

func msrBuffer(msrs []MSR) ([]uint64, []MSR) {
	words := 1 + 2*len(msrs)
	buf := make([]uint64, words)
	(*msrsHeader)(unsafe.Pointer(&buf[0])).NMSRs = uint32(len(msrs))
	if len(msrs) == 0 {
		return buf, nil
	}
	entries := unsafe.Slice((*MSR)(unsafe.Pointer(&buf[1])), len(msrs))
	copy(entries, msrs)
	return buf, entries
}

// SetMSRs writes MSRs in order (KVM_SET_MSRS) and returns how many were
// written: KVM stops at the first it refuses.
func (c *VCPU) SetMSRs(msrs []MSR) (int, error) {
	if len(msrs) == 0 {
		return 0, nil
	}
	buf, _ := msrBuffer(msrs)
	n, err := ioctlPtr(c.fd, ioSetMSRs, unsafe.Pointer(&buf[0]))
	if err != nil {
		return 0, fmt.Errorf("KVM_SET_MSRS vCPU %d: %w", c.id, err)
	}
	return int(n), nil
}

// MSRs reads the MSRs whose indexes are given (KVM_GET_MSRS); it returns the
// ones KVM read, in order, stopping at the first it refuses.
func (c *VCPU) MSRs(indexes ...uint32) ([]MSR, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	in := make([]MSR, len(indexes))
	for i, ix := range indexes {
		in[i].Index = ix
	}
	buf, entries := msrBuffer(in)
	n, err := ioctlPtr(c.fd, ioGetMSRs, unsafe.Pointer(&buf[0]))
	if err != nil {
		return nil, fmt.Errorf("KVM_GET_MSRS vCPU %d: %w", c.id, err)
	}
	return append([]MSR(nil), entries[:n]...), nil
}

// LAPIC reads the in-kernel local APIC's registers.
func (c *VCPU) LAPIC() (LAPICState, error) {
	return vcpuGet[LAPICState](c, ioGetLAPIC, "KVM_GET_LAPIC")
}

// SetLAPIC writes the in-kernel local APIC's registers.
func (c *VCPU) SetLAPIC(l LAPICState) error { return vcpuSet(c, ioSetLAPIC, "KVM_SET_LAPIC", l) }

// Events reads the vCPU's pending and injected events (KVM_GET_VCPU_EVENTS).
func (c *VCPU) Events() (VCPUEvents, error) {
	return vcpuGet[VCPUEvents](c, ioGetVCPUEvents, "KVM_GET_VCPU_EVENTS")
}

// MPState reads the vCPU's multiprocessing state.
func (c *VCPU) MPState() (MPState, error) {
	return vcpuGet[MPState](c, ioGetMPState, "KVM_GET_MP_STATE")
}

// SetMPState writes the vCPU's multiprocessing state.
func (c *VCPU) SetMPState(s MPState) error { return vcpuSet(c, ioSetMPState, "KVM_SET_MP_STATE", s) }

// LAPIC register offsets in LAPICState.Regs (Intel SDM vol. 3, table 11-1).
const (
	LAPICRegID   = 0x20
	LAPICRegLVT0 = 0x350
	LAPICRegLVT1 = 0x360
)

// Reg32 reads a 32-bit LAPIC register.
func (l *LAPICState) Reg32(off int) uint32 {
	b := l.Regs[off : off+4]
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// SetReg32 writes a 32-bit LAPIC register.
func (l *LAPICState) SetReg32(off int, v uint32) {
	b := l.Regs[off : off+4]
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}
