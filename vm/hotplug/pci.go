package hotplug

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/vmmdev/vmm/acpi"
)

// PCIOwner is the owner of the PCI devices, told which slot the guest
// ejected. EjectPCI is called on the vCPU goroutine that wrote the eject
// register, without the controller's lock held: it must not wait for that
// vCPU.
type PCIOwner interface {
	// EjectPCI frees the device at slot of PCI segment segment: the guest
	// released it, at the owner's request or on its own.
	EjectPCI(segment, slot int)
}

// pciSegmentState is one segment's pending slot events.
type pciSegmentState struct {
	up, down uint32 // slots to announce, not yet read by the guest
}

// PCIHotplug is the ACPI PCI hot plug controller, as Cloud Hypervisor's
// (and QEMU's piix4) work: a register block whose slots-up and slots-down
// bitmaps the guest's scan reads (one segment at a time, chosen by the
// segment selector) and whose eject register takes the guest's _EJ0, and
// the AML: \_SB.PHPR with the scan PSCN and the eject method PCEJ, and in
// each host bridge PCIn a slot device per device number 1-31 (_ADR, _SUN,
// _EJ0) and the notifier DVNT ([PCIHotplug.SlotsAML]).
type PCIHotplug struct {
	base  uint64
	owner PCIOwner

	mu       sync.Mutex
	selected uint32 // the segment selector
	segments []pciSegmentState
}

// NewPCIHotplug returns the controller for segments PCI segments (1 to
// MaxPCISegments) with its block at base.
func NewPCIHotplug(base uint64, segments int, owner PCIOwner) (*PCIHotplug, error) {
	if segments < 1 || segments > MaxPCISegments {
		return nil, fmt.Errorf("pci hotplug: %d segments: need 1 to %d", segments, MaxPCISegments)
	}
	if owner == nil {
		return nil, fmt.Errorf("pci hotplug: no owner")
	}
	return &PCIHotplug{base: base, owner: owner, segments: make([]pciSegmentState, segments)}, nil
}

// Segments returns the number of PCI segments.
func (p *PCIHotplug) Segments() int { return len(p.segments) }

// update runs f on segment's state for slot's bit with the lock held.
func (p *PCIHotplug) update(segment, slot int, f func(s *pciSegmentState, bit uint32)) error {
	if segment < 0 || segment >= len(p.segments) {
		return fmt.Errorf("pci hotplug: segment %d out of range 0-%d", segment, len(p.segments)-1)
	}
	if slot < 1 || slot >= PCISlots {
		return fmt.Errorf("pci hotplug: slot %d out of range 1-%d", slot, PCISlots-1)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.segments[segment], 1<<slot)
	return nil
}

// SetInserting flags the device the owner just put at slot of segment for
// the guest's next scan (follow with GED.Trigger(EventPCI)), which
// notifies the slot's device with a device check: the guest scans the slot.
// It withdraws a removal of the slot the guest has not read yet.
func (p *PCIHotplug) SetInserting(segment, slot int) error {
	return p.update(segment, slot, func(s *pciSegmentState, bit uint32) {
		s.up |= bit
		s.down &^= bit
	})
}

// SetRemoving asks the guest to release the device at slot of segment at
// its next scan (follow with GED.Trigger(EventPCI)), which notifies the
// slot's device with an eject request. The guest unbinds the device's
// driver, then calls the slot's _EJ0: the owner's EjectPCI follows.
func (p *PCIHotplug) SetRemoving(segment, slot int) error {
	return p.update(segment, slot, func(s *pciSegmentState, bit uint32) {
		s.down |= bit
		s.up &^= bit
	})
}

// Pending returns the slots of segment the guest has not read yet, to
// insert and to remove.
func (p *PCIHotplug) Pending(segment int) (up, down uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if segment < 0 || segment >= len(p.segments) {
		return 0, 0
	}
	s := p.segments[segment]
	return s.up, s.down
}

// Read reads the selected segment's slots up or down (each read clears the
// bitmap read: the scan reads it once) or the selector. The eject register
// reads zero.
func (p *PCIHotplug) Read(offset uint64, data []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var image [PCIBlockSize]byte
	var seg *pciSegmentState
	if int64(p.selected) < int64(len(p.segments)) {
		seg = &p.segments[p.selected]
		binary.LittleEndian.PutUint32(image[PCIUpOffset:], seg.up)
		binary.LittleEndian.PutUint32(image[PCIDownOffset:], seg.down)
	}
	binary.LittleEndian.PutUint32(image[PCISegmentOffset:], p.selected)
	readImage(image[:], offset, data)
	if seg == nil {
		return
	}
	for i := range data {
		off := offset + uint64(i)
		switch {
		case off >= PCIUpOffset && off < PCIUpOffset+4:
			seg.up &^= 0xff << (8 * (off - PCIUpOffset))
		case off >= PCIDownOffset && off < PCIDownOffset+4:
			seg.down &^= 0xff << (8 * (off - PCIDownOffset))
		}
	}
}

