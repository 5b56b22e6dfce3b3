package vm

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/vmmdev/vmm/acpi"
	"github.com/vmmdev/vmm/acpi/acpitest"
	"github.com/vmmdev/vmm/vm/devices"
	"github.com/vmmdev/vmm/vm/hotplug"
	"github.com/vmmdev/vmm/vm/layout"
)

// tablesAt splits the table set built for layout.ACPIStart into its tables
// by following the RSDP and the XSDT, keyed by signature.
func tablesAt(t *testing.T, blob []byte) map[string][]byte {
	t.Helper()
	le := binary.LittleEndian
	get := func(addr uint64) []byte {
		off := addr - layout.ACPIStart
		n := uint64(le.Uint32(blob[off+4:]))
		return blob[off : off+n]
	}
	if string(blob[:8]) != "RSD PTR " {
		t.Fatalf("no RSDP at the start: %q", blob[:8])
	}
	xsdt := get(le.Uint64(blob[24:]))
	out := map[string][]byte{"XSDT": xsdt}
	for off := acpi.HeaderSize; off < len(xsdt); off += 8 {
		tb := get(le.Uint64(xsdt[off:]))
		out[string(tb[:4])] = tb
	}
	fadt := out["FACP"]
	out["DSDT"] = get(le.Uint64(fadt[140:])) // X_DSDT
	return out
}

type nopIRQ struct{}

func (nopIRQ) Trigger() error { return nil }

// nopCPUOwner is a fake hotplug.CPUOwner that ignores the guest's ejects.
type nopCPUOwner struct{}

func (nopCPUOwner) EjectCPU(int)             {}
func (nopCPUOwner) EjectRefused(int, uint32) {}
func (nopCPUOwner) EjectIgnored(int)         {}

// testTables builds the ACPI tables of a machine with boot of max vCPUs
// laid out as topo, memSlots memory hot plug slots (0: none) and segments
// PCI segments, with the power button, GED, serial port and PCI hot plug,
// and splits them by signature.
func testTables(t *testing.T, boot int, topo Topology, memSlots, segments int) map[string][]byte {
	t.Helper()
	tables, err := buildTestTables(t, boot, topo, memSlots, segments)
	if err != nil {
		t.Fatal(err)
	}
	return tables
}

// buildTestTables is testTables returning acpiTables' error.
func buildTestTables(t *testing.T, boot int, topo Topology, memSlots, segments int) (map[string][]byte, error) {
	t.Helper()
	pcim := pciTestMachine(t, segments)
	pm := devices.NewACPIPM(nil, layout.ResetValue, nopLogger())
	serial := devices.NewSerial(layout.COM1Port, layout.COM1IRQ, nopIRQ{}, nil, nopLogger())
	events := hotplug.EventCPU | hotplug.EventPowerButton | hotplug.EventPCI
	pciHP, err := hotplug.NewPCIHotplug(layout.PCIHotplugStart, segments, pcim)
	if err != nil {
		t.Fatal(err)
	}
	pcim.pciHP = pciHP
	cpus, err := hotplug.NewCPUHotplug(layout.CPUHotplugStart, boot, topo.count(), nopCPUOwner{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cpus.SetAPICIDs(topo.APICIDs()); err != nil {
		t.Fatal(err)
	}
	sb := []acpi.Describer{serial, nil, hotplug.PowerButton{}, cpus}
	if memSlots > 0 {
		mem, err := hotplug.NewMemoryHotplug(layout.MemoryHotplugStart, memSlots)
		if err != nil {
			t.Fatal(err)
		}
		sb = append(sb, mem)
		events |= hotplug.EventMemory
	}
	ged, err := hotplug.NewGED(hotplug.GEDConfig{Base: layout.GEDStart, GSI: layout.GEDIRQ, Events: events}, nopIRQ{})
	if err != nil {
		t.Fatal(err)
	}
	sb[1] = ged
	sb = append(sb, pciHP)
	sb = append(sb, pcim.pciDescribers()...)
	blob, err := acpiTables(boot, topo, pm, pcim.mcfgEntries(), sb...)
	if err != nil {
		return nil, err
	}
	return tablesAt(t, blob), nil
}

func TestACPITablesDisassembleCleanlyWithIASL(t *testing.T) {
	for _, c := range []struct {
		name      string
		boot, max int
		memSlots  int
	}{
		{"4 CPUs", 4, 4, 0},
		{"2 of 8 CPUs with memory hot plug", 2, 8, 64},
		// The largest machine: the tables must fit their 128 KiB.
		{"1 of 254 CPUs with the most memory slots", 1, acpi.MaxCPUs, maxMemorySlots},
	} {
		t.Run(c.name, func(t *testing.T) {
			tables := testTables(t, c.boot, flatTopology(c.max), c.memSlots, 2)
			for _, sig := range []string{"DSDT", "FACP", "APIC", "XSDT", "MCFG"} {
				tb, ok := tables[sig]
				if !ok {
					t.Fatalf("no %s table", sig)
				}
				asl := acpitest.Disassemble(t, tb)
				switch sig {
				case "DSDT":
					for _, want := range []string{"_S5_", "PNP0501", "ACPI0013", "PNP0C0C", "ACPI0010", "Device (PCI0)", "Device (PCI1)",
						"Device (PHPR)", `\_SB.PHPR.PSCN ()`, `\_SB.PCI1.DVNT (Local0, One)`, "Device (S1F)", `\_SB.PHPR.PCEJ (0x1F, One)`} {
						if !strings.Contains(asl, want) {
							t.Errorf("DSDT lacks %s", want)
						}
					}
				case "FACP":
					for _, want := range []string{"Hardware Reduced (V5) : 1", "Reset Register Supported", "0000000000000602"} {
						if !strings.Contains(asl, want) {
							t.Errorf("FADT lacks %q:\n%s", want, asl)
						}
					}
				case "MCFG":
					if n := strings.Count(asl, "Base Address :"); n != 2 {
						t.Errorf("MCFG lists %d ECAM areas, want 2:\n%s", n, asl)
					}
				case "APIC":
					if n := strings.Count(asl, "Subtable Type : 00 [Processor Local APIC]"); n != c.max {
						t.Errorf("MADT has %d processors, want %d", n, c.max)
					}
				}
			}
		})
	}
}
