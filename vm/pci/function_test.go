package pci

import (
	"encoding/binary"
	"sync"
	"testing"
)

// testHeader is a virtio-blk-like function.
var testHeader = Header{VendorID: 0x1af4, DeviceID: 0x1042, Revision: 1, Class: ClassStorageSCSI,
	SubsystemVendorID: 0x1af4, SubsystemID: 0x40}

// recordingHandler records BAR accesses and answers reads with a pattern.
type recordingHandler struct {
	mu     sync.Mutex
	writes []barAccess
}

type barAccess struct {
	bar    int
	offset uint64
	data   []byte
}

func (h *recordingHandler) ReadBAR(bar int, offset uint64, data []byte) {
	for i := range data {
		data[i] = byte(offset) + byte(i)
	}
}

func (h *recordingHandler) WriteBAR(bar int, offset uint64, data []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.writes = append(h.writes, barAccess{bar, offset, append([]byte(nil), data...)})
}

func cfgRead(f *Function, reg uint64, n int) uint32 {
	b := make([]byte, n)
	f.ReadConfig(reg, b)
	var w [4]byte
	copy(w[:], b)
	return binary.LittleEndian.Uint32(w[:])
}

func cfgWrite(f *Function, reg uint64, n int, v uint32) {
	var w [4]byte
	binary.LittleEndian.PutUint32(w[:], v)
	f.WriteConfig(reg, w[:n])
}

func TestHeaderReadsAndWhatTheGuestMayWrite(t *testing.T) {
	f := NewFunction(testHeader, nil)
	for _, c := range []struct {
		name     string
		reg      uint64
		size     int
		write    uint32 // written first (all ones probes the write mask)
		want     uint32
		writable bool
	}{
		{"vendor id", RegVendorID, 2, 0xffff, 0x1af4, false},
		{"device id", RegDeviceID, 2, 0xffff, 0x1042, false},
		{"vendor and device as a dword", RegVendorID, 4, 0xffffffff, 0x1042_1af4, false},
		{"command: the decode, master, parity, SERR and INTx bits", RegCommand, 2, 0xffff, commandWritable, true},
		{"status: no capabilities yet", RegStatus, 2, 0xffff, 0, false},
		{"revision", RegRevision, 1, 0xff, 1, false},
		{"revision and class code", RegRevision, 4, 0xffffffff, 0x01000001, false},
		{"cache line size", RegCacheLineSize, 1, 0x10, 0x10, true},
		{"header type 0", RegHeaderType, 1, 0xff, 0, false},
		{"undefined BAR", RegBAR0, 4, 0xffffffff, 0, false},
		{"subsystem vendor", RegSubsystemVendorID, 2, 0, 0x1af4, false},
		{"subsystem id", RegSubsystemID, 2, 0, 0x40, false},
		{"no expansion ROM", RegExpansionROM, 4, 0xfffff800, 0, false},
		{"no capability list", RegCapabilities, 1, 0xff, 0, false},
		{"interrupt line is scratch", RegInterruptLine, 1, 0x0b, 0x0b, true},
		{"no interrupt pin", RegInterruptPin, 1, 0xff, 0, false},
		{"extended space reads zero", 0x100, 4, 0xffffffff, 0, false},
		{"past the ECAM function", 0xffe, 4, 0xffffffff, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfgWrite(f, c.reg, c.size, c.write)
			if got := cfgRead(f, c.reg, c.size); got != c.want {
				t.Errorf("read %#x after writing %#x, want %#x", got, c.write, c.want)
			}
		})
	}
}

