package vm

import (
	"fmt"

	"github.com/vmmdev/vmm/acpi"
	"github.com/vmmdev/vmm/kvm"
	"github.com/vmmdev/vmm/vm/bus"
	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/layout"
	"github.com/vmmdev/vmm/vm/pci"
)

// segmentConfig is PCI segment s's placement for a VM with cfg's RAM: its
// ECAM and windows from vm/layout, each segment's at the same place
// whatever the segment count, and the configuration ports on segment 0.
func segmentConfig(s int, cfg *config.VM) pci.SegmentConfig {
	w64 := layout.PCIMMIO64Start(cfg.Memory.Size, cfg.Memory.HotplugSize) + uint64(s)*layout.PCIMMIO64SegmentSize
	return pci.SegmentConfig{
		ID:       uint16(s),
		ECAM:     layout.PCIECAMStart + uint64(s)*layout.PCIECAMSegmentSize,
		Window32: pci.Window{Base: layout.PCIMMIO32Start + uint64(s)*layout.PCIMMIO32SegmentSize, Size: layout.PCIMMIO32SegmentSize},
		Window64: pci.Window{Base: w64, Size: layout.PCIMMIO64SegmentSize},
		ConfigIO: s == 0,
	}
}

// addPCI creates n PCI segments and maps their ECAM and windows on the
// MMIO bus and segment 0's configuration ports on the port bus.
func (m *machine) addPCI(n int) error {
	if n < 1 || n > layout.PCISegmentsMax {
		return invalidf("platform: %d PCI segments: want 1 to %d", n, layout.PCISegmentsMax)
	}
	if bits := physAddrBits(m.deps.cpuid); bits > 0 {
		if end := segmentConfig(n-1, &m.cfg).Window64.End(); end > 1<<bits {
			return invalidf("PCI: the 64-bit BAR windows end at %#x, beyond the guest's %d-bit physical addresses (less hotplug_size, or fewer segments)", end, bits)
		}
	}
	for s := range n {
		c := segmentConfig(s, &m.cfg)
		c.Log = m.log
		seg, err := pci.NewSegment(c)
		if err != nil {
			return err
		}
		m.pci = append(m.pci, seg)
		for _, r := range []struct {
			base, size uint64
			name       string
			dev        bus.Device
		}{
			{c.ECAM, pci.ECAMSize, fmt.Sprintf("pci%d-ecam", s), seg.ECAMDevice()},
			{c.Window32.Base, c.Window32.Size, fmt.Sprintf("pci%d-mmio32", s), seg.WindowDevice(c.Window32)},
			{c.Window64.Base, c.Window64.Size, fmt.Sprintf("pci%d-mmio64", s), seg.WindowDevice(c.Window64)},
		} {
			if err := m.mmBus.Insert(r.base, r.size, r.name, r.dev); err != nil {
				return err
			}
		}
		if c.ConfigIO {
			if err := m.pioBus.Insert(layout.PCIConfigIOPort, layout.PCIConfigIOSize, "pci-config", pci.NewConfigIO(seg)); err != nil {
				return err
			}
		}
	}
	return nil
}

// pciDescribers are the host bridges' DSDT devices, PCI0 first, with
// their hot plug slots when the machine has PCI hot plug.
func (m *machine) pciDescribers() []acpi.Describer {
	d := make([]acpi.Describer, 0, len(m.pci))
	for i, s := range m.pci {
		if m.pciHP == nil {
			d = append(d, s)
			continue
		}
		d = append(d, amlFunc(func() acpi.Aml { return s.AMLWith(m.pciHP.SlotsAML(i)...) }))
	}
	return d
}

// amlFunc adapts a function to acpi.Describer.
type amlFunc func() acpi.Aml

// AML calls f.
func (f amlFunc) AML() acpi.Aml { return f() }

// mcfgEntries are the segments' MCFG entries.
func (m *machine) mcfgEntries() []acpi.MCFGEntry {
	e := make([]acpi.MCFGEntry, 0, len(m.pci))
	for _, s := range m.pci {
		e = append(e, s.MCFGEntry())
	}
	return e
}

// physAddrBits is the guest's physical address width from the CPUID it
// gets (leaf 0x80000008, EAX bits 7-0), or 0 when the leaf is missing.
func physAddrBits(cpuid []kvm.CPUIDEntry) uint {
	for _, e := range cpuid {
		if e.Function == 0x8000_0008 {
			return uint(e.EAX & 0xff)
		}
	}
	return 0
}
