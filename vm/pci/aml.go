package pci

import (
	"fmt"

	"github.com/vmmdev/vmm/acpi"
)

// pciHostBridgeUUID is the UUID of a PCI host bridge's _OSC (PCI Firmware
// Specification 3.3, 4.5.1).
const pciHostBridgeUUID = "33DB4D5B-1FF7-401C-9657-7441C03DD766"

// _OSC capabilities: bits of the first dword (status) and of the control
// dword (PCI Firmware Specification 3.3, 4.5.1; Linux's OSC_PCI_*).
const (
	oscUnrecognizedUUID     = 1 << 2
	oscUnrecognizedRevision = 1 << 3
	oscCapabilitiesMasked   = 1 << 4

	oscNativeHotplug = 1 << 0 // PCI Express native hot plug
	oscSHPCHotplug   = 1 << 1 // standard hot plug controller
	oscPME           = 1 << 2
	oscAER           = 1 << 3
	oscPCIeCap       = 1 << 4 // the PCI Express capability structure
	oscLTR           = 1 << 5
	oscDPC           = 1 << 7

	// oscGranted is what the OS may control: the features no firmware
	// here handles (there are no ports with them, so granting them costs
	// nothing). Hot plug is not granted: slots are the firmware's, and
	// will be hot plugged through ACPI.
	oscGranted = oscPME | oscAER | oscPCIeCap | oscLTR | oscDPC
)

// AML is the segment's host bridge in the DSDT's \_SB: Device PCIn (n the
// segment in hexadecimal) with _HID PNP0A08 (PCI Express), _CID PNP0A03,
// _SEG and _UID the segment, _BBN 0, _CRS producing bus 0, the 32-bit and
// 64-bit windows and, on segment 0, consuming the configuration ports,
// and _OSC.
func (s *Segment) AML() acpi.Aml { return s.AMLWith() }

// AMLWith is AML with more objects in the host bridge's device: the hot
// plug slots (vm/hotplug's PCIHotplug.SlotsAML).
func (s *Segment) AMLWith(more ...acpi.Aml) acpi.Aml {
	c := s.cfg
	res := []acpi.Resource{acpi.WordBusNumber{Min: 0, Max: 0}}
	if c.ConfigIO {
		res = append(res, acpi.IO{Min: 0xcf8, Max: 0xcf8, Align: 1, Length: ConfigIOSize})
	}
	res = append(res,
		acpi.DWordMemory{Producer: true, Min: uint32(c.Window32.Base), Max: uint32(c.Window32.End() - 1), Length: uint32(c.Window32.Size)},
		acpi.QWordMemory{Producer: true, Min: c.Window64.Base, Max: c.Window64.End() - 1, Length: c.Window64.Size},
	)
	body := []acpi.Aml{
		acpi.Name("_HID", acpi.EISAID("PNP0A08")),
		acpi.Name("_CID", acpi.EISAID("PNP0A03")),
		acpi.Name("_SEG", acpi.Int(c.ID)),
		acpi.Name("_UID", acpi.Int(c.ID)),
		acpi.Name("_BBN", acpi.Zero),
		acpi.Name("_CRS", acpi.ResourceTemplate(res...)),
		oscMethod(),
	}
	return acpi.Device(fmt.Sprintf("PCI%X", c.ID), append(body, more...)...)
}

// oscMethod is _OSC (ACPI 6.5, 6.2.11): for the PCI host bridge UUID it
// grants the OS's requests that are in oscGranted and says when it masked
// others; any other UUID is unrecognised.
//
//	Method (_OSC, 4) {
//	    CreateDWordField (Arg3, 0, CDW1)
//	    If (Arg0 == ToUUID ("33DB4D5B-...")) {
//	        CreateDWordField (Arg3, 8, CDW3)
//	        Local0 = CDW3 & oscGranted
//	        If (Arg1 != One) { CDW1 |= unrecognised revision }
//	        If (Local0 != CDW3) { CDW1 |= capabilities masked }
//	        CDW3 = Local0
//	    } Else { CDW1 |= unrecognised UUID }
//	    Return (Arg3)
//	}
func oscMethod() acpi.Aml {
	cdw1, cdw3 := acpi.Path("CDW1"), acpi.Path("CDW3")
	return acpi.Method("_OSC", 4, false,
		acpi.CreateDWordField(acpi.Arg(3), 0, "CDW1"),
		acpi.If(acpi.LEqual(acpi.Arg(0), acpi.UUID(pciHostBridgeUUID)),
			acpi.CreateDWordField(acpi.Arg(3), 8, "CDW3"),
			acpi.And(cdw3, acpi.Int(oscGranted), acpi.Local(0)),
			acpi.If(acpi.LNotEqual(acpi.Arg(1), acpi.One),
				acpi.Or(cdw1, acpi.Int(oscUnrecognizedRevision), cdw1)),
			acpi.If(acpi.LNotEqual(acpi.Local(0), cdw3),
				acpi.Or(cdw1, acpi.Int(oscCapabilitiesMasked), cdw1)),
			acpi.Store(acpi.Local(0), cdw3),
		),
		acpi.Else(
			acpi.Or(cdw1, acpi.Int(oscUnrecognizedUUID), cdw1),
		),
		acpi.Return(acpi.Arg(3)),
	)
}

// MCFGEntry is the segment's entry in the MCFG table: its ECAM, bus 0.
func (s *Segment) MCFGEntry() acpi.MCFGEntry {
	return acpi.MCFGEntry{Base: s.cfg.ECAM, Segment: s.cfg.ID}
}
