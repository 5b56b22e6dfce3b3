package hotplug

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/vmmdev/vmm/acpi"
)

// ErrNoFreeSlot is returned by MemoryHotplug.AddSlot when every slot holds
// memory.
var ErrNoFreeSlot = errors.New("memory hotplug: no free slot")

// memSlot is one memory slot's state.
type memSlot struct {
	plug         // present: the slot holds memory
	base, length uint64
}

// MemoryHotplug is the memory hot plug controller: the register block of
// regs.go and the \_SB.MHPC container with one memory device (PNP0C80) per
// slot.
type MemoryHotplug struct {
	base uint64

	mu    sync.Mutex
	sel   selector
	slots []memSlot
}

// blockAML names the AML objects over the memory controller's block.
func (m *MemoryHotplug) blockAML() blockAML {
	// Memory devices M000 to MFFF.
	return blockAML{device: "MHPC", base: m.base, size: MemoryBlockSize, items: len(m.slots), itemName: "M%03X",
		region: "MREG", mutex: "MMTX", selector: "MSEL", enabled: "MEN", inserting: "MINS"}
}

// NewMemoryHotplug returns the controller for the given number of slots
// (1 to MaxMemorySlots) with its block at base, all slots empty.
func NewMemoryHotplug(base uint64, slots int) (*MemoryHotplug, error) {
	if slots < 1 || slots > MaxMemorySlots {
		return nil, fmt.Errorf("memory hotplug: %d slots: need 1 to %d", slots, MaxMemorySlots)
	}
	return &MemoryHotplug{base: base, slots: make([]memSlot, slots)}, nil
}

// Slots returns the number of slots.
func (m *MemoryHotplug) Slots() int { return len(m.slots) }

// AddSlot puts the RAM range [base, base+length) in the first empty slot,
// flags it for the guest's next scan (follow with
// GED.Trigger(EventMemory)) and returns the slot's index. It fails with
// ErrNoFreeSlot when every slot is used, and on an empty or wrapping range.
func (m *MemoryHotplug) AddSlot(base, length uint64) (int, error) {
	if length == 0 || base+length-1 < base {
		return 0, fmt.Errorf("memory hotplug: invalid range base %#x length %#x", base, length)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.slots {
		if !m.slots[i].present {
			m.slots[i] = memSlot{plug: plug{present: true, inserting: true}, base: base, length: length}
			return i, nil
		}
	}
	return 0, fmt.Errorf("%w (%d slots)", ErrNoFreeSlot, len(m.slots))
}

// CancelInsert empties slot i, filled by AddSlot, as long as the guest has
// not acknowledged the insertion (it has not seen the RAM), and reports
// whether it did. A slot the guest has seen stays.
func (m *MemoryHotplug) CancelInsert(i int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i < 0 || i >= len(m.slots) || !m.slots[i].present || !m.slots[i].inserting {
		return false
	}
	m.slots[i] = memSlot{}
	return true
}

// Used returns how many slots hold memory.
func (m *MemoryHotplug) Used() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return presentCount(m.slots)
}

// Read reads the selector, the selected slot's base, length or status, or
// the next slot with an insertion to acknowledge.
func (m *MemoryHotplug) Read(offset uint64, data []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	image := m.sel.image(MemoryBlockSize)
	if i, ok := m.sel.index(len(m.slots)); ok {
		s := m.slots[i]
		binary.LittleEndian.PutUint64(image[MemoryBaseOffset:], s.base)
		binary.LittleEndian.PutUint64(image[MemoryLengthOffset:], s.length)
		image[MemoryStatusOffset] = s.status()
	}
	next := slices.IndexFunc(m.slots, func(s memSlot) bool { return s.inserting })
	if next < 0 {
		next = len(m.slots)
	}
	binary.LittleEndian.PutUint32(image[MemoryNextOffset:], uint32(next))
	readImage(image, offset, data)
}

// Write sets the selector or acknowledges the selected slot's insertion
// (write 1 to MemoryInserting). Other registers are read only.
func (m *MemoryHotplug) Write(offset uint64, data []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, b := range data {
		off := offset + uint64(i)
		switch {
		case m.sel.write(off, b):
		case off == MemoryStatusOffset:
			if i, ok := m.sel.index(len(m.slots)); ok {
				m.slots[i].acknowledge(b)
			}
		}
	}
}