// Write sets the segment selector or ejects the slots whose bits are
// written to the eject register (of the selected segment): the owner's
// EjectPCI is called for each, lowest first, after the lock is released.
// Slot 0 (the host bridge) is never ejected.
func (p *PCIHotplug) Write(offset uint64, data []byte) {
	var eject uint32
	p.mu.Lock()
	for i, b := range data {
		off := offset + uint64(i)
		switch {
		case writeReg32(&p.selected, PCISegmentOffset, off, b):
		case off >= PCIEjectOffset && off < PCIEjectOffset+4:
			eject |= uint32(b) << (8 * (off - PCIEjectOffset))
		}
	}
	segment := int(p.selected)
	valid := int64(p.selected) < int64(len(p.segments))
	if valid {
		// An ejected slot has nothing left to announce.
		p.segments[segment].up &^= eject
		p.segments[segment].down &^= eject
	}
	p.mu.Unlock()
	if !valid {
		return
	}
	for slot := 1; slot < PCISlots; slot++ {
		if eject&(1<<slot) != 0 {
			p.owner.EjectPCI(segment, slot)
		}
	}
}

// PCISegmentPath is the DSDT path of segment s's host bridge, as vm/pci's
// Segment.AML names it.
func PCISegmentPath(s int) string { return fmt.Sprintf(`\_SB.PCI%X`, s) }

// AML returns \_SB.PHPR: a generic container (PNP0A06) with the register
// block's operation region and fields, its mutex BLCK, PCEJ(slot, segment)
// (the slots' _EJ0) and PSCN (the scan the GED calls: for each segment it
// reads the slots up and down under the mutex, then calls the segment's
// DVNT with each, Notify 1 for up, 3 for down).
func (p *PCIHotplug) AML() acpi.Aml {
	scan := []acpi.Aml{}
	for s := range p.segments {
		dvnt := PCISegmentPath(s) + ".DVNT"
		scan = append(scan,
			acpi.Acquire("BLCK", acpi.WaitForever),
			acpi.Store(acpi.Int(s), acpi.Path("PSEG")),
			acpi.Store(acpi.Path("PCIU"), acpi.Local(0)),
			acpi.Store(acpi.Path("PCID"), acpi.Local(1)),
			acpi.Release("BLCK"),
			acpi.Call(dvnt, acpi.Local(0), acpi.One),
			acpi.Call(dvnt, acpi.Local(1), acpi.Int(3)),
		)
	}
	return acpi.Device("PHPR",
		acpi.Name("_HID", acpi.EISAID("PNP0A06")),
		acpi.Name("_UID", acpi.String("PCI Hot Plug Controller")),
		acpi.Mutex("BLCK", 0),
		acpi.OperationRegion("PCST", acpi.SystemMemory, p.base, PCIBlockSize),
		acpi.Field("PCST", acpi.DWordAcc, acpi.NoLock, acpi.WriteAsZeros,
			acpi.FieldOffset(PCIUpOffset),
			acpi.FieldUnit{Name: "PCIU", Bits: 32},
			acpi.FieldUnit{Name: "PCID", Bits: 32},
			acpi.FieldUnit{Name: "B0EJ", Bits: 32},
			acpi.FieldUnit{Name: "PSEG", Bits: 32},
		),
		// PCEJ(slot, segment): eject the slot.
		acpi.Method("PCEJ", 2, true,
			acpi.Acquire("BLCK", acpi.WaitForever),
			acpi.Store(acpi.Arg(1), acpi.Path("PSEG")),
			acpi.ShiftLeft(acpi.One, acpi.Arg(0), acpi.Path("B0EJ")),
			acpi.Release("BLCK"),
			acpi.Return(acpi.Zero),
		),
		acpi.Method("PSCN", 0, true, scan...),
	)
}

// SlotsAML is what segment's host bridge device (PCIn) holds for hot plug:
// a slot device Sxx per device number 1-31 (_ADR the device, function 0;
// _SUN the device number; _EJ0 calls \_SB.PHPR.PCEJ) and DVNT(slots,
// event), which notifies the device of each slot whose bit is set.
func (p *PCIHotplug) SlotsAML(segment int) []acpi.Aml {
	notify := make([]acpi.Aml, 0, PCISlots-1)
	var out []acpi.Aml
	for slot := 1; slot < PCISlots; slot++ {
		name := fmt.Sprintf("S%02X", slot)
		notify = append(notify, acpi.If(acpi.And(acpi.Arg(0), acpi.Int(1<<slot), nil),
			acpi.Notify(acpi.Path(name), acpi.Arg(1))))
		out = append(out, acpi.Device(name,
			acpi.Name("_ADR", acpi.Int(uint64(slot)<<16)),
			acpi.Name("_SUN", acpi.Int(slot)),
			acpi.Method("_EJ0", 1, false, acpi.Call(`\_SB.PHPR.PCEJ`, acpi.Int(slot), acpi.Int(segment))),
		))
	}
	return append([]acpi.Aml{acpi.Method("DVNT", 2, false, notify...)}, out...)
}
