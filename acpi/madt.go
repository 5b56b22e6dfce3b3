package acpi

import (
	"encoding/binary"
	"fmt"
)

// Processor Local APIC flags (ACPI 6.5, Table 5.23).
const (
	// LocalAPICEnabled: the processor is ready for use.
	LocalAPICEnabled = 1 << 0
	// LocalAPICOnlineCapable: the processor is not enabled but the system
	// can enable it at run time. The spec reserves it (must be zero) when
	// LocalAPICEnabled is set.
	LocalAPICOnlineCapable = 1 << 1
)

// MPS INTI flags of an interrupt source override (ACPI 6.5, Table 5.26).
const (
	INTIConforms   = 0
	INTIActiveHigh = 1 << 0
	INTIActiveLow  = 3 << 0
	INTIEdge       = 1 << 2
	INTILevel      = 3 << 2
)

// MADT structure types, flags and lengths (ACPI 6.5, 5.2.12).
const (
	madtLocalAPIC   = 0
	madtIOAPIC      = 1
	madtOverride    = 2
	madtLocalNMI    = 4
	madtPCATCompat  = 1 << 0
	madtAllCPUs     = 0xff
	localAPICLength = 8
)

// MaxCPUs is the most processors MADT can describe with Processor Local
// APIC entries: APIC ids and processor UIDs are one byte and 0xFF is the
// broadcast id.
const MaxCPUs = 255

// InterruptOverride maps an ISA interrupt to a GSI with the given MPS INTI
// flags, e.g. {Source: 0, GSI: 2} for the PIT's IRQ 0.
type InterruptOverride struct {
	Source uint8
	GSI    uint32
	Flags  uint16 // INTI...
}

// MADTConfig describes the interrupt controllers of an x86 machine whose
// processors have processor UID = CPU index 0, 1, 2, ... and APIC id =
// APICIDs[index], or the index without APICIDs.
type MADTConfig struct {
	// LocalAPICAddr is the local APIC base (0xFEE00000).
	LocalAPICAddr uint32
	// PCATCompat says the machine also has dual 8259 PICs (KVM's in-kernel
	// irqchip does); the OS then masks them.
	PCATCompat bool
	// IOAPICID, IOAPICAddr (0xFEC00000) and IOAPICGSIBase describe the one
	// I/O APIC.
	IOAPICID      uint8
	IOAPICAddr    uint32
	IOAPICGSIBase uint32
	// BootCPUs are enabled; CPUs BootCPUs to MaxCPUs-1 are Online Capable:
	// possible, and hot pluggable.
	BootCPUs, MaxCPUs int
	// Overrides are the ISA interrupt source overrides.
	Overrides []InterruptOverride
	// LINT1NMI adds a Local APIC NMI entry wiring LINT1 of every processor
	// to NMI, as on PC hardware.
	LINT1NMI bool
	// APICIDs, when set, are the APIC ids of CPUs 0 to MaxCPUs-1 (a CPU
	// topology packs thread, core, die and package numbers into them).
	APICIDs []uint8
}

// LocalAPIC returns a Processor Local APIC structure (MADT entry type 0)
// for the processor with the given UID and APIC id: the bytes both the MADT
// and a processor device's _MAT hold.
func LocalAPIC(uid, apicID uint8, flags uint32) []byte {
	b := []byte{madtLocalAPIC, localAPICLength, uid, apicID}
	return binary.LittleEndian.AppendUint32(b, flags)
}

// MADT returns the Multiple APIC Description Table (revision 5): one Local
// APIC entry per possible CPU (Enabled for the boot CPUs, Online Capable
// for the others), the I/O APIC, the interrupt source overrides and,
// optionally, the LINT1 NMI entry.
func MADT(c MADTConfig) ([]byte, error) {
	if c.BootCPUs < 1 || c.BootCPUs > c.MaxCPUs || c.MaxCPUs > MaxCPUs {
		return nil, fmt.Errorf("acpi: MADT: boot=%d max=%d: need 1 <= boot <= max <= %d", c.BootCPUs, c.MaxCPUs, MaxCPUs)
	}
	if c.APICIDs != nil && len(c.APICIDs) != c.MaxCPUs {
		return nil, fmt.Errorf("acpi: MADT: %d APIC ids for %d CPUs", len(c.APICIDs), c.MaxCPUs)
	}
	var flags uint32
	if c.PCATCompat {
		flags = madtPCATCompat
	}
	body := binary.LittleEndian.AppendUint32(nil, c.LocalAPICAddr)
	body = binary.LittleEndian.AppendUint32(body, flags)
	for id := 0; id < c.MaxCPUs; id++ {
		f := uint32(LocalAPICOnlineCapable)
		if id < c.BootCPUs {
			f = LocalAPICEnabled
		}
		apicID := uint8(id)
		if c.APICIDs != nil {
			apicID = c.APICIDs[id]
		}
		body = append(body, LocalAPIC(uint8(id), apicID, f)...)
	}
	body = append(body, madtIOAPIC, 12, c.IOAPICID, 0)
	body = binary.LittleEndian.AppendUint32(body, c.IOAPICAddr)
	body = binary.LittleEndian.AppendUint32(body, c.IOAPICGSIBase)
	for _, o := range c.Overrides {
		body = append(body, madtOverride, 10, 0 /* ISA */, o.Source)
		body = binary.LittleEndian.AppendUint32(body, o.GSI)
		body = binary.LittleEndian.AppendUint16(body, o.Flags)
	}
	if c.LINT1NMI {
		body = append(body, madtLocalNMI, 6, madtAllCPUs)
		body = binary.LittleEndian.AppendUint16(body, INTIConforms)
		body = append(body, 1) // LINT1
	}
	return table("APIC", MADTRevision, body), nil
}
