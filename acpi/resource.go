package acpi

import "encoding/binary"

// Resource is a resource descriptor of a [ResourceTemplate]: [IO],
// [IRQNoFlags], [Memory32Fixed], [DWordMemory], [QWordMemory],
// [WordBusNumber] or [Interrupt].
type Resource interface {
	// AppendResource appends the descriptor's bytes. It panics with an
	// *EncodeError on a malformed descriptor, like Aml.AppendAml.
	AppendResource(b []byte) []byte
}

// ResourceTemplate is a buffer holding the descriptors followed by an end
// tag: ASL ResourceTemplate() { descriptors }.
func ResourceTemplate(descriptors ...Resource) Aml {
	return resourceTemplate(descriptors)
}

type resourceTemplate []Resource

func (r resourceTemplate) AppendAml(b []byte) []byte {
	var data []byte
	for _, d := range r {
		if d == nil {
			fail("nil resource descriptor")
		}
		data = d.AppendResource(data)
	}
	// End Tag (small item 0xF, length 1) with checksum 0, which means
	// "the checksum is not used" (ACPI 6.5, 6.4.2.9).
	data = append(data, 0x79, 0x00)
	return Buffer(data).AppendAml(b)
}

// Resource descriptor tags (ACPI 6.5, 6.4 "Resource Data Types for ACPI").
const (
	smallIRQ          = 0x04 << 3 // IRQ descriptor, item name 0x04
	smallIO           = 0x08 << 3 // I/O port descriptor, item name 0x08
	largeMemory32Fix  = 0x86
	largeDWordAddress = 0x87
	largeWordAddress  = 0x88
	largeExtInterrupt = 0x89
	largeQWordAddress = 0x8a
)

// checkRange fails when a descriptor's max lies below its min.
func checkRange(what string, lo, hi uint64) {
	if hi < lo {
		fail("%s descriptor: max %#x below min %#x", what, hi, lo)
	}
}

// IO is an I/O port descriptor with 16-bit decode: ports from Min to Max
// (the lowest and highest base addresses), aligned to Align, each range
// Length ports long: ASL IO(Decode16, Min, Max, Align, Length).
type IO struct {
	Min, Max uint16
	Align    uint8
	Length   uint8
}

// AppendResource appends the 8-byte descriptor.
func (r IO) AppendResource(b []byte) []byte {
	checkRange("IO", uint64(r.Min), uint64(r.Max))
	b = append(b, smallIO|7, 0x01) // information bit 0: 16-bit decode
	b = binary.LittleEndian.AppendUint16(b, r.Min)
	b = binary.LittleEndian.AppendUint16(b, r.Max)
	return append(b, r.Align, r.Length)
}

// IRQNoFlags is a legacy IRQ descriptor (edge, active high, exclusive) for
// ISA interrupts 0 to 15: ASL IRQNoFlags() { irqs }.
type IRQNoFlags []uint8

// AppendResource appends the 3-byte descriptor.
func (r IRQNoFlags) AppendResource(b []byte) []byte {
	var mask uint16
	for _, irq := range r {
		if irq > 15 {
			fail("IRQNoFlags descriptor: IRQ %d above 15", irq)
		}
		mask |= 1 << irq
	}
	b = append(b, smallIRQ|2)
	return binary.LittleEndian.AppendUint16(b, mask)
}

// Memory32Fixed is a 32-bit fixed memory range descriptor:
// ASL Memory32Fixed(ReadWrite or ReadOnly, Base, Length).
type Memory32Fixed struct {
	ReadOnly bool
	Base     uint32
	Length   uint32
}

// AppendResource appends the 12-byte descriptor.
func (r Memory32Fixed) AppendResource(b []byte) []byte {
	info := byte(1) // bit 0: writeable
	if r.ReadOnly {
		info = 0
	}
	b = append(b, largeMemory32Fix, 9, 0, info)
	b = binary.LittleEndian.AppendUint32(b, r.Base)
	return binary.LittleEndian.AppendUint32(b, r.Length)
}

// MemoryCaching is the caching attribute of a [QWordMemory] range.
type MemoryCaching uint8

// Caching attributes (bits 2-1 of the type-specific flags).
const (
	NonCacheable   MemoryCaching = 0
	Cacheable      MemoryCaching = 1
	WriteCombining MemoryCaching = 2
	Prefetchable   MemoryCaching = 3
)

// QWordMemory is a QWord address space descriptor for memory with a fixed
// base and size (MinFixed, MaxFixed, PosDecode): ASL QWordMemory(
// ResourceConsumer or ResourceProducer, PosDecode, MinFixed, MaxFixed,
// Caching, ReadWrite or ReadOnly, Granularity, Min, Max, Translation,
// Length). The zero value is an empty consumer range; methods usually fill
// Min, Max and Length at run time through [CreateQWordField] at the byte
// offsets QWordMemoryMinOffset, QWordMemoryMaxOffset and
// QWordMemoryLengthOffset.
type QWordMemory struct {
	Producer    bool
	Caching     MemoryCaching
	ReadOnly    bool
	Granularity uint64
	Min, Max    uint64
	Translation uint64
	Length      uint64
}

// Byte offsets of the QWordMemory descriptor's fields from its first byte.
const (
	QWordMemoryMinOffset    = 14
	QWordMemoryMaxOffset    = 22
	QWordMemoryLengthOffset = 38
)

