package acpi

import "encoding/binary"

// MCFGRevision is the revision of the MCFG table (PCI Firmware
// Specification 3.3, 4.1.2).
const MCFGRevision = 1

// MCFGEntry is one memory-mapped configuration space (ECAM) area: the
// configuration space of buses StartBus to EndBus of a PCI segment group
// at Base, 1 MiB per bus (bus n's at Base + n<<20).
type MCFGEntry struct {
	Base             uint64
	Segment          uint16
	StartBus, EndBus uint8
}

// MCFG returns the PCI Express memory-mapped configuration space base
// address description table listing entries, one per segment: 8 reserved
// bytes after the header, then a 16-byte allocation structure per entry
// (base address, segment group, start and end bus, 4 reserved bytes).
func MCFG(entries []MCFGEntry) []byte {
	body := make([]byte, 8, 8+16*len(entries))
	for _, e := range entries {
		body = binary.LittleEndian.AppendUint64(body, e.Base)
		body = binary.LittleEndian.AppendUint16(body, e.Segment)
		body = append(body, e.StartBus, e.EndBus, 0, 0, 0, 0)
	}
	return table("MCFG", MCFGRevision, body)
}
