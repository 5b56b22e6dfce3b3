package vm

import (
	"fmt"

	"github.com/vmmdev/vmm/acpi"
	"github.com/vmmdev/vmm/vm/devices"
	"github.com/vmmdev/vmm/vm/layout"
)

// ioapicID is the in-kernel IOAPIC's id: KVM resets its ID register to 0.
const ioapicID = 0

// acpiTables builds the guest's tables, to be written at layout.ACPIStart:
// a hardware-reduced FADT with the sleep and reset registers of pm, a MADT
// with the topology's processors (bootVCPUs enabled, the rest online
// capable, each with its APIC id), an MCFG with the PCI segments' ECAM
// areas, and a DSDT with \_S5 and the devices (the host bridges among
// them) in \_SB.
func acpiTables(bootVCPUs int, topo Topology, pm *devices.ACPIPM, mcfg []acpi.MCFGEntry, sb ...acpi.Describer) ([]byte, error) {
	dsdt, err := acpi.DSDT(pm.RootAML(), acpi.SystemBus(sb...))
	if err != nil {
		return nil, fmt.Errorf("DSDT: %w", err)
	}
	madt, err := acpi.MADT(acpi.MADTConfig{
		LocalAPICAddr: layout.LAPICStart,
		PCATCompat:    true,
		IOAPICID:      ioapicID,
		IOAPICAddr:    layout.IOAPICStart,
		IOAPICGSIBase: 0,
		BootCPUs:      bootVCPUs,
		MaxCPUs:       topo.count(),
		APICIDs:       topo.APICIDs(),
		// The PIT's IRQ 0 is wired to IOAPIC pin 2, as on every PC; the GSI
		// routing (irq.IOAPICRoutes) matches.
		Overrides: []acpi.InterruptOverride{{Source: 0, GSI: 2, Flags: acpi.INTIConforms}},
		LINT1NMI:  true,
	})
	if err != nil {
		return nil, fmt.Errorf("MADT: %w", err)
	}
	fadt := acpi.FADTConfig{
		ResetPort:        layout.ResetRegisterPort,
		ResetValue:       layout.ResetValue,
		SleepControlPort: layout.SleepControlPort,
		SleepStatusPort:  layout.SleepStatusPort,
		// No VGA, no CMOS RTC; no 8042 either, so Linux does not probe for a
		// keyboard (the i8042 is here only for its reset line).
		BootArch: acpi.BootArchVGANotPresent | acpi.BootArchNoCMOSRTC,
	}
	tables := acpi.Layout(layout.ACPIStart, fadt, dsdt, madt, acpi.MCFG(mcfg))
	if len(tables) > layout.ResetVector-layout.ACPIStart {
		return nil, fmt.Errorf("ACPI tables of %d bytes do not fit in %d", len(tables), layout.ResetVector-layout.ACPIStart)
	}
	return tables, nil
}
