package boot

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/vmmdev/vmm/vm/layout"
	"github.com/vmmdev/vmm/vm/memory"
)

// fakeBzImage builds the smallest file ParseBzImage accepts: a setup header
// of protocol 2.15 with the 64-bit entry flag, 4 setup sectors and payload.
func fakeBzImage(payload int) []byte {
	b := make([]byte, 5*512+payload)
	le := binary.LittleEndian
	b[hdrSetupSects] = 4
	le.PutUint16(b[hdrBootFlag:], bootFlag)
	b[hdrJump], b[hdrJump+1] = 0xeb, 0x66 // header ends at 0x268
	le.PutUint32(b[hdrMagic:], magicHdrS)
	le.PutUint16(b[hdrVersion:], 0x020f)
	le.PutUint32(b[hdrInitrdAddrMax:], 0x7fffffff)
	b[hdrRelocatable] = 1
	le.PutUint16(b[hdrXLoadFlags:], xlfKernel64|2)
	le.PutUint32(b[hdrCmdlineSize:], 2047)
	le.PutUint64(b[hdrPrefAddress:], 0x1000000)
	le.PutUint32(b[hdrInitSize:], 0x2000000)
	for i := 5 * 512; i < len(b); i++ {
		b[i] = 0xcc
	}
	return b
}

// firstByte reads a part of a file's first byte.
func firstByte(src *io.SectionReader) byte {
	b := []byte{0}
	_, _ = src.ReadAt(b, 0)
	return b[0]
}

// zeros is a file of zeros as long as its reader's section: an initramfs
// too large to hold in a test's memory.
type zeros struct{}

func (zeros) ReadAt(p []byte, _ int64) (int, error) {
	clear(p)
	return len(p), nil
}

func TestParseBzImageReadsTheSetupHeader(t *testing.T) {
	k, err := ParseBzImage(FromBytes(fakeBzImage(1000)))
	if err != nil {
		t.Fatal(err)
	}
	if k.Version != 0x020f || k.Payload.Size() != 1000 || firstByte(k.Payload) != 0xcc ||
		k.CmdlineSize != 2047 || k.InitrdAddrMax != 0x7fffffff || !k.Relocatable ||
		k.PrefAddress != 0x1000000 || k.InitSize != 0x2000000 || len(k.SetupHeader) != 0x268-0x1f1 {
		t.Errorf("parsed %+v", *k)
	}
}

func TestParseBzImageRejectsWhatItCannotBoot(t *testing.T) {
	garbage := make([]byte, 1<<20)
	for i := range garbage {
		garbage[i] = byte(i * 7)
	}
	oldProto := fakeBzImage(10)
	binary.LittleEndian.PutUint16(oldProto[hdrVersion:], 0x0204)
	no64 := fakeBzImage(10)
	binary.LittleEndian.PutUint16(no64[hdrXLoadFlags:], 0)
	noPayload := fakeBzImage(0)
	for name, data := range map[string][]byte{
		"empty": nil, "garbage": garbage, "protocol 2.04": oldProto,
		"no 64-bit entry": no64, "no payload": noPayload,
		"cut inside its setup header": fakeBzImage(10)[: hdrInitSize+5 : hdrInitSize+5],
	} {
		if _, err := ParseBzImage(FromBytes(data)); !errors.Is(err, ErrNotBzImage) {
			t.Errorf("%s: err = %v, want ErrNotBzImage", name, err)
		}
	}
}

// The harness caches Debian's kernel; parse it when it is there.
func TestParseBzImageAcceptsDebiansKernel(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "..", ".cache", "guest", "bzImage")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("no cached guest kernel: %v", err)
	}
	k, err := ParseBzImage(FromBytes(data))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("protocol %#x, payload %d bytes, init_size %#x, cmdline_size %d, initrd_addr_max %#x",
		k.Version, k.Payload.Size(), k.InitSize, k.CmdlineSize, k.InitrdAddrMax)
}

