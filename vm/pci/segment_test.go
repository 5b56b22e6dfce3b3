package pci

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/vmmdev/vmm/acpi"
	"github.com/vmmdev/vmm/acpi/acpitest"
)

// testSegmentConfig is segment id's placement, as the machine lays it out.
func testSegmentConfig(id uint16) SegmentConfig {
	return SegmentConfig{
		ID:       id,
		ECAM:     0xe000_0000 + uint64(id)*ECAMSize,
		Window32: Window{Base: 0xc000_0000 + uint64(id)<<24, Size: 16 << 20},
		Window64: Window{Base: 0x1_0000_0000 + uint64(id)<<34, Size: 16 << 30},
		ConfigIO: id == 0,
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func newTestSegment(t *testing.T, id uint16) *Segment {
	t.Helper()
	s, err := NewSegment(testSegmentConfig(id))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ecamRead reads n bytes of device dev's register reg through the ECAM.
func ecamRead(s *Segment, dev, fn int, reg uint64, n int) uint32 {
	b := make([]byte, n)
	s.ECAMDevice().Read(uint64(dev)<<15|uint64(fn)<<12|reg, b)
	var w [4]byte
	copy(w[:], b)
	return binary.LittleEndian.Uint32(w[:])
}

func ecamWrite(s *Segment, dev int, reg uint64, n int, v uint32) {
	var w [4]byte
	binary.LittleEndian.PutUint32(w[:], v)
	s.ECAMDevice().Write(uint64(dev)<<15|reg, w[:n])
}

func TestSegmentHasAHostBridgeAndNothingElseAtFirst(t *testing.T) {
	s := newTestSegment(t, 0)
	for _, c := range []struct {
		name      string
		dev, fn   int
		reg       uint64
		n         int
		want      uint32
		viaConfIO bool
	}{
		{"host bridge ids", 0, 0, RegVendorID, 4, 0x0008_1b36, false},
		{"host bridge class", 0, 0, RegRevision, 4, 0x0600_0000, false},
		{"host bridge ids through 0xcf8", 0, 0, RegVendorID, 4, 0x0008_1b36, true},
		{"host bridge class word through 0xcfe", 0, 0, RegClass + 1, 2, 0x0600, true},
		{"an empty slot", 1, 0, RegVendorID, 4, 0xffffffff, false},
		{"an empty slot through 0xcf8", 31, 0, RegVendorID, 2, 0xffff, true},
		{"function 1 of the host bridge", 0, 1, RegVendorID, 4, 0xffffffff, false},
		{"function 7 through 0xcf8", 0, 7, RegVendorID, 4, 0xffffffff, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got uint32
			if c.viaConfIO {
				got = confIORead(s, c.dev, c.fn, c.reg, c.n)
			} else {
				got = ecamRead(s, c.dev, c.fn, c.reg, c.n)
			}
			if got != c.want {
				t.Errorf("read %#x, want %#x", got, c.want)
			}
		})
	}
	if d, err := s.FreeDevice(); err != nil || d != 1 {
		t.Errorf("FreeDevice = %d, %v", d, err)
	}
}

// confIORead reads through the legacy ports: CONFIG_ADDRESS, then the
// data port at the register's byte.
func confIORead(s *Segment, dev, fn int, reg uint64, n int) uint32 {
	c := NewConfigIO(s)
	var a [4]byte
	binary.LittleEndian.PutUint32(a[:], configEnable|uint32(dev)<<11|uint32(fn)<<8|uint32(reg&0xfc))
	c.Write(0, a[:])
	b := make([]byte, n)
	c.Read(configDataPort+reg%4, b)
	var w [4]byte
	copy(w[:], b)
	return binary.LittleEndian.Uint32(w[:])
}

func TestConfigIOAddressRegisterAsLinuxProbesIt(t *testing.T) {
	c := NewConfigIO(newTestSegment(t, 0))
	// pci_check_type1: a byte to 0xcfb, then 0x80000000 must read back.
	c.Write(3, []byte{1})
	var w [4]byte
	binary.LittleEndian.PutUint32(w[:], 0x8000_0000)
	c.Write(0, w[:])
	c.Read(0, w[:])
	if got := binary.LittleEndian.Uint32(w[:]); got != 0x8000_0000 {
		t.Errorf("CONFIG_ADDRESS reads %#x, want 0x80000000", got)
	}
	// pci_check_type2 reads bytes of 0xcf8 and 0xcfa: not zero here.
	b := []byte{0}
	c.Read(0, b)
	if b[0] == 0 {
		t.Error("a byte read of 0xcf8 reads zero: the guest would find mechanism #2")
	}
	// Reserved bits are dropped; disabled or other-bus accesses read ones.
	binary.LittleEndian.PutUint32(w[:], 0x7f00_0003)
	c.Write(0, w[:])
	c.Read(0, w[:])
	if got := binary.LittleEndian.Uint32(w[:]); got != 0 {
		t.Errorf("CONFIG_ADDRESS %#x after writing reserved bits", got)
	}
	binary.LittleEndian.PutUint32(w[:], configEnable|1<<16)
	c.Write(0, w[:])
	c.Read(configDataPort, w[:])
	if got := binary.LittleEndian.Uint32(w[:]); got != 0xffffffff {
		t.Errorf("bus 1 reads %#x", got)
	}
	// An access crossing the data dword reads ones.
	binary.LittleEndian.PutUint32(w[:], configEnable)
	c.Write(0, w[:])
	c.Read(configDataPort+3, w[:2])
	if w[0] != 0xff || w[1] != 0xff {
		t.Errorf("a word at 0xcff read %x", w[:2])
	}
}

// testDevice is a function with a 32-bit and a 64-bit BAR.
func testDevice(t *testing.T) (*Function, *recordingHandler) {
	t.Helper()
	h := &recordingHandler{}
	f := NewFunction(testHeader, h)
	if err := f.SetBAR(0, BAR{Size: 64 << 10, Kind: BARMem64}); err != nil {
		t.Fatal(err)
	}
	if err := f.SetBAR(2, BAR{Size: 4 << 10, Kind: BARMem32}); err != nil {
		t.Fatal(err)
	}
	return f, h
}

func TestAddPlacesBARsLikeAFirmwareAndRoutesTheirAccesses(t *testing.T) {
	s := newTestSegment(t, 1)
	cfg := s.Config()
	var a, b *Function
	var ha *recordingHandler
	a, ha = testDevice(t)
	b, _ = testDevice(t)
	var heard []string
	a.OnBARChange(func(bar int, base uint64, on bool) {
		heard = append(heard, fmt.Sprintf("%d %#x %v", bar, base, map[bool]string{true: "on", false: "off"}[on]))
	})
	if err := s.Add(3, a); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(4, b); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(4, b); err == nil {
		t.Error("device 4 taken twice")
	}
	for _, bad := range []int{0, 32, -1} {
		if err := s.Add(bad, NewFunction(testHeader, nil)); err == nil {
			t.Errorf("device %d accepted", bad)
		}
	}
	if a.BDF().String() != "0001:00:03.0" || b.BDF().String() != "0001:00:04.0" {
		t.Errorf("BDFs %s, %s", a.BDF(), b.BDF())
	}
	for _, c := range []struct {
		f    *Function
		bar  int
		want uint64
	}{
		{a, 0, cfg.Window64.Base},
		{a, 2, cfg.Window32.Base},
		{b, 0, cfg.Window64.Base + 64<<10},
		{b, 2, cfg.Window32.Base + 4<<10},
	} {
		if base, on := c.f.Decoded(c.bar); base != c.want || !on {
			t.Errorf("%s BAR %d decodes at %#x (%v), want %#x", c.f.BDF(), c.bar, base, on, c.want)
		}
	}
	if len(heard) != 2 || heard[0] != "0 "+hex(cfg.Window64.Base)+" on" {
		t.Errorf("listener heard %v", heard)
	}
	// The configuration space shows them too, through the ECAM.
	if got := ecamRead(s, 3, 0, RegBAR0+4, 4); got != uint32(cfg.Window64.Base>>32) {
		t.Errorf("BAR 0 high %#x", got)
	}
	if got := ecamRead(s, 3, 0, RegCommand, 2); got != CommandMemory {
		t.Errorf("command %#x, want memory decoding on", got)
	}

	w64 := s.WindowDevice(cfg.Window64)
	var d [4]byte
	w64.Read(0x10, d[:])
	if d != [4]byte{0x10, 0x11, 0x12, 0x13} {
		t.Errorf("read of a's BAR 0 gave % x", d)
	}
	w64.Write(64<<10+8, []byte{7})
	if len(ha.writes) != 0 {
		t.Errorf("b's write reached a: %v", ha.writes)
	}
	w64.Write(0x20, []byte{9, 9})
	if len(ha.writes) != 1 || ha.writes[0].bar != 0 || ha.writes[0].offset != 0x20 {
		t.Errorf("a's writes %v", ha.writes)
	}

	// The guest moves a's BAR 0 up by 1 MiB: the old address reads ones.
	moved := cfg.Window64.Base + 1<<20
	ecamWrite(s, 3, RegBAR0, 4, uint32(moved))
	ecamWrite(s, 3, RegBAR0+4, 4, uint32(moved>>32))
	w64.Read(0x10, d[:])
	if d != [4]byte{0xff, 0xff, 0xff, 0xff} {
		t.Errorf("the old address still decodes: % x", d)
	}
	w64.Read(1<<20+0x10, d[:])
	if d != [4]byte{0x10, 0x11, 0x12, 0x13} {
		t.Errorf("the new address reads % x", d)
	}
	if heard[len(heard)-1] != "0 "+hex(moved)+" on" {
		t.Errorf("listener heard %v", heard)
	}
	// Decoding off: nothing decodes; a BAR moved outside the windows
	// decodes nowhere either.
	ecamWrite(s, 3, RegCommand, 2, 0)
	w64.Read(1<<20+0x10, d[:])
	if d != [4]byte{0xff, 0xff, 0xff, 0xff} {
		t.Errorf("decoding off, yet % x", d)
	}
	ecamWrite(s, 3, RegBAR0+4, 4, 0x40)
	ecamWrite(s, 3, RegCommand, 2, CommandMemory)
	if len(*s.maps.Load()) != 3 {
		t.Errorf("maps %v: a BAR outside the windows is mapped", *s.maps.Load())
	}
}

func hex(v uint64) string { return fmt.Sprintf("%#x", v) }

func TestAddRefusesBARsThatDoNotFit(t *testing.T) {
	s := newTestSegment(t, 0)
	f := NewFunction(testHeader, nil)
	if err := f.SetBAR(0, BAR{Size: 32 << 20, Kind: BARMem32}); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(1, f); err == nil {
		t.Error("a 32 MiB BAR fit a 16 MiB window")
	}
	if d, _ := s.FreeDevice(); d != 1 {
		t.Errorf("a refused device took device %d", d)
	}
}

func TestNewSegmentRefusesBadPlacements(t *testing.T) {
	for _, c := range []struct {
		name string
		mod  func(*SegmentConfig)
	}{
		{"config ports on segment 1", func(c *SegmentConfig) { c.ID, c.ConfigIO = 1, true }},
		{"a 32-bit window above 4 GiB", func(c *SegmentConfig) { c.Window32.Base = 0xffff_0000 }},
		{"no 64-bit window", func(c *SegmentConfig) { c.Window64.Size = 0 }},
	} {
		cfg := testSegmentConfig(0)
		c.mod(&cfg)
		if _, err := NewSegment(cfg); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}

func TestHostBridgesDisassembleWithIASL(t *testing.T) {
	s0, s1 := newTestSegment(t, 0), newTestSegment(t, 1)
	dsdt, err := acpi.DSDT(acpi.SystemBus(s0, s1))
	if err != nil {
		t.Fatal(err)
	}
	dsl := acpitest.Disassemble(t, dsdt)
	for _, want := range []string{
		`Device (PCI0)`, `Device (PCI1)`,
		`Name (_HID, EisaId ("PNP0A08") /* PCI Express Bus */)`,
		`Name (_CID, EisaId ("PNP0A03") /* PCI Bus */)`,
		`Name (_SEG, One)`, `Name (_BBN, Zero)`,
		`WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,`,
		`IO (Decode16,`, `0x0CF8,             // Range Minimum`,
		`0xC0000000,         // Range Minimum`, `0xC1FFFFFF,         // Range Maximum`,
		`0x0000000500000000, // Range Minimum`,
		`Method (_OSC, 4, NotSerialized)`, `ToUUID ("33db4d5b-1ff7-401c-9657-7441c03dd766")`,
	} {
		if !strings.Contains(dsl, want) {
			t.Errorf("disassembly lacks %q:\n%s", want, dsl)
		}
	}
	if strings.Count(dsl, "0x0CF8") != 2 {
		t.Errorf("the configuration ports appear %d times, want once (segment 0: min and max)", strings.Count(dsl, "0x0CF8"))
	}
	mcfg := acpi.MCFG([]acpi.MCFGEntry{s0.MCFGEntry(), s1.MCFGEntry()})
	if !strings.Contains(acpitest.Disassemble(t, mcfg), "Base Address : 00000000E0100000") {
		t.Error("MCFG lacks segment 1's ECAM")
	}
}

// iasl cannot run AML: the disassembly above shows _OSC's logic, and the
// constants say what it grants.
func TestOSCGrantsWhatNoFirmwareHandlesAndKeepsHotPlug(t *testing.T) {
	if oscGranted&(oscNativeHotplug|oscSHPCHotplug) != 0 {
		t.Error("_OSC grants native hot plug")
	}
	for _, bit := range []int{oscPME, oscAER, oscPCIeCap, oscLTR, oscDPC} {
		if oscGranted&bit == 0 {
			t.Errorf("_OSC does not grant %#x", bit)
		}
	}
}

func TestRemoveEmptiesTheSlotAndGivesTheLastBARsBack(t *testing.T) {
	s := newTestSegment(t, 0)
	cfg := s.Config()
	a, _ := testDevice(t)
	b, _ := testDevice(t)
	if err := s.Add(1, a); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(2, b); err != nil {
		t.Fatal(err)
	}
	if got := s.Remove(2); got != b {
		t.Fatalf("Remove(2) returned %v", got)
	}
	if got := ecamRead(s, 2, 0, 0, 4); got != 0xffff_ffff {
		t.Errorf("device 2's vendor reads %#x after removal", got)
	}
	var d [4]byte
	s.WindowDevice(cfg.Window64).Read(64<<10, d[:])
	if d != [4]byte{0xff, 0xff, 0xff, 0xff} {
		t.Errorf("the removed BAR still decodes: % x", d)
	}
	if s.Remove(2) != nil || s.Remove(0) != nil || s.Remove(40) != nil {
		t.Error("Remove of an empty, the host bridge's or a bad slot returned a function")
	}
	// The next device gets the removed one's BAR addresses back.
	c, _ := testDevice(t)
	if err := s.Add(2, c); err != nil {
		t.Fatal(err)
	}
	if base, _ := c.Decoded(0); base != cfg.Window64.Base+64<<10 {
		t.Errorf("the re-added device's BAR 0 is at %#x", base)
	}
	if base, _ := c.Decoded(2); base != cfg.Window32.Base+4<<10 {
		t.Errorf("the re-added device's BAR 2 is at %#x", base)
	}
	if dev, err := s.FreeDevice(); err != nil || dev != 3 {
		t.Errorf("FreeDevice = %d, %v", dev, err)
	}
}
