package acpi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/vmmdev/vmm/acpi/acpitest"
)

// Typical x86 values for the tests.
const (
	testLAPIC      = 0xfee00000
	testIOAPIC     = 0xfec00000
	testResetPort  = 0x600
	testSleepCtl   = 0x601
	testSleepSts   = 0x602
	testResetValue = 0x01
)

func testMADTConfig(boot, max int) MADTConfig {
	return MADTConfig{
		LocalAPICAddr: testLAPIC,
		PCATCompat:    true,
		IOAPICAddr:    testIOAPIC,
		BootCPUs:      boot,
		MaxCPUs:       max,
		Overrides:     []InterruptOverride{{Source: 0, GSI: 2}, {Source: 9, GSI: 9, Flags: INTIActiveHigh | INTILevel}},
		LINT1NMI:      true,
	}
}

func testFADTConfig() FADTConfig {
	return FADTConfig{
		DSDTAddr:         0x1000,
		ResetPort:        testResetPort,
		ResetValue:       testResetValue,
		SleepControlPort: testSleepCtl,
		SleepStatusPort:  testSleepSts,
	}
}

// checkTable checks a table's length field and checksum.
func checkTable(t *testing.T, tbl []byte, sig string) {
	t.Helper()
	if len(tbl) < HeaderSize || string(tbl[:4]) != sig {
		t.Fatalf("not a %s table: % x", sig, tbl[:min(len(tbl), 8)])
	}
	if l := binary.LittleEndian.Uint32(tbl[4:]); int(l) != len(tbl) {
		t.Errorf("%s: length field %d, table is %d bytes", sig, l, len(tbl))
	}
	var sum byte
	for _, c := range tbl {
		sum += c
	}
	if sum != 0 {
		t.Errorf("%s: bytes sum to %#x, want 0", sig, sum)
	}
	if string(tbl[10:16]) != OEMID || string(tbl[28:32]) != CreatorID {
		t.Errorf("%s: OEM id %q creator %q", sig, tbl[10:16], tbl[28:32])
	}
}

// wantInDisassembly fails t for each string missing from dsl.
func wantInDisassembly(t *testing.T, dsl string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(dsl, w) {
			t.Errorf("disassembly lacks %q", w)
		}
	}
	if t.Failed() {
		t.Logf("disassembly:\n%s", dsl)
	}
}

func TestRSDPHasBothChecksumsAndPointsAtTheXSDT(t *testing.T) {
	r := RSDP(0x1122334455667788)
	if len(r) != RSDPSize || string(r[:8]) != "RSD PTR " || r[15] != 2 {
		t.Fatalf("bad RSDP % x", r)
	}
	sum := func(b []byte) (s byte) {
		for _, c := range b {
			s += c
		}
		return s
	}
	if sum(r[:20]) != 0 {
		t.Errorf("first 20 bytes sum to %#x", sum(r[:20]))
	}
	if sum(r) != 0 {
		t.Errorf("all 36 bytes sum to %#x", sum(r))
	}
	if got := binary.LittleEndian.Uint32(r[20:]); got != RSDPSize {
		t.Errorf("length %d", got)
	}
	if got := binary.LittleEndian.Uint64(r[24:]); got != 0x1122334455667788 {
		t.Errorf("XSDT address %#x", got)
	}
	if string(r[9:15]) != OEMID {
		t.Errorf("OEM id %q", r[9:15])
	}
}

func TestXSDTDisassemblesWithItsEntries(t *testing.T) {
	x := XSDT([]uint64{0x1000, 0x100002000})
	checkTable(t, x, "XSDT")
	dsl := acpitest.Disassemble(t, x)
	wantInDisassembly(t, dsl, "ACPI Table Address   0 : 0000000000001000", "ACPI Table Address   1 : 0000000100002000")
}

func TestFADTIsHardwareReducedRevision6(t *testing.T) {
	f := FADT(testFADTConfig())
	checkTable(t, f, "FACP")
	if len(f) != FADTSize || f[8] != 6 || f[131] != FADTMinorRevision {
		t.Fatalf("length %d revision %d.%d", len(f), f[8], f[131])
	}
	dsl := acpitest.Disassemble(t, f)
	wantInDisassembly(t, dsl,
		"Revision : 06",
		"FADT Minor Revision : 05",
		"Hardware Reduced (V5) : 1",
		"Reset Register Supported (V2) : 1",
		"Control Method Power Button (V1) : 1",
		"DSDT Address : 0000000000001000",
		"Value to cause reset : 01",
		"Address : 0000000000000600",
		"Address : 0000000000000601",
		"Address : 0000000000000602",
	)
}

func TestFADTWithoutResetPortHasNoResetRegister(t *testing.T) {
	f := FADT(FADTConfig{DSDTAddr: 0x1000})
	if flags := binary.LittleEndian.Uint32(f[112:]); flags&FADTResetRegSup != 0 || flags&FADTHWReducedACPI == 0 {
		t.Errorf("flags %#x", flags)
	}
	acpitest.Disassemble(t, f)
}