func TestE820MapReservesTheLegacyHoleACPITablesAndECAM(t *testing.T) {
	got := E820Map(memory.BootRAM(4 * layout.GiB))
	want := []E820Entry{
		{0, layout.EBDAStart, E820RAM},
		{layout.ACPIStart, layout.ACPIEnd - layout.ACPIStart, E820Reserved},
		{layout.KernelStart, layout.LowRAMEnd - layout.KernelStart, E820RAM},
		{layout.PCIECAMStart, layout.PCIECAMSize, E820Reserved},
		{layout.HighRAMStart, 1 * layout.GiB, E820RAM},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestZeroPageCarriesLoaderFields(t *testing.T) {
	k, _ := ParseBzImage(FromBytes(fakeBzImage(10)))
	zp, err := ZeroPage{Kernel: k, CmdlineAddr: layout.CmdlineStart, InitrdAddr: 0x3000_0000, InitrdSize: 0x1234,
		RSDPAddr: layout.ACPIStart, E820: E820Map(memory.BootRAM(layout.GiB))}.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	for _, c := range []struct {
		name      string
		got, want uint64
	}{
		{"type_of_loader", uint64(zp[hdrTypeOfLoader]), 0xff},
		{"cmd_line_ptr", uint64(le.Uint32(zp[hdrCmdLinePtr:])), layout.CmdlineStart},
		{"ramdisk_image", uint64(le.Uint32(zp[hdrRamdiskImage:])), 0x3000_0000},
		{"ramdisk_size", uint64(le.Uint32(zp[hdrRamdiskSize:])), 0x1234},
		{"acpi_rsdp_addr", le.Uint64(zp[zpACPIRSDPAddr:]), layout.ACPIStart},
		{"e820_entries", uint64(zp[zpE820Entries]), 4},
		{"e820[2].addr", le.Uint64(zp[zpE820Table+2*20:]), layout.KernelStart},
		{"e820[2].type", uint64(le.Uint32(zp[zpE820Table+2*20+16:])), E820RAM},
		{"header magic", uint64(le.Uint32(zp[hdrMagic:])), magicHdrS},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

func TestGDTHasFlatLongModeCodeAndDataAtBootSelectors(t *testing.T) {
	g := GDT()
	le := binary.LittleEndian
	if code := le.Uint64(g[SelectorCode:]); code != 0x00af9b000000ffff {
		t.Errorf("code descriptor %#x", code)
	}
	if data := le.Uint64(g[SelectorData:]); data != 0x00cf93000000ffff {
		t.Errorf("data descriptor %#x", data)
	}
	cs := codeDescriptor.Segment(SelectorCode)
	if cs.L != 1 || cs.DB != 0 || cs.G != 1 || cs.Limit != 0xffffffff || cs.Type != 0xb || cs.Present != 1 || cs.S != 1 {
		t.Errorf("CS %+v", cs)
	}
	ds := dataDescriptor.Segment(SelectorData)
	if ds.L != 0 || ds.DB != 1 || ds.Type != 3 {
		t.Errorf("DS %+v", ds)
	}
}

func TestPageTablesIdentityMapFourGiB(t *testing.T) {
	pt := PageTables()
	le := binary.LittleEndian
	entry := func(addr uint64) uint64 { return le.Uint64(pt[addr-layout.PML4Start:]) }
	if e := entry(layout.PML4Start); e != layout.PDPTStart|3 {
		t.Errorf("PML4[0] = %#x", e)
	}
	// Walk the address 0xbfe00000 (3 GiB - 2 MiB): PDPT index 2, PD index 511.
	va := uint64(0xbfe00000)
	pdpte := entry(layout.PDPTStart + 8*(va>>30))
	pde := entry(pdpte&^0xfff + 8*(va>>21&511))
	if pde&^0xfff != va || pde&0x83 != 0x83 {
		t.Errorf("PDE for %#x = %#x", va, pde)
	}
}

func TestBootRegistersEnterLongModeAtThe64BitEntry(t *testing.T) {
	r := Regs()
	if r.RIP != 0x100200 || r.RSI != layout.ZeroPageStart || r.RFLAGS != 2 {
		t.Errorf("regs %+v", r)
	}
}

func TestLoadPlacesInitramfsHighAndRefusesTooLongCmdline(t *testing.T) {
	g, err := memory.Map(memory.BootRAM(256 * layout.MiB))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	k, _ := ParseBzImage(FromBytes(fakeBzImage(4096)))
	initrd := make([]byte, 3*layout.MiB+5)
	initrd[0] = 0x42
	p := Payload{Image: Image{BzImage: k}, Initramfs: FromBytes(initrd), Cmdline: "console=ttyS0", RAM: memory.BootRAM(256 * layout.MiB)}
	entry, err := Load(g, p)
	if err != nil {
		t.Fatal(err)
	}
	if entry != (Entry{Protocol: Linux64, Addr: 0x100200}) {
		t.Errorf("entry %+v", entry)
	}
	zp := make([]byte, ZeroPageSize)
	_ = g.ReadAt(zp, layout.ZeroPageStart)
	addr := uint64(binary.LittleEndian.Uint32(zp[hdrRamdiskImage:]))
	if addr%layout.PageSize != 0 || addr+uint64(len(initrd)) > 256*layout.MiB || addr < 250*layout.MiB {
		t.Errorf("initramfs at %#x", addr)
	}
	b := []byte{0}
	_ = g.ReadAt(b, addr)
	if b[0] != 0x42 {
		t.Error("initramfs not written")
	}
	_ = g.ReadAt(b, layout.KernelStart)
	if b[0] != 0xcc {
		t.Error("kernel not written")
	}
	p.Cmdline = string(make([]byte, 3000))
	if _, err := Load(g, p); err == nil || Check(p) == nil {
		t.Error("a 3000-byte command line was accepted")
	}
	p.Cmdline = ""
	p.Initramfs = io.NewSectionReader(zeros{}, 0, 240*layout.MiB)
	if _, err := Load(g, p); err == nil || Check(p) == nil {
		t.Error("an initramfs overlapping the unpacking kernel was accepted")
	}
}

func TestTranslateWalksFourAndFiveLevelPagingWith4KAnd2MPages(t *testing.T) {
	mem, err := memory.Map([]memory.Range{{Start: 0, Size: 4 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	put := func(gpa, v uint64) {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], v)
		if err := mem.WriteAt(b[:], gpa); err != nil {
			t.Fatal(err)
		}
	}
	// PML4 at 0x1000, PDPT at 0x2000, PD at 0x3000, PT at 0x4000.
	const va4k, va2m = 0xffff_ffff_8000_1234, 0xffff_ffff_8020_0010
	put(0x1000+(va4k>>39&0x1ff)*8, 0x2000|ptePresent)
	put(0x2000+(va4k>>30&0x1ff)*8, 0x3000|ptePresent)
	put(0x3000+(va4k>>21&0x1ff)*8, 0x4000|ptePresent)
	put(0x4000+(va4k>>12&0x1ff)*8, 0x10_0000|ptePresent)
	put(0x3000+(va2m>>21&0x1ff)*8, 0x20_0000|ptePresent|ptePageSize)
	for _, c := range []struct{ va, want uint64 }{{va4k, 0x10_0234}, {va2m, 0x20_0010}} {
		if got, err := Translate(mem, 0x1000, 0, c.va); err != nil || got != c.want {
			t.Errorf("Translate(%#x) = %#x, %v; want %#x", c.va, got, err, c.want)
		}
	}
	// With LA57 a fifth level at 0x5000 leads to the same PML4.
	put(0x5000+(va4k>>48&0x1ff)*8, 0x1000|ptePresent)
	if got, err := Translate(mem, 0x5000, cr4LA57, va4k); err != nil || got != 0x10_0234 {
		t.Errorf("5-level Translate = %#x, %v; want 0x100234", got, err)
	}
	if _, err := Translate(mem, 0x1000, 0, 0x1000); err == nil {
		t.Error("an unmapped address translated")
	}
}