func TestBARSizingAndMoving(t *testing.T) {
	for _, c := range []struct {
		name     string
		bar      BAR
		lowFlags uint32
	}{
		{"32-bit 16 KiB", BAR{Size: 16 << 10, Kind: BARMem32}, 0x0},
		{"32-bit 1 MiB prefetchable", BAR{Size: 1 << 20, Kind: BARMem32, Prefetchable: true}, 0x8},
		{"64-bit 32 KiB", BAR{Size: 32 << 10, Kind: BARMem64}, 0x4},
		{"64-bit 8 GiB prefetchable", BAR{Size: 8 << 30, Kind: BARMem64, Prefetchable: true}, 0xc},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := NewFunction(testHeader, nil)
			if err := f.SetBAR(2, c.bar); err != nil {
				t.Fatal(err)
			}
			var moves []barDecode
			f.OnBARChange(func(bar int, base uint64, on bool) {
				if bar != 2 {
					t.Errorf("listener told of BAR %d", bar)
				}
				moves = append(moves, barDecode{base, on})
			})
			lo, hi := uint64(RegBAR0+8), uint64(RegBAR0+12)
			if got := cfgRead(f, lo, 4); got != c.lowFlags {
				t.Errorf("BAR reads %#x before placement, want its flags %#x", got, c.lowFlags)
			}
			// Sizing: all ones in, the size mask out, as Linux's
			// __pci_read_base computes it.
			cfgWrite(f, lo, 4, 0xffffffff)
			size := uint64(cfgRead(f, lo, 4) &^ barFlagBits)
			if c.bar.Kind == BARMem64 {
				cfgWrite(f, hi, 4, 0xffffffff)
				size |= uint64(cfgRead(f, hi, 4)) << 32
			} else {
				size |= 0xffffffff_00000000
			}
			if got := ^size + 1; got != c.bar.Size {
				t.Errorf("sized %#x, want %#x", got, c.bar.Size)
			}
			if got := cfgRead(f, lo, 4) & barFlagBits; got != c.lowFlags {
				t.Errorf("flags %#x after sizing, want %#x", got, c.lowFlags)
			}
			if len(moves) != 0 {
				t.Errorf("decoding changed with memory decoding off: %v", moves)
			}
			// Place it (low bits below the size are dropped), then decode.
			addr := uint64(0xc100_0000)
			if c.bar.Kind == BARMem64 {
				addr = 0x10_0000_0000 + c.bar.Size
				cfgWrite(f, hi, 4, uint32(addr>>32))
			}
			cfgWrite(f, lo, 4, uint32(addr)|0xff0)
			if c.bar.Size <= 0xff0 {
				t.Fatal("test BARs are larger than the junk bits")
			}
			cfgWrite(f, RegCommand, 2, CommandMemory)
			if len(moves) != 1 || moves[0] != (barDecode{addr, true}) {
				t.Fatalf("moves %v, want one to %#x with decoding on", moves, addr)
			}
			if base, on := f.Decoded(2); base != addr || !on {
				t.Errorf("Decoded = %#x %v", base, on)
			}
			cfgWrite(f, RegCommand, 2, 0)
			if len(moves) != 2 || moves[1].on {
				t.Errorf("decoding off not told: %v", moves)
			}
		})
	}
}

