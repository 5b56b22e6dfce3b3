package kvm

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// VM is a KVM virtual machine fd.
type VM struct {
	handle
	runSize int
}

// MemoryRegion is memslot slot mapping host, a host mapping of guest RAM,
// at guest physical address gpa.
func MemoryRegion(slot uint32, gpa uint64, host []byte) UserspaceMemoryRegion {
	return UserspaceMemoryRegion{Slot: slot, GuestPhysAddr: gpa, MemorySize: uint64(len(host)),
		UserspaceAddr: uint64(uintptr(unsafe.Pointer(unsafe.SliceData(host))))}
}

// SetUserMemoryRegion creates, moves or (with MemorySize 0) deletes a memslot.
func (v *VM) SetUserMemoryRegion(r UserspaceMemoryRegion) error {
	if _, err := ioctlPtr(v.fd, ioSetUserMemoryRegion, unsafe.Pointer(&r)); err != nil {
		return fmt.Errorf("KVM_SET_USER_MEMORY_REGION slot %d gpa %#x size %#x: %w",
			r.Slot, r.GuestPhysAddr, r.MemorySize, err)
	}
	return nil
}

// SetTSSAddr places the three pages Intel VMX needs for real-mode emulation
// (KVM_SET_TSS_ADDR); the range must hold no memslot.
func (v *VM) SetTSSAddr(addr uint64) error {
	if _, err := ioctl(v.fd, ioSetTSSAddr, uintptr(addr)); err != nil {
		return fmt.Errorf("KVM_SET_TSS_ADDR %#x: %w", addr, err)
	}
	return nil
}

// SetIdentityMapAddr places the identity map page Intel VMX needs for
// real-mode emulation (KVM_SET_IDENTITY_MAP_ADDR); call before creating vCPUs.
func (v *VM) SetIdentityMapAddr(addr uint64) error {
	if _, err := ioctlPtr(v.fd, ioSetIdentityMapAddr, unsafe.Pointer(&addr)); err != nil {
		return fmt.Errorf("KVM_SET_IDENTITY_MAP_ADDR %#x: %w", addr, err)
	}
	return nil
}

// CreateIRQChip creates the in-kernel PIC, IOAPIC and local APICs
// (KVM_CREATE_IRQCHIP); call before creating vCPUs.
func (v *VM) CreateIRQChip() error {
	if _, err := ioctl(v.fd, ioCreateIRQChip, 0); err != nil {
		return fmt.Errorf("KVM_CREATE_IRQCHIP: %w", err)
	}
	return nil
}

// IOAPIC reads the in-kernel I/O APIC's state (KVM_GET_IRQCHIP).
func (v *VM) IOAPIC() (IOAPICState, error) {
	c := irqChip{ChipID: irqChipIOAPIC}
	var s IOAPICState
	if _, err := ioctlPtr(v.fd, ioGetIRQChip, unsafe.Pointer(&c)); err != nil {
		return s, fmt.Errorf("KVM_GET_IRQCHIP (I/O APIC): %w", err)
	}
	if _, err := binary.Decode(c.State[:], binary.NativeEndian, &s); err != nil {
		return s, fmt.Errorf("KVM_GET_IRQCHIP (I/O APIC): %w", err)
	}
	return s, nil
}

// CreatePIT2 creates the in-kernel i8254 PIT (KVM_CREATE_PIT2); flags may
// hold PITSpeakerDummy.
func (v *VM) CreatePIT2(flags uint32) error {
	c := pitConfig{Flags: flags}
	if _, err := ioctlPtr(v.fd, ioCreatePIT2, unsafe.Pointer(&c)); err != nil {
		return fmt.Errorf("KVM_CREATE_PIT2: %w", err)
	}
	return nil
}

// IRQLine sets the level of a GSI on the in-kernel irqchip (KVM_IRQ_LINE).
func (v *VM) IRQLine(gsi uint32, high bool) error {
	l := irqLevel{IRQ: gsi}
	if high {
		l.Level = 1
	}
	if _, err := ioctlPtr(v.fd, ioIRQLine, unsafe.Pointer(&l)); err != nil {
		return fmt.Errorf("KVM_IRQ_LINE gsi %d level %d: %w", gsi, l.Level, err)
	}
	return nil
}

// PulseIRQ raises then lowers a GSI: one edge for an edge-triggered line.
func (v *VM) PulseIRQ(gsi uint32) error {
	if err := v.IRQLine(gsi, true); err != nil {
		return err
	}
	return v.IRQLine(gsi, false)
}

// IRQFD binds an eventfd to a GSI: a write to the eventfd raises an edge
// on the GSI without leaving the kernel (KVM_IRQFD).
func (v *VM) IRQFD(eventfd int, gsi uint32) error {
	r := irqfd{FD: uint32(eventfd), GSI: gsi}
	if _, err := ioctlPtr(v.fd, ioIRQFD, unsafe.Pointer(&r)); err != nil {
		return fmt.Errorf("KVM_IRQFD fd %d gsi %d: %w", eventfd, gsi, err)
	}
	return nil
}

// RemoveIRQFD undoes IRQFD.
func (v *VM) RemoveIRQFD(eventfd int, gsi uint32) error {
	r := irqfd{FD: uint32(eventfd), GSI: gsi, Flags: irqfdFlagDeassign}
	if _, err := ioctlPtr(v.fd, ioIRQFD, unsafe.Pointer(&r)); err != nil {
		return fmt.Errorf("KVM_IRQFD deassign fd %d gsi %d: %w", eventfd, gsi, err)
	}
	return nil
}