// AML returns \_SB.MHPC: a generic container (PNP0A06) with the register
// block's operation region and fields, its mutex MMTX, the methods
// MSTA(slot) (a slot's _STA value), MCRS(slot) (a slot's _CRS, built at run
// time), MTFY(slot, event) (notify a slot's device) and MSCN (the scan the
// GED calls), and one memory device (PNP0C80) per slot with _UID, _STA and
// _CRS.
func (m *MemoryHotplug) AML() acpi.Aml {
	b := m.blockAML()
	ids := []acpi.Aml{acpi.Name("_HID", acpi.EISAID("PNP0A06")), acpi.Name("_UID", acpi.String("Memory Hotplug Controller"))}
	return b.container(ids, []acpi.Aml{
		b.selectorField(
			acpi.FieldOffset(MemoryBaseOffset),
			acpi.FieldUnit{Name: "MBL", Bits: 32}, acpi.FieldUnit{Name: "MBH", Bits: 32},
			acpi.FieldOffset(MemoryLengthOffset),
			acpi.FieldUnit{Name: "MLL", Bits: 32}, acpi.FieldUnit{Name: "MLH", Bits: 32},
			acpi.FieldOffset(MemoryNextOffset), acpi.FieldUnit{Name: "MNXT", Bits: 32},
		),
		// MEN (MemoryEnabled), MINS (MemoryInserting).
		b.statusField(MemoryStatusOffset),
		// MSTA(slot): 0xF when the slot holds memory, else 0.
		b.staMethod("MSTA"),
		// MCRS(slot): a QWordMemory descriptor of the slot's range.
		mcrsMethod(b),
		b.notifyMethod("MTFY"),
		// MSCN: notify and acknowledge each slot with an insertion
		// pending, as MNXT names them, lowest first: three register
		// accesses per inserted slot, none for the others.
		acpi.Method("MSCN", 0, true,
			acpi.Acquire("MMTX", acpi.WaitForever),
			acpi.Store(acpi.Path("MNXT"), acpi.Local(0)),
			acpi.While(acpi.LLess(acpi.Local(0), acpi.Int(b.items)),
				acpi.Call("MTFY", acpi.Local(0), acpi.One),
				acpi.Store(acpi.Local(0), acpi.Path("MSEL")),
				acpi.Store(acpi.One, acpi.Path("MINS")),
				acpi.Store(acpi.Path("MNXT"), acpi.Local(0)),
			),
			acpi.Release("MMTX"),
		),
	}, memoryDevice)
}

// memoryDevice is the memory device of slot i inside \_SB.MHPC.
func memoryDevice(name string, i int) acpi.Aml {
	return acpi.Device(name,
		acpi.Name("_HID", acpi.EISAID("PNP0C80")),
		acpi.Name("_UID", acpi.Int(i)),
		acpi.Method("_STA", 0, false, acpi.Return(acpi.Call("MSTA", acpi.Int(i)))),
		acpi.Method("_CRS", 0, false, acpi.Return(acpi.Call("MCRS", acpi.Int(i)))),
	)
}

// mcrsMethod is MCRS(slot), the _CRS of slot's device: a QWordMemory
// descriptor whose minimum and length it reads from the base and length
// registers, and whose maximum it computes.
func mcrsMethod(b blockAML) acpi.Aml {
	body := []acpi.Aml{
		acpi.Name("MR64", acpi.ResourceTemplate(acpi.QWordMemory{Caching: acpi.Cacheable})),
		acpi.CreateQWordField(acpi.Path("MR64"), acpi.QWordMemoryMinOffset, "MINL"),
		acpi.CreateQWordField(acpi.Path("MR64"), acpi.QWordMemoryMaxOffset, "MAXL"),
		acpi.CreateQWordField(acpi.Path("MR64"), acpi.QWordMemoryLengthOffset, "LENL"),
	}
	body = append(body, b.locked(
		acpi.Or(acpi.ShiftLeft(acpi.Path("MBH"), acpi.Int(32), nil), acpi.Path("MBL"), acpi.Path("MINL")),
		acpi.Or(acpi.ShiftLeft(acpi.Path("MLH"), acpi.Int(32), nil), acpi.Path("MLL"), acpi.Path("LENL")),
	)...)
	return acpi.Method("MCRS", 1, true, append(body,
		acpi.Subtract(acpi.Add(acpi.Path("MINL"), acpi.Path("LENL"), nil), acpi.One, acpi.Path("MAXL")),
		acpi.Return(acpi.Path("MR64")),
	)...)
}