func TestMADTEnablesBootCPUsAndMarksTheRestOnlineCapable(t *testing.T) {
	m, err := MADT(testMADTConfig(4, 8))
	if err != nil {
		t.Fatal(err)
	}
	checkTable(t, m, "APIC")
	if m[8] < 5 {
		t.Errorf("revision %d, want 5 or later", m[8])
	}
	// Walk the entries.
	var enabled, capable []int
	for off := HeaderSize + 8; off < len(m); off += int(m[off+1]) {
		if m[off] != 0 {
			continue
		}
		uid, apic, flags := m[off+2], m[off+3], binary.LittleEndian.Uint32(m[off+4:])
		if uid != apic {
			t.Errorf("entry at %d: uid %d apic id %d", off, uid, apic)
		}
		switch flags {
		case LocalAPICEnabled:
			enabled = append(enabled, int(uid))
		case LocalAPICOnlineCapable:
			capable = append(capable, int(uid))
		default:
			t.Errorf("CPU %d: flags %#x", uid, flags)
		}
	}
	if len(enabled) != 4 || enabled[3] != 3 || len(capable) != 4 || capable[0] != 4 || capable[3] != 7 {
		t.Errorf("enabled %v online capable %v, want 0-3 and 4-7", enabled, capable)
	}
	dsl := acpitest.Disassemble(t, m)
	wantInDisassembly(t, dsl,
		"Revision : 05",
		"Local Apic Address : FEE00000",
		"Subtable Type : 01 [I/O APIC]",
		"Address : FEC00000",
		"Subtable Type : 02 [Interrupt Source Override]",
		"Subtable Type : 04 [Local APIC NMI]",
		"Interrupt Input LINT : 01",
	)
	if n := strings.Count(dsl, "Processor Enabled : 1"); n != 4 {
		t.Errorf("%d enabled processors, want 4", n)
	}
	if n := strings.Count(dsl, "Runtime Online Capable : 1"); n != 4 {
		t.Errorf("%d online capable processors, want 4", n)
	}
}

func TestMADTRefusesImpossibleCPUCounts(t *testing.T) {
	for _, c := range [][2]int{{0, 1}, {2, 1}, {1, 256}} {
		if _, err := MADT(testMADTConfig(c[0], c[1])); err == nil {
			t.Errorf("boot=%d max=%d: no error", c[0], c[1])
		}
	}
	if _, err := MADT(testMADTConfig(255, 255)); err != nil {
		t.Errorf("255 CPUs: %v", err)
	}
}

func TestDSDTWithASerialPortDisassembles(t *testing.T) {
	d, err := DSDT(
		Scope(`\_SB`, Device("COM1",
			Name("_HID", EISAID("PNP0501")),
			Name("_UID", Zero),
			Name("_CRS", ResourceTemplate(
				IO{Min: 0x3f8, Max: 0x3f8, Align: 1, Length: 8},
				Interrupt{GSIs: []uint32{4}},
			)),
		)),
		SleepState(5, 5),
	)
	if err != nil {
		t.Fatal(err)
	}
	checkTable(t, d, "DSDT")
	dsl := acpitest.Disassemble(t, d)
	wantInDisassembly(t, dsl, "Device (COM1)", `EisaId ("PNP0501")`, "0x03F8", "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )", `Name (\_S5, Package (0x02)`)
}

