package hotplug_test

import (
	"encoding/binary"
	"fmt"
	"log"

	"github.com/vmmdev/vmm/acpi"
	"github.com/vmmdev/vmm/vm/hotplug"
)

// vcpuOwner stands for the VMM's vCPU manager.
type vcpuOwner struct{}

func (vcpuOwner) EjectCPU(id int)                    { /* park vCPU id */ }
func (vcpuOwner) EjectRefused(id int, status uint32) { /* vCPU id stays: log why */ }
func (vcpuOwner) EjectIgnored(id int)                { /* vCPU id stays: raise the GED */ }

// Example builds the ACPI tables of a VM with --cpus boot=4,max=8 and
// memory hot plug: the hot plug devices describe themselves in the DSDT,
// and acpi.Layout chains the tables for the zero page's acpi_rsdp_addr.
func Example() {
	const (
		tablesAddr = 0xe0000    // where the boot code copies the tables
		gedAddr    = 0xfed00000 // MMIO blocks of the hot plug devices
		cpuAddr    = gedAddr + hotplug.GEDSize
		memAddr    = cpuAddr + hotplug.CPUBlockSize
		gedGSI     = 23
	)
	ged, err := hotplug.NewGED(hotplug.GEDConfig{
		Base:   gedAddr,
		GSI:    gedGSI,
		Events: hotplug.EventCPU | hotplug.EventMemory | hotplug.EventPowerButton,
	}, hotplug.IRQFunc(func() error { return nil /* KVM_IRQ_LINE 1, 0 */ }))
	if err != nil {
		log.Fatal(err)
	}
	cpus, err := hotplug.NewCPUHotplug(cpuAddr, 4, 8, vcpuOwner{})
	if err != nil {
		log.Fatal(err)
	}
	mem, err := hotplug.NewMemoryHotplug(memAddr, 64)
	if err != nil {
		log.Fatal(err)
	}

	dsdt, err := acpi.DSDT(
		acpi.SleepState(5, 5),
		acpi.SystemBus(ged, hotplug.PowerButton{}, cpus, mem /* , serial port, ... */),
	)
	if err != nil {
		log.Fatal(err)
	}
	madt, err := acpi.MADT(acpi.MADTConfig{
		LocalAPICAddr: 0xfee00000,
		PCATCompat:    true,
		IOAPICAddr:    0xfec00000,
		BootCPUs:      4,
		MaxCPUs:       8,
		Overrides:     []acpi.InterruptOverride{{Source: 0, GSI: 2}},
	})
	if err != nil {
		log.Fatal(err)
	}
	fadt := acpi.FADTConfig{ResetPort: 0x600, ResetValue: 1, SleepControlPort: 0x601, SleepStatusPort: 0x602}
	blob := acpi.Layout(tablesAddr, fadt, dsdt, madt)

	// Follow the chain from the RSDP.
	at := func(addr uint64) []byte { return blob[addr-tablesAddr:] }
	xsdt := at(binary.LittleEndian.Uint64(blob[24:]))
	fmt.Printf("RSDP at %#x -> %s\n", tablesAddr, xsdt[:4])
	for i := 0; i < 2; i++ {
		t := at(binary.LittleEndian.Uint64(xsdt[acpi.HeaderSize+8*i:]))
		fmt.Printf("XSDT entry %d: %s\n", i, t[:4])
	}

	// A resize to 5 vCPUs, after starting vCPU 4:
	if err := cpus.SetInserting(4); err != nil {
		log.Fatal(err)
	}
	if err := ged.Trigger(hotplug.EventCPU); err != nil {
		log.Fatal(err)
	}
	fmt.Println("CPU 4 present:", cpus.Present(4))
	// Output:
	// RSDP at 0xe0000 -> XSDT
	// XSDT entry 0: FACP
	// XSDT entry 1: APIC
	// CPU 4 present: true
}