func TestSetBARRefusesWhatCannotBe(t *testing.T) {
	f := NewFunction(testHeader, nil)
	if err := f.SetBAR(0, BAR{Size: 1 << 16, Kind: BARMem64}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		i    int
		b    BAR
	}{
		{"index out of range", 6, BAR{Size: 4096}},
		{"not a power of two", 2, BAR{Size: 0x3000}},
		{"too small", 2, BAR{Size: 16}},
		{"64-bit in the last register", 5, BAR{Size: 4096, Kind: BARMem64}},
		{"the high half of a 64-bit BAR", 1, BAR{Size: 4096}},
		{"taken", 0, BAR{Size: 4096}},
		{"32-bit of 4 GiB", 2, BAR{Size: 4 << 30}},
		{"unknown kind", 2, BAR{Size: 4096, Kind: 7}},
	} {
		if err := f.SetBAR(c.i, c.b); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}

// capList walks the capability list from RegCapabilities and returns the
// capability ids and offsets, failing on a loop.
func capList(t *testing.T, f *Function) (ids []byte, offs []uint64) {
	t.Helper()
	if cfgRead(f, RegStatus, 2)&StatusCapabilities == 0 {
		return nil, nil
	}
	off := uint64(cfgRead(f, RegCapabilities, 1))
	for off != 0 {
		if len(ids) > 48 || off < capStart || off%4 != 0 {
			t.Fatalf("capability pointer %#x after %v", off, ids)
		}
		ids = append(ids, byte(cfgRead(f, off, 1)))
		offs = append(offs, off)
		off = uint64(cfgRead(f, off+1, 1))
	}
	return ids, offs
}

func TestCapabilityListLinksEveryCapabilityInOrder(t *testing.T) {
	f := NewFunction(testHeader, nil)
	var wantOffs []uint64
	for i, body := range [][]byte{
		{14, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, // a virtio-style capability
		{3, 4, 5},    // odd length: the next one is realigned
		{1, 2, 3, 4}, // writable bytes below
	} {
		var w []byte
		if i == 2 {
			w = []byte{0, 0xff, 0, 0x0f}
		}
		off, err := f.AddCapability(CapVendor, body, w)
		if err != nil {
			t.Fatal(err)
		}
		wantOffs = append(wantOffs, uint64(off))
	}
	ids, offs := capList(t, f)
	if len(ids) != 3 || ids[0] != CapVendor {
		t.Fatalf("capabilities %v", ids)
	}
	for i := range offs {
		if offs[i] != wantOffs[i] {
			t.Errorf("capability %d at %#x, want %#x", i, offs[i], wantOffs[i])
		}
	}
	if offs[1] != capStart+16 || offs[2] != capStart+24 {
		t.Errorf("offsets %v: want 0x40, 0x50, 0x58", offs)
	}
	last := offs[2]
	cfgWrite(f, last+2, 4, 0xaaaaaaaa)
	if got := cfgRead(f, last+2, 4); got != 0x0a03aa01 {
		t.Errorf("capability bytes %#x after a write, want only the writable bits changed (0x0a03aa01)", got)
	}
	cfgWrite(f, last+1, 1, 0x80)
	if got := cfgRead(f, last+1, 1); got != 0 {
		t.Errorf("the next pointer was written: %#x", got)
	}
	if _, err := f.AddCapability(CapVendor, make([]byte, 200), nil); err == nil {
		t.Error("a capability past the configuration space was accepted")
	}
}

func TestWindowHooksTakeTheirBytes(t *testing.T) {
	f := NewFunction(testHeader, nil)
	off, err := f.AddCapability(CapVendor, make([]byte, 10), nil)
	if err != nil {
		t.Fatal(err)
	}
	var stored [4]byte
	var writes int
	if err := f.HookWindow(off+8, 4,
		func(o uint64, data []byte) { copy(data, stored[o:]) },
		func(o uint64, data []byte) { copy(stored[o:], data); writes++ }); err != nil {
		t.Fatal(err)
	}
	cfgWrite(f, uint64(off+8), 4, 0x11223344)
	cfgWrite(f, uint64(off+10), 1, 0x99)
	if got := cfgRead(f, uint64(off+8), 4); got != 0x11993344 || writes != 2 {
		t.Errorf("window reads %#x after %d writes", got, writes)
	}
	// An access straddling the window and the bytes before it.
	if got := cfgRead(f, uint64(off+6), 4); got != 0x3344_0000 {
		t.Errorf("straddling read %#x", got)
	}
	for _, bad := range [][2]int{{0x10, 4}, {off, 0}, {ConfigSize - 2, 4}} {
		if err := f.HookWindow(bad[0], bad[1], func(uint64, []byte) {}, func(uint64, []byte) {}); err == nil {
			t.Errorf("window %#x+%d accepted", bad[0], bad[1])
		}
	}
}