// IOEventFD is one KVM_IOEVENTFD registration: a guest write of Len bytes
// at Addr (a port when PIO) signals the eventfd instead of exiting, when the
// value equals *Datamatch or Datamatch is nil.
type IOEventFD struct {
	EventFD   int
	Addr      uint64
	Len       uint32
	PIO       bool
	Datamatch *uint64
}

func (e IOEventFD) raw(deassign bool) ioeventfd {
	r := ioeventfd{Addr: e.Addr, Len: e.Len, FD: int32(e.EventFD)}
	if e.PIO {
		r.Flags |= ioeventfdFlagPIO
	}
	if e.Datamatch != nil {
		r.Flags |= ioeventfdFlagDatamatch
		r.Datamatch = *e.Datamatch
	}
	if deassign {
		r.Flags |= ioeventfdFlagDeassign
	}
	return r
}

// AddIOEventFD registers e (KVM_IOEVENTFD).
func (v *VM) AddIOEventFD(e IOEventFD) error {
	r := e.raw(false)
	if _, err := ioctlPtr(v.fd, ioIOEventFD, unsafe.Pointer(&r)); err != nil {
		return fmt.Errorf("KVM_IOEVENTFD addr %#x len %d: %w", e.Addr, e.Len, err)
	}
	return nil
}

// RemoveIOEventFD undoes AddIOEventFD with the same e.
func (v *VM) RemoveIOEventFD(e IOEventFD) error {
	r := e.raw(true)
	if _, err := ioctlPtr(v.fd, ioIOEventFD, unsafe.Pointer(&r)); err != nil {
		return fmt.Errorf("KVM_IOEVENTFD deassign addr %#x len %d: %w", e.Addr, e.Len, err)
	}
	return nil
}

// CreateVCPU creates vCPU id (on x86 also its APIC id) and maps its kvm_run
// area. An id can be created once per VM (EEXIST otherwise).
func (v *VM) CreateVCPU(id int) (*VCPU, error) {
	fd, err := ioctl(v.fd, ioCreateVCPU, uintptr(id))
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_VCPU %d: %w", id, err)
	}
	unix.CloseOnExec(int(fd))
	run, err := unix.Mmap(int(fd), 0, v.runSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(int(fd))
		return nil, fmt.Errorf("mmap kvm_run of vCPU %d: %w", id, err)
	}
	if len(run) < int(unsafe.Sizeof(runHeader{})) {
		unix.Munmap(run)
		unix.Close(int(fd))
		return nil, fmt.Errorf("kvm_run of vCPU %d: %d bytes is too small", id, len(run))
	}
	return &VCPU{fd: int(fd), id: id, run: run, hdr: (*runHeader)(unsafe.Pointer(&run[0]))}, nil
}

// Interrupt controllers a GSI can be routed to (KVM_IRQCHIP_* in asm/kvm.h).
const (
	IRQChipPICMaster = 0
	IRQChipPICSlave  = 1
	IRQChipIOAPIC    = 2
)

// IRQRoute routes a GSI: to a pin of an in-kernel interrupt controller
// (Chip and Pin), or, when MSI is set, to a message signalled interrupt
// that KVM delivers to the local APICs as a write of MSI.Data at
// MSI.Address would (Chip and Pin are then ignored).
type IRQRoute struct {
	GSI  uint32
	Chip uint32
	Pin  uint32
	MSI  *MSIMessage
}

// MSIMessage is the address and data of a message signalled interrupt:
// what a device writes to raise it (struct kvm_irq_routing_msi without
// the device id, which x86 does not use).
type MSIMessage struct {
	Address uint64
	Data    uint32
}

// irqRoutingEntry is struct kvm_irq_routing_entry: the GSI, the route's
// type and its union, read as irqchip (chip, pin) or msi (address_lo,
// address_hi, data, devid) by type.
type irqRoutingEntry struct {
	GSI   uint32
	Type  uint32
	Flags uint32
	_     uint32
	U     [8]uint32
}

// Route types (KVM_IRQ_ROUTING_* in kvm.h).
const (
	irqRoutingIRQChip = 1
	irqRoutingMSI     = 2
)

// entry encodes r as KVM reads it.
func (r IRQRoute) entry() irqRoutingEntry {
	e := irqRoutingEntry{GSI: r.GSI, Type: irqRoutingIRQChip}
	if r.MSI == nil {
		e.U[0], e.U[1] = r.Chip, r.Pin
		return e
	}
	e.Type = irqRoutingMSI
	e.U[0], e.U[1], e.U[2] = uint32(r.MSI.Address), uint32(r.MSI.Address>>32), r.MSI.Data
	return e
}

// SetGSIRouting replaces the VM's whole GSI routing table
// (KVM_SET_GSI_ROUTING); a GSI may appear more than once to reach several
// pins.
func (v *VM) SetGSIRouting(routes []IRQRoute) error {
	const entryWords = int(unsafe.Sizeof(irqRoutingEntry{}) / 8)
	buf := make([]uint64, 1+entryWords*len(routes))
	*(*uint32)(unsafe.Pointer(&buf[0])) = uint32(len(routes))
	if len(routes) > 0 {
		entries := unsafe.Slice((*irqRoutingEntry)(unsafe.Pointer(&buf[1])), len(routes))
		for i, r := range routes {
			entries[i] = r.entry()
		}
	}
	if _, err := ioctlPtr(v.fd, ioSetGSIRouting, unsafe.Pointer(&buf[0])); err != nil {
		return fmt.Errorf("KVM_SET_GSI_ROUTING (%d routes): %w", len(routes), err)
	}
	return nil
}
