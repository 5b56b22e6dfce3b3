package hotplug

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vmmdev/vmm/acpi"
	"github.com/vmmdev/vmm/acpi/acpitest"
)

// Addresses and interrupts of the test machine.
const (
	testGEDBase = 0xfed00000
	testCPUBase = 0xfed00010
	testMemBase = 0xfed00040
	testGEDGSI  = 23
)

// serialPort is the COM1 UART as the boot code describes it.
type serialPort struct{}

func (serialPort) AML() acpi.Aml {
	return acpi.Device("COM1",
		acpi.Name("_HID", acpi.EISAID("PNP0501")),
		acpi.Name("_UID", acpi.Zero),
		acpi.Name("_CRS", acpi.ResourceTemplate(
			acpi.IO{Min: 0x3f8, Max: 0x3f8, Align: 1, Length: 8},
			acpi.Interrupt{GSIs: []uint32{4}},
		)),
	)
}

// fakeIRQ counts interrupts and can fail.
type fakeIRQ struct {
	count int
	err   error
}

func (f *fakeIRQ) Trigger() error {
	f.count++
	return f.err
}

// fakeOwner records ejected CPUs.
// fakeOwner is a fake CPUOwner that records the owner calls.
type fakeOwner struct {
	ejected []int
	refused []int
	ignored []int
	codes   []uint32
}

func (f *fakeOwner) EjectCPU(id int)     { f.ejected = append(f.ejected, id) }
func (f *fakeOwner) EjectIgnored(id int) { f.ignored = append(f.ignored, id) }
func (f *fakeOwner) EjectRefused(id int, status uint32) {
	f.refused = append(f.refused, id)
	f.codes = append(f.codes, status)
}

// buildDSDT builds the DSDT a VM with boot/max CPUs and the given memory
// slots has: GED with power button, CPU and memory hot plug, a serial port.
func buildDSDT(t *testing.T, boot, max, slots int) []byte {
	t.Helper()
	ged, err := NewGED(GEDConfig{Base: testGEDBase, GSI: testGEDGSI, Events: EventCPU | EventMemory | EventPowerButton}, &fakeIRQ{})
	if err != nil {
		t.Fatal(err)
	}
	cpus, err := NewCPUHotplug(testCPUBase, boot, max, &fakeOwner{})
	if err != nil {
		t.Fatal(err)
	}
	mem, err := NewMemoryHotplug(testMemBase, slots)
	if err != nil {
		t.Fatal(err)
	}
	dsdt, err := acpi.DSDT(acpi.SystemBus(ged, PowerButton{}, cpus, mem, serialPort{}), acpi.SleepState(5, 5))
	if err != nil {
		t.Fatal(err)
	}
	return dsdt
}

func TestFullDSDTFor4Of8CPUsAnd64SlotsDisassemblesCleanly(t *testing.T) {
	dsl := acpitest.Disassemble(t, buildDSDT(t, 4, 8, 64))
	want := []string{
		"Device (GED)", `Name (_HID, "ACPI0013"`, "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )",
		"OperationRegion (GDST, SystemMemory, 0xFED00000, 0x04)",
		"Method (_EVT, 1, Serialized)", `\_SB.CPUS.CSCN ()`, `\_SB.MHPC.MSCN ()`, `Notify (\_SB.PWRB, 0x80)`,
		"Device (PWRB)", `EisaId ("PNP0C0C")`,
		"Device (CPUS)", `Name (_HID, "ACPI0010"`, "Mutex (CMTX, 0x00)",
		"OperationRegion (CREG, SystemMemory, 0xFED00010, 0x10)", "Method (COST, 3, Serialized)", "Method (_OST, 3, NotSerialized)",
		"Method (CSCN, 0, Serialized)", "Method (CTFY, 2, NotSerialized)",
		"Device (MHPC)", `EisaId ("PNP0A06")`, "Mutex (MMTX, 0x00)",
		"OperationRegion (MREG, SystemMemory, 0xFED00040, 0x20)",
		"Method (MSCN, 0, Serialized)", "Method (MCRS, 1, Serialized)", "QWordMemory (ResourceConsumer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite,",
		"CreateQWordField (MR64, \\_SB.MHPC.MCRS._Y00._MIN, MINL)", "CreateQWordField (MR64, \\_SB.MHPC.MCRS._Y00._MAX, MAXL)",
		"CreateQWordField (MR64, \\_SB.MHPC.MCRS._Y00._LEN, LENL)", "MAXL = ((MINL + LENL) - One)",
		"Device (COM1)", `EisaId ("PNP0501")`,
		`Name (\_S5, Package (0x02)`,
	}
	for id := 0; id < 8; id++ {
		want = append(want, fmt.Sprintf("Device (CP%02X)", id))
	}
	want = append(want, "Device (M000)", "Device (M03F)")
	for _, w := range want {
		if !strings.Contains(dsl, w) {
			t.Errorf("disassembly lacks %q", w)
		}
	}
	if n := strings.Count(dsl, `Name (_HID, "ACPI0007"`); n != 8 {
		t.Errorf("%d processor devices, want one per possible CPU (8)", n)
	}
	if n := strings.Count(dsl, `EisaId ("PNP0C80")`); n != 64 {
		t.Errorf("%d memory devices, want 64", n)
	}
	for _, m := range []string{"_STA", "_MAT", "_EJ0"} {
		if n := strings.Count(dsl, "Method ("+m+","); n < 8 {
			t.Errorf("%d %s methods, want one per CPU", n, m)
		}
	}
	if t.Failed() {
		t.Logf("disassembly:\n%s", dsl)
	}
}

func TestMADTFor4Of8CPUsDisassemblesWithOneEntryPerPossibleCPU(t *testing.T) {
	madt, err := acpi.MADT(acpi.MADTConfig{
		LocalAPICAddr: 0xfee00000, PCATCompat: true, IOAPICAddr: 0xfec00000,
		BootCPUs: 4, MaxCPUs: 8, Overrides: []acpi.InterruptOverride{{Source: 0, GSI: 2}},
	})
	if err != nil {
		t.Fatal(err)
	}
	dsl := acpitest.Disassemble(t, madt)
	if n := strings.Count(dsl, "[Processor Local APIC]"); n != 8 {
		t.Errorf("%d Local APIC entries, want 8", n)
	}
}

func TestDSDTWith256MemorySlotsAnd255CPUsDisassembles(t *testing.T) {
	dsl := acpitest.Disassemble(t, buildDSDT(t, 1, 255, 256))
	for _, w := range []string{"Device (M0FF)", "Device (CPFE)"} {
		if !strings.Contains(dsl, w) {
			t.Errorf("disassembly lacks %q", w)
		}
	}
}
