package hotplug

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/vmmdev/vmm/acpi"
)

// The register skeleton the CPU and memory controllers share. Each block
// starts with a 32-bit selector that picks one of the controller's items (a
// CPU, a memory slot) and reads back as written; a value at or above the
// item count selects nothing. The selected item has a status byte whose
// bit 0 (read only) is set while the item is present and bit 1 while the
// guest has yet to acknowledge its insertion (writing 1 acknowledges it).
// On the AML side the block has an operation region, a mutex that
// serialises the guest's use of the selector, and methods that take the
// mutex, select item Arg0 and read or write its registers.

// The selector's offset (CPUSelectOffset, MemorySelectOffset) and the
// status bits every item has (CPUEnabled and MemoryEnabled, CPUInserting
// and MemoryInserting).
const (
	selectorOffset  = 0x00
	statusEnabled   = 1 << 0
	statusInserting = 1 << 1
)

// plug is what the skeleton keeps of every item.
type plug struct {
	present   bool
	inserting bool // not yet acknowledged by the guest
}

// isPresent reports whether the item is present.
func (p plug) isPresent() bool { return p.present }

// status is the item's status byte, before any bits of the controller's
// own.
func (p plug) status() byte {
	var b byte
	if p.present {
		b |= statusEnabled
	}
	if p.inserting {
		b |= statusInserting
	}
	return b
}

// acknowledge applies a status byte b the guest wrote: a 1 in the
// inserting bit acknowledges the insertion.
func (p *plug) acknowledge(b byte) {
	if b&statusInserting != 0 {
		p.inserting = false
	}
}

// presentCount is how many of items are present.
func presentCount[T interface{ isPresent() bool }](items []T) int {
	n := 0
	for _, it := range items {
		if it.isPresent() {
			n++
		}
	}
	return n
}

// selector is the selector register. The controller's lock
// guards it.
type selector struct {
	selected uint32
}

// index returns the selected item of n, and false when nothing is selected.
func (s *selector) index(n int) (int, bool) {
	if int64(s.selected) >= int64(n) {
		return 0, false
	}
	return int(s.selected), true
}

// write applies byte b written at offset off, and reports whether off is
// one of the selector's bytes.
func (s *selector) write(off uint64, b byte) bool {
	return writeReg32(&s.selected, selectorOffset, off, b)
}

// image returns a size-byte image of a block with the selector filled in,
// for the controller to add its registers and pass to readImage.
func (s *selector) image(size int) []byte {
	image := make([]byte, size)
	binary.LittleEndian.PutUint32(image[selectorOffset:], s.selected)
	return image
}

// readImage copies the bytes of image at offset into data; bytes past the
// end of image read as zero.
func readImage(image []byte, offset uint64, data []byte) {
	for i := range data {
		data[i] = 0
		if off := offset + uint64(i); off < uint64(len(image)) {
			data[i] = image[off]
		}
	}
}

// writeReg32 applies byte b written at offset off to the 32-bit register
// *reg at offset at, and reports whether off is one of its bytes.
func writeReg32(reg *uint32, at, off uint64, b byte) bool {
	if off < at || off >= at+4 {
		return false
	}
	shift := 8 * (off - at)
	*reg = *reg&^(0xff<<shift) | uint32(b)<<shift
	return true
}

// blockAML names the AML objects over a controller's register block of
// size bytes at base, which has items items.
type blockAML struct {
	device     string // the controller's container device
	base, size uint64
	items      int
	itemName   string // the format of an item's device name, given its index
	region     string // the operation region over the block
	mutex      string // serialises the guest's use of the selector
	selector   string // the selector field
	// enabled and inserting are the selected item's status bits.
	enabled, inserting string
}

// container is the controller's device: ids (its _HID and the like), the
// mutex and the operation region over the block, body (the fields and
// methods), then each item's device, which item makes given its name and
// index.
func (b blockAML) container(ids, body []acpi.Aml, item func(name string, i int) acpi.Aml) acpi.Aml {
	block := []acpi.Aml{acpi.Mutex(b.mutex, 0), acpi.OperationRegion(b.region, acpi.SystemMemory, b.base, b.size)}
	all := slices.Concat(ids, block, body)
	for i := range b.items {
		all = append(all, item(b.deviceName(i), i))
	}
	return acpi.Device(b.device, all...)
}

// selectorField declares the 32-bit selector, then more
// dword-accessed fields when given.
func (b blockAML) selectorField(more ...acpi.FieldElement) acpi.Aml {
	units := append([]acpi.FieldElement{acpi.FieldOffset(selectorOffset), acpi.FieldUnit{Name: b.selector, Bits: 32}}, more...)
	return acpi.Field(b.region, acpi.DWordAcc, acpi.NoLock, acpi.WriteAsZeros, units...)
}

// statusField declares the status byte at offset: the enabled and
// inserting bits, then the controller's own bits, one bit each.
func (b blockAML) statusField(offset uint64, more ...acpi.FieldUnit) acpi.Aml {
	units := []acpi.FieldElement{acpi.FieldOffset(offset),
		acpi.FieldUnit{Name: b.enabled, Bits: 1}, acpi.FieldUnit{Name: b.inserting, Bits: 1}}
	for _, u := range more {
		units = append(units, u)
	}
	return acpi.Field(b.region, acpi.ByteAcc, acpi.NoLock, acpi.WriteAsZeros, units...)
}

// locked is a method body that takes the mutex, selects item Arg0, runs
// body and releases the mutex.
func (b blockAML) locked(body ...acpi.Aml) []acpi.Aml {
	out := []acpi.Aml{acpi.Acquire(b.mutex, acpi.WaitForever), acpi.Store(acpi.Arg(0), acpi.Path(b.selector))}
	return append(append(out, body...), acpi.Release(b.mutex))
}

// staMethod is Method name(id): 0xF (present, enabled, shown, working) while
// item id is present, else 0; the devices' _STA call it.
func (b blockAML) staMethod(name string) acpi.Aml {
	body := b.locked(
		acpi.Store(acpi.Zero, acpi.Local(0)),
		acpi.If(acpi.LEqual(acpi.Path(b.enabled), acpi.One), acpi.Store(acpi.Int(0xf), acpi.Local(0))),
	)
	return acpi.Method(name, 1, true, append(body, acpi.Return(acpi.Local(0)))...)
}

// deviceName is the AML name of item i's device.
func (b blockAML) deviceName(i int) string { return fmt.Sprintf(b.itemName, i) }

// notifyMethod returns Method name(id, event) that notifies item id's
// device with the event.
func (b blockAML) notifyMethod(name string) acpi.Aml {
	body := make([]acpi.Aml, 0, b.items)
	for id := range b.items {
		body = append(body, acpi.If(acpi.LEqual(acpi.Arg(0), acpi.Int(id)),
			acpi.Notify(acpi.Path(b.deviceName(id)), acpi.Arg(1))))
	}
	return acpi.Method(name, 2, false, body...)
}
