package vm

import (
	"strings"
	"testing"

	"github.com/vmmdev/vmm/acpi/acpitest"
	"github.com/vmmdev/vmm/vm/layout"
)

// FuzzACPITables builds the ACPI tables of random valid machines (boot and
// possible vCPUs, any CPU topology the MADT can hold, up to maxMemorySlots memory hot
// plug slots, 1 to 16 PCI segments) and has iasl disassemble every table
// and compile the disassembly back to the same bytes (acpitest), with no
// error or warning. The tables of every such machine fit their area. iasl
// is required: without it the target fails.
//
//	go test -run='^$' -fuzz=FuzzACPITables -fuzztime=10s ./vm
func FuzzACPITables(f *testing.F) {
	f.Add(uint8(1), uint8(1), uint8(1), uint8(1), uint8(0), uint16(0), uint8(1))
	f.Add(uint8(2), uint8(2), uint8(4), uint8(1), uint8(1), uint16(64), uint8(2))
	f.Add(uint8(1), uint8(1), uint8(255), uint8(1), uint8(0), uint16(maxMemorySlots), uint8(15))
	f.Fuzz(func(t *testing.T, boot, threads, cores, dies, packages uint8, memSlots uint16, segments uint8) {
		topo := Topology{Threads: 1 + int(threads)%4, Cores: 1 + int(cores)%64, Dies: 1 + int(dies)%2, Packages: 1 + int(packages)%4}
		if topo.check() != nil {
			return // a topology vmm refuses
		}
		n := topo.count()
		slots := int(memSlots) % (maxMemorySlots + 1)
		segs := 1 + int(segments)%layout.PCISegmentsMax
		tables := testTables(t, 1+int(boot)%n, topo, slots, segs)
		for sig, tb := range tables {
			asl := acpitest.Disassemble(t, tb)
			if sig == "APIC" {
				if got := strings.Count(asl, "[Processor Local APIC]"); got != n {
					t.Errorf("MADT has %d processors, want %d", got, n)
				}
			}
		}
	})
}

// TestACPITablesOfTheLargestMachineFit: 255 vCPUs, every memory hot plug
// slot and 16 PCI segments; the fuzz target covers the machines between.
func TestACPITablesOfTheLargestMachineFit(t *testing.T) {
	testTables(t, 1, flatTopology(255), maxMemorySlots, layout.PCISegmentsMax)
}
