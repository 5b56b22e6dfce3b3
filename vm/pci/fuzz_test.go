package pci

import (
	"encoding/binary"
	"testing"
)

// FuzzConfigSpace plays a guest's configuration and BAR accesses, any
// offset, size and value, through the ECAM, the legacy ports and the
// windows, against a segment holding a device with BARs, MSI-X and a
// configuration window. Nothing may panic, and what is read-only stays
// as it was.
func FuzzConfigSpace(f *testing.F) {
	// Each access is 12 bytes: kind, size, offset (4), value (6; padded).
	op := func(kind, size byte, off uint32, v uint32) []byte {
		b := []byte{kind, size}
		b = binary.LittleEndian.AppendUint32(b, off)
		b = binary.LittleEndian.AppendUint32(b, v)
		return append(b, 0, 0)
	}
	cat := func(ops ...[]byte) []byte {
		var out []byte
		for _, o := range ops {
			out = append(out, o...)
		}
		return out
	}
	f.Add(cat(op(1, 4, 1<<15|RegBAR0, 0xffffffff), op(0, 4, 1<<15|RegBAR0, 0)))
	f.Add(cat(op(1, 2, 1<<15|RegCommand, 0xffff), op(3, 4, 0, 0x41), op(2, 4, 0x100, 0)))
	f.Add(cat(op(5, 4, 0, 0x8000_0810), op(4, 4, 4, 0xffffffff), op(4, 1, 7, 0)))
	f.Add(cat(op(1, 2, 1<<15|0x42, 0xc000), op(3, 4, testMSIXTable+12, 0), op(6, 0, 0, 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := NewSegment(testSegmentConfig(0))
		if err != nil {
			t.Fatal(err)
		}
		dev := NewFunction(testHeader, &recordingHandler{})
		if err := dev.SetBAR(0, BAR{Size: 16 << 10, Kind: BARMem64}); err != nil {
			t.Fatal(err)
		}
		if err := dev.SetBAR(2, BAR{Size: 4 << 10, Kind: BARMem32}); err != nil {
			t.Fatal(err)
		}
		m, err := dev.AddMSIX(MSIXConfig{Vectors: 3, BAR: 0, TableOffset: testMSIXTable, PBAOffset: testMSIXPBA,
			Alloc: func() (MSIVector, error) { return &fakeVector{}, nil }})
		if err != nil {
			t.Fatal(err)
		}
		off, err := dev.AddCapability(CapVendor, make([]byte, 18), nil)
		if err != nil {
			t.Fatal(err)
		}
		var window [4]byte
		if err := dev.HookWindow(off+16, 4, func(o uint64, d []byte) { copy(d, window[o:]) },
			func(o uint64, d []byte) { copy(window[o:], d) }); err != nil {
			t.Fatal(err)
		}
		if err := s.Add(1, dev); err != nil {
			t.Fatal(err)
		}
		cio := NewConfigIO(s)
		cfg := s.Config()
		w32, w64 := s.WindowDevice(cfg.Window32), s.WindowDevice(cfg.Window64)
		buf := make([]byte, 16)
		for len(data) >= 12 {
			kind, size := data[0]%7, int(data[1]%17)
			o := uint64(binary.LittleEndian.Uint32(data[2:]))
			copy(buf, data[6:12])
			data = data[12:]
			b := buf[:size]
			switch kind {
			case 0:
				s.ECAMDevice().Read(o%(ECAMSize+64), b)
			case 1:
				s.ECAMDevice().Write(o%(ECAMSize+64), b)
			case 2:
				w64.Read(o%(cfg.Window64.Size+64), b)
			case 3:
				w64.Write(o%(cfg.Window64.Size+64), b)
			case 4:
				if o%2 == 0 {
					cio.Read(o%ConfigIOSize, b)
				} else {
					cio.Write(o%ConfigIOSize, b)
				}
			case 5:
				cio.Write(o%ConfigIOSize, b)
				w32.Read(o%cfg.Window32.Size, b)
			case 6:
				m.Trigger(int(o % 5))
			}
		}
		if got := ecamRead(s, 0, 0, RegVendorID, 4); got != 0x0008_1b36 {
			t.Errorf("host bridge ids changed to %#x", got)
		}
		if got := ecamRead(s, 1, 0, RegVendorID, 4); got != 0x1042_1af4 {
			t.Errorf("device ids changed to %#x", got)
		}
		if got := ecamRead(s, 1, 0, RegBAR0, 4) & barFlagBits; got != barMem64 {
			t.Errorf("BAR 0's flags changed to %#x", got)
		}
	})
}
