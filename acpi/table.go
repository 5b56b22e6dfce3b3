package acpi

import (
	"encoding/binary"
	"fmt"
)

// Identification written into every table header and the RSDP.
const (
	// OEMID is the six-character OEM id.
	OEMID = "VMM   "
	// OEMTableIDPrefix starts each table's eight-character OEM table id;
	// the table's signature follows it ("VMMDSDT ").
	OEMTableIDPrefix = "VMM"
	// OEMRevision is the OEM revision of every table.
	OEMRevision = 1
	// CreatorID is the four-character id of the tool that built the tables.
	CreatorID = "VMM "
	// CreatorRevision is the revision of that tool.
	CreatorRevision = 1
)

// HeaderSize is the size of the common table header (ACPI 6.5, 5.2.6).
const HeaderSize = 36

// Table revisions written by the builders.
const (
	XSDTRevision = 1
	// FADTRevision and FADTMinorRevision: ACPI 6.5's FADT, 276 bytes.
	FADTRevision      = 6
	FADTMinorRevision = 5
	// MADTRevision 5 (ACPI 6.3) is the first with the Online Capable flag;
	// Linux honours that flag only from this revision on.
	MADTRevision = 5
	// DSDTRevision 2 makes AML integers 64 bits wide.
	DSDTRevision = 2
)

// Table returns a table: the common header for signature (four characters)
// and revision, followed by body, with the length and checksum filled in.
func Table(signature string, revision uint8, body []byte) ([]byte, error) {
	if len(signature) != 4 {
		return nil, fmt.Errorf("acpi: table signature %q is not four characters", signature)
	}
	if len(body) > 0xffffffff-HeaderSize {
		return nil, fmt.Errorf("acpi: table %s: body of %d bytes is too long", signature, len(body))
	}
	return table(signature, revision, body), nil
}

// table builds a table whose signature is known to be valid.
func table(signature string, revision uint8, body []byte) []byte {
	t := make([]byte, 0, HeaderSize+len(body))
	t = append(t, signature...)
	t = binary.LittleEndian.AppendUint32(t, uint32(HeaderSize+len(body)))
	t = append(t, revision, 0) // checksum placed below
	t = append(t, OEMID...)
	t = append(t, fmt.Sprintf("%-8s", OEMTableIDPrefix+signature)...)
	t = binary.LittleEndian.AppendUint32(t, OEMRevision)
	t = append(t, CreatorID...)
	t = binary.LittleEndian.AppendUint32(t, CreatorRevision)
	t = append(t, body...)
	t[9] = Checksum(t)
	return t
}

// Checksum returns the byte that, stored in a zero checksum field of b,
// makes all bytes of b sum to zero modulo 256.
func Checksum(b []byte) byte {
	var sum byte
	for _, c := range b {
		sum += c
	}
	return -sum
}

// RSDPSize is the size of an ACPI 2.0+ RSDP.
const RSDPSize = 36

// RSDP returns the ACPI 2.0 Root System Description Pointer (revision 2)
// pointing at the XSDT at xsdtAddr. It has no RSDT. Both its checksums are
// filled in: the first over its first 20 bytes, the extended one over all 36.
func RSDP(xsdtAddr uint64) []byte {
	b := make([]byte, 0, RSDPSize)
	b = append(b, "RSD PTR "...)
	b = append(b, 0) // checksum
	b = append(b, OEMID...)
	b = append(b, 2)                                  // revision: ACPI 2.0+
	b = binary.LittleEndian.AppendUint32(b, 0)        // RsdtAddress
	b = binary.LittleEndian.AppendUint32(b, RSDPSize) // Length
	b = binary.LittleEndian.AppendUint64(b, xsdtAddr)
	b = append(b, 0, 0, 0, 0) // extended checksum, reserved
	b[8] = Checksum(b[:20])
	b[32] = Checksum(b)
	return b
}

// XSDT returns the Extended System Description Table listing the tables at
// the given guest physical addresses (the FADT first, then MADT and others).
func XSDT(entries []uint64) []byte {
	body := make([]byte, 0, 8*len(entries))
	for _, e := range entries {
		body = binary.LittleEndian.AppendUint64(body, e)
	}
	return table("XSDT", XSDTRevision, body)
}

// DSDT returns the Differentiated System Description Table holding the
// given AML objects, or the encoding error of a malformed one.
func DSDT(body ...Aml) ([]byte, error) {
	aml, err := Encode(body...)
	if err != nil {
		return nil, fmt.Errorf("acpi: DSDT: %w", err)
	}
	return table("DSDT", DSDTRevision, aml), nil
}

// SSDT returns a Secondary System Description Table holding the given AML
// objects, or the encoding error of a malformed one.
func SSDT(body ...Aml) ([]byte, error) {
	aml, err := Encode(body...)
	if err != nil {
		return nil, fmt.Errorf("acpi: SSDT: %w", err)
	}
	return table("SSDT", DSDTRevision, aml), nil
}

// Describer is a device that describes itself in the DSDT. AML returns the
// objects it adds to the \_SB scope, usually one Device; names in it are
// relative to \_SB.
type Describer interface {
	AML() Aml
}

// SystemBus returns the \_SB scope holding the AML of each device, in order.
func SystemBus(devices ...Describer) Aml {
	body := make([]Aml, 0, len(devices))
	for _, d := range devices {
		body = append(body, d.AML())
	}
	return Scope(`\_SB`, body...)
}

// SleepState returns the \_Sx object for sleep state state (5 for soft off),
// a package whose first element is the SLP_TYP value the guest writes to
// the FADT's sleep control register (bits 4-2, with SLP_EN, bit 5, set)
// to enter that state.
func SleepState(state int, slpTyp uint8) Aml {
	return Name(fmt.Sprintf(`\_S%d_`, state), Package{Int(slpTyp), Zero})
}

// Sleep control register bits a hardware-reduced guest writes to enter a
// sleep state (ACPI 6.5, 4.8.3.7 "Sleep Control and Status Registers").
const (
	SleepControlTypeShift = 2      // SLP_TYPx is bits 4-2
	SleepControlTypeMask  = 7 << 2 // SLP_TYPx
	SleepControlEnable    = 1 << 5 // SLP_EN
	SleepStatusWake       = 1 << 7 // WAK_STS in the sleep status register
)
