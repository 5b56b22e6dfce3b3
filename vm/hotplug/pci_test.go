package hotplug

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vmmdev/vmm/acpi"
	"github.com/vmmdev/vmm/acpi/acpitest"
)

const testPCIBase = 0xfed00060

// fakePCIOwner records the ejected slots.
type fakePCIOwner struct {
	ejected [][2]int
}

func (f *fakePCIOwner) EjectPCI(segment, slot int) {
	f.ejected = append(f.ejected, [2]int{segment, slot})
}

func newTestPCIHotplug(t *testing.T, segments int) (*PCIHotplug, *fakePCIOwner) {
	t.Helper()
	owner := &fakePCIOwner{}
	p, err := NewPCIHotplug(testPCIBase, segments, owner)
	if err != nil {
		t.Fatal(err)
	}
	return p, owner
}

// writeU32 writes a 32-bit register.
func writeU32(dev interface{ Write(uint64, []byte) }, off uint64, v uint32) {
	dev.Write(off, []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)})
}

func TestPCIHotplugScanReadsEachSegmentsSlotsOnce(t *testing.T) {
	p, _ := newTestPCIHotplug(t, 2)
	for _, c := range []struct{ seg, slot int }{{0, 3}, {0, 5}, {1, 1}} {
		if err := p.SetInserting(c.seg, c.slot); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.SetRemoving(1, 7); err != nil {
		t.Fatal(err)
	}
	// The scan, as PSCN does it: select, read up, read down.
	writeU32(p, PCISegmentOffset, 0)
	if up, down := readU32(p, PCIUpOffset), readU32(p, PCIDownOffset); up != 1<<3|1<<5 || down != 0 {
		t.Errorf("segment 0: up %#x down %#x", up, down)
	}
	if up := readU32(p, PCIUpOffset); up != 0 {
		t.Errorf("segment 0: up %#x on a second read, want cleared", up)
	}
	writeU32(p, PCISegmentOffset, 1)
	if got := readU32(p, PCISegmentOffset); got != 1 {
		t.Errorf("selector reads %d", got)
	}
	if up, down := readU32(p, PCIUpOffset), readU32(p, PCIDownOffset); up != 1<<1 || down != 1<<7 {
		t.Errorf("segment 1: up %#x down %#x", up, down)
	}
	if up, down := p.Pending(1); up != 0 || down != 0 {
		t.Errorf("pending %#x %#x after the scan", up, down)
	}
}

func TestPCIHotplugRemovalAfterInsertionReplacesIt(t *testing.T) {
	p, _ := newTestPCIHotplug(t, 1)
	_ = p.SetInserting(0, 4)
	_ = p.SetRemoving(0, 4)
	if up, down := p.Pending(0); up != 0 || down != 1<<4 {
		t.Errorf("pending up %#x down %#x, want the removal only", up, down)
	}
	_ = p.SetInserting(0, 4)
	if up, down := p.Pending(0); up != 1<<4 || down != 0 {
		t.Errorf("pending up %#x down %#x, want the insertion only", up, down)
	}
}

func TestPCIHotplugEjectCallsTheOwnerForEachSlotOfTheSelectedSegment(t *testing.T) {
	p, owner := newTestPCIHotplug(t, 2)
	_ = p.SetRemoving(1, 2)
	writeU32(p, PCISegmentOffset, 1)
	writeU32(p, PCIEjectOffset, 1<<2|1<<9|1) // slot 0 is never ejected
	want := [][2]int{{1, 2}, {1, 9}}
	if fmt.Sprint(owner.ejected) != fmt.Sprint(want) {
		t.Errorf("ejected %v, want %v", owner.ejected, want)
	}
	if _, down := p.Pending(1); down != 0 {
		t.Errorf("an ejected slot still has a removal pending: %#x", down)
	}
	if got := readU32(p, PCIEjectOffset); got != 0 {
		t.Errorf("eject register reads %#x", got)
	}
	// A byte write to the eject register's second byte: slot 8.
	owner.ejected = nil
	p.Write(PCIEjectOffset+1, []byte{1})
	if fmt.Sprint(owner.ejected) != "[[1 8]]" {
		t.Errorf("byte write ejected %v", owner.ejected)
	}
}

func TestPCIHotplugIgnoresASegmentPastTheLast(t *testing.T) {
	p, owner := newTestPCIHotplug(t, 1)
	_ = p.SetInserting(0, 1)
	writeU32(p, PCISegmentOffset, 5)
	if up := readU32(p, PCIUpOffset); up != 0 {
		t.Errorf("segment 5 reads up %#x", up)
	}
	writeU32(p, PCIEjectOffset, 0xffff_ffff)
	if len(owner.ejected) != 0 {
		t.Errorf("ejected %v on a segment that does not exist", owner.ejected)
	}
	if up, _ := p.Pending(0); up != 1<<1 {
		t.Errorf("segment 0 lost its event: %#x", up)
	}
	// Odd accesses never panic.
	var big [16]byte
	p.Read(0, big[:])
	p.Read(0xfff, big[:])
	p.Write(0xff0, big[:])
}

func TestPCIHotplugRefusesBadArguments(t *testing.T) {
	p, _ := newTestPCIHotplug(t, 2)
	for _, c := range []struct{ seg, slot int }{{-1, 1}, {2, 1}, {0, 0}, {0, 32}} {
		if err := p.SetInserting(c.seg, c.slot); err == nil {
			t.Errorf("SetInserting(%d, %d) succeeded", c.seg, c.slot)
		}
		if err := p.SetRemoving(c.seg, c.slot); err == nil {
			t.Errorf("SetRemoving(%d, %d) succeeded", c.seg, c.slot)
		}
	}
	if _, err := NewPCIHotplug(0, 0, &fakePCIOwner{}); err == nil {
		t.Error("0 segments accepted")
	}
	if _, err := NewPCIHotplug(0, MaxPCISegments+1, &fakePCIOwner{}); err == nil {
		t.Error("17 segments accepted")
	}
	if _, err := NewPCIHotplug(0, 1, nil); err == nil {
		t.Error("nil owner accepted")
	}
}

// hostBridge is a stand-in for vm/pci's host bridge device, holding the
// hot plug slots.
type hostBridge struct {
	seg int
	hp  *PCIHotplug
}

func (h hostBridge) AML() acpi.Aml {
	body := []acpi.Aml{
		acpi.Name("_HID", acpi.EISAID("PNP0A08")),
		acpi.Name("_CID", acpi.EISAID("PNP0A03")),
		acpi.Name("_SEG", acpi.Int(h.seg)),
		acpi.Name("_UID", acpi.Int(h.seg)),
	}
	return acpi.Device(fmt.Sprintf("PCI%X", h.seg), append(body, h.hp.SlotsAML(h.seg)...)...)
}

func TestPCIHotplugDSDTWithTwoSegmentsDisassemblesCleanly(t *testing.T) {
	ged, err := NewGED(GEDConfig{Base: testGEDBase, GSI: testGEDGSI, Events: EventPowerButton | EventPCI}, &fakeIRQ{})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := newTestPCIHotplug(t, 2)
	dsdt, err := acpi.DSDT(acpi.SystemBus(ged, PowerButton{}, p, hostBridge{0, p}, hostBridge{1, p}))
	if err != nil {
		t.Fatal(err)
	}
	dsl := acpitest.Disassemble(t, dsdt)
	want := []string{
		`\_SB.PHPR.PSCN ()`,
		"Device (PHPR)", `EisaId ("PNP0A06")`, "Mutex (BLCK, 0x00)",
		"OperationRegion (PCST, SystemMemory, 0xFED00060, 0x10)",
		"PCIU,   32", "PCID,   32", "B0EJ,   32", "PSEG,   32",
		"Method (PCEJ, 2, Serialized)", "B0EJ = (One << Arg0)",
		"Method (PSCN, 0, Serialized)", `\_SB.PCI0.DVNT (Local0, One)`, `\_SB.PCI1.DVNT (Local1, 0x03)`,
		"Device (PCI0)", "Device (PCI1)", "Method (DVNT, 2, NotSerialized)",
		"Device (S01)", "Device (S1F)", "Name (_ADR, 0x00010000)", "Name (_ADR, 0x001F0000)",
		"Name (_SUN, 0x1F)", `\_SB.PHPR.PCEJ (0x1F, One)`, "Notify (S1F, Arg1)",
	}
	for _, w := range want {
		if !strings.Contains(dsl, w) {
			t.Errorf("disassembly lacks %q", w)
		}
	}
	if n := strings.Count(dsl, "Method (_EJ0, 1, NotSerialized)"); n != 62 {
		t.Errorf("%d _EJ0 methods, want 31 per segment", n)
	}
	if strings.Contains(dsl, "Device (S00)") {
		t.Error("the host bridge's slot has a slot device")
	}
	if t.Failed() {
		t.Logf("disassembly:\n%s", dsl)
	}
}