// AppendResource appends the 46-byte descriptor.
func (r QWordMemory) AppendResource(b []byte) []byte {
	return appendAddressSpace(b, largeQWordAddress, 8, memoryRange, addressFlags(r.Producer),
		memoryFlags("QWordMemory", r.Caching, r.ReadOnly),
		[5]uint64{r.Granularity, r.Min, r.Max, r.Translation, r.Length})
}

// Interrupt is an extended interrupt descriptor for one or more GSIs. The
// zero value of each flag gives ASL's defaults: Interrupt(ResourceConsumer,
// Edge, ActiveHigh, Exclusive) { GSIs }.
type Interrupt struct {
	Producer    bool
	Level       bool // level triggered rather than edge triggered
	ActiveLow   bool
	Shared      bool
	WakeCapable bool
	GSIs        []uint32
}

// AppendResource appends the descriptor (5 + 4 bytes per GSI).
func (r Interrupt) AppendResource(b []byte) []byte {
	if len(r.GSIs) == 0 || len(r.GSIs) > 255 {
		fail("Interrupt descriptor: %d interrupts (1-255 allowed)", len(r.GSIs))
	}
	var flags byte
	if !r.Producer {
		flags |= 1 << 0
	}
	if !r.Level {
		flags |= 1 << 1
	}
	if r.ActiveLow {
		flags |= 1 << 2
	}
	if r.Shared {
		flags |= 1 << 3
	}
	if r.WakeCapable {
		flags |= 1 << 4
	}
	b = append(b, largeExtInterrupt)
	b = binary.LittleEndian.AppendUint16(b, uint16(2+4*len(r.GSIs)))
	b = append(b, flags, byte(len(r.GSIs)))
	for _, g := range r.GSIs {
		b = binary.LittleEndian.AppendUint32(b, g)
	}
	return b
}

// addressFlags is the general flags byte of an address space descriptor
// with a fixed range (ACPI 6.5, 6.4.3.5.1): MaxFixed, MinFixed,
// PosDecode, and ResourceConsumer unless the device produces the range
// (a bridge's window).
func addressFlags(producer bool) byte {
	general := byte(1<<3 | 1<<2)
	if !producer {
		general |= 1
	}
	return general
}

// memoryFlags is the type-specific flags byte of a memory range: caching
// in bits 2-1, bit 0 set for read-write.
func memoryFlags(what string, caching MemoryCaching, readOnly bool) byte {
	if caching > Prefetchable {
		fail("%s descriptor: caching %d", what, caching)
	}
	specific := byte(caching) << 1
	if !readOnly {
		specific |= 1
	}
	return specific
}

// DWordMemory is a DWord address space descriptor for memory below 4 GiB
// with a fixed base and size: ASL DWordMemory(ResourceConsumer or
// ResourceProducer, PosDecode, MinFixed, MaxFixed, Caching, ReadWrite or
// ReadOnly, Granularity, Min, Max, Translation, Length). A PCI host
// bridge's _CRS produces its 32-bit BAR window with one.
type DWordMemory struct {
	Producer    bool
	Caching     MemoryCaching
	ReadOnly    bool
	Granularity uint32
	Min, Max    uint32
	Translation uint32
	Length      uint32
}

// AppendResource appends the 26-byte descriptor.
func (r DWordMemory) AppendResource(b []byte) []byte {
	checkRange("DWordMemory", uint64(r.Min), uint64(r.Max))
	return appendAddressSpace(b, largeDWordAddress, 4, memoryRange, addressFlags(r.Producer),
		memoryFlags("DWordMemory", r.Caching, r.ReadOnly),
		[5]uint64{uint64(r.Granularity), uint64(r.Min), uint64(r.Max), uint64(r.Translation), uint64(r.Length)})
}

// WordBusNumber is a Word address space descriptor for a range of PCI bus
// numbers, produced by a host bridge: ASL WordBusNumber(ResourceProducer,
// MinFixed, MaxFixed, PosDecode, 0, Min, Max, 0, Max-Min+1).
type WordBusNumber struct {
	Min, Max uint16
}

// AppendResource appends the 16-byte descriptor.
func (r WordBusNumber) AppendResource(b []byte) []byte {
	checkRange("WordBusNumber", uint64(r.Min), uint64(r.Max))
	return appendAddressSpace(b, largeWordAddress, 2, busNumberRange, addressFlags(true), 0,
		[5]uint64{0, uint64(r.Min), uint64(r.Max), 0, uint64(r.Max - r.Min + 1)})
}

// Resource types of an address space descriptor.
const (
	memoryRange    = 0
	busNumberRange = 2
)

// appendAddressSpace appends a Word, DWord or QWord address space
// descriptor (ACPI 6.5, 6.4.3.5): its tag and length, the resource type,
// the general and type-specific flags, then granularity, min, max,
// translation offset and length, size bytes each.
func appendAddressSpace(b []byte, tag byte, size int, resourceType, general, specific byte, fields [5]uint64) []byte {
	b = append(b, tag)
	b = binary.LittleEndian.AppendUint16(b, uint16(3+5*size))
	b = append(b, resourceType, general, specific)
	for _, v := range fields {
		var le [8]byte
		binary.LittleEndian.PutUint64(le[:], v)
		b = append(b, le[:size]...)
	}
	return b
}