func TestDSDTReturnsEncodingErrorsInsteadOfPanicking(t *testing.T) {
	for name, obj := range map[string]Aml{
		"lower case name":     Device("com1"),
		"long segment":        Name("TOOLONG", Zero),
		"digit first":         Name("1ABC", Zero),
		"empty path":          Name("", Zero),
		"too many args":       Method("M", 8, false),
		"Local8":              Store(Zero, Local(8)),
		"Arg7":                Store(Arg(7), Local(0)),
		"non-ASCII string":    Name("S", String("é")),
		"bad EISA id":         Name("_HID", EISAID("pnp0501")),
		"offset going back":   Field("REG", ByteAcc, NoLock, Preserve, FieldUnit{"A", 16}, FieldOffset(1)),
		"zero-bit field unit": Field("REG", ByteAcc, NoLock, Preserve, FieldUnit{"A", 0}),
		"IRQ above 15":        Name("R", ResourceTemplate(IRQNoFlags{16})),
		"no GSIs":             Name("R", ResourceTemplate(Interrupt{})),
		"nil term":            Scope(`\`, nil),
		"sync level 16":       Mutex("MTX", 16),
	} {
		_, err := DSDT(obj)
		var ee *EncodeError
		if !errors.As(err, &ee) {
			t.Errorf("%s: got %v, want an EncodeError", name, err)
		}
	}
}

func TestLayoutChainsRSDPToEveryTable(t *testing.T) {
	const base = 0xe0000
	dsdt, err := DSDT(SleepState(5, 5))
	if err != nil {
		t.Fatal(err)
	}
	madt, err := MADT(testMADTConfig(1, 2))
	if err != nil {
		t.Fatal(err)
	}
	blob := Layout(base, testFADTConfig(), dsdt, madt)
	at := func(addr uint64) []byte {
		off := int(addr - base)
		if addr < base || off+HeaderSize > len(blob) {
			t.Fatalf("address %#x outside the blob", addr)
		}
		if off%tableAlign != 0 {
			t.Errorf("table at %#x not %d-byte aligned", addr, tableAlign)
		}
		l := int(binary.LittleEndian.Uint32(blob[off+4:]))
		return blob[off : off+l]
	}
	rsdp := blob[:RSDPSize]
	if string(rsdp[:8]) != "RSD PTR " {
		t.Fatalf("no RSDP at the start")
	}
	xsdt := at(binary.LittleEndian.Uint64(rsdp[24:]))
	checkTable(t, xsdt, "XSDT")
	if n := (len(xsdt) - HeaderSize) / 8; n != 2 {
		t.Fatalf("XSDT has %d entries, want FADT and MADT", n)
	}
	fadt := at(binary.LittleEndian.Uint64(xsdt[HeaderSize:]))
	checkTable(t, fadt, "FACP")
	gotMADT := at(binary.LittleEndian.Uint64(xsdt[HeaderSize+8:]))
	checkTable(t, gotMADT, "APIC")
	gotDSDT := at(binary.LittleEndian.Uint64(fadt[140:]))
	checkTable(t, gotDSDT, "DSDT")
	for _, tbl := range [][]byte{xsdt, fadt, gotMADT, gotDSDT} {
		acpitest.Disassemble(t, tbl)
	}
}

func TestTableRefusesABadSignature(t *testing.T) {
	if _, err := Table("SRA", 1, nil); err == nil {
		t.Error("three-character signature accepted")
	}
	tbl, err := Table("SRAT", 3, []byte{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	checkTable(t, tbl, "SRAT")
}

func TestSSDTDisassembles(t *testing.T) {
	s, err := SSDT(Scope(`\_SB`, Device("DEV0", Name("_HID", String("ACPI0004")), Name("_UID", One))))
	if err != nil {
		t.Fatal(err)
	}
	checkTable(t, s, "SSDT")
	wantInDisassembly(t, acpitest.Disassemble(t, s), `DefinitionBlock ("", "SSDT", 2,`, "Device (DEV0)")
}

func TestMCFGListsOneECAMAreaPerSegment(t *testing.T) {
	tbl := MCFG([]MCFGEntry{
		{Base: 0xe0000000, Segment: 0, StartBus: 0, EndBus: 0},
		{Base: 0xe0100000, Segment: 1, StartBus: 0, EndBus: 0},
	})
	checkTable(t, tbl, "MCFG")
	if len(tbl) != HeaderSize+8+2*16 {
		t.Fatalf("MCFG of %d bytes, want %d", len(tbl), HeaderSize+8+2*16)
	}
	le := binary.LittleEndian
	if base, seg := le.Uint64(tbl[HeaderSize+8+16:]), le.Uint16(tbl[HeaderSize+8+16+8:]); base != 0xe0100000 || seg != 1 {
		t.Errorf("second entry: base %#x segment %d", base, seg)
	}
	dsl := acpitest.Disassemble(t, tbl)
	for _, want := range []string{"Base Address : 00000000E0000000", "Base Address : 00000000E0100000",
		"Segment Group Number : 0001", "End Bus Number : 00"} {
		if !strings.Contains(dsl, want) {
			t.Errorf("disassembly lacks %q:\n%s", want, dsl)
		}
	}
}

func TestUUIDBytesAreMixedEndianAndRefuseMalformedStrings(t *testing.T) {
	b, err := UUIDBytes("33DB4D5B-1FF7-401C-9657-7441C03DD766")
	if err != nil {
		t.Fatal(err)
	}
	if want := mustHex(t, "5b4ddb33 f71f 1c40 9657 7441c03dd766"); !bytes.Equal(b, want) {
		t.Errorf("got % x, want % x", b, want)
	}
	for _, bad := range []string{"", "33DB4D5B-1FF7-401C-9657", "33DB4D5B-1FF7-401C-9657-7441C03DD76", "33DB4D5G-1FF7-401C-9657-7441C03DD766"} {
		if _, err := UUIDBytes(bad); err == nil {
			t.Errorf("UUIDBytes(%q) accepted", bad)
		}
		if _, err := Encode(UUID(bad)); err == nil {
			t.Errorf("Encode(UUID(%q)) accepted", bad)
		}
	}
}
