package bus

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

type recorder struct {
	reads, writes []uint64
	last          []byte
}

func (r *recorder) Read(off uint64, data []byte) {
	r.reads = append(r.reads, off)
	for i := range data {
		data[i] = byte(off) + byte(i)
	}
}

func (r *recorder) Write(off uint64, data []byte) {
	r.writes = append(r.writes, off)
	r.last = append([]byte(nil), data...)
}

func TestBusRoutesAccessesByRangeWithOffsets(t *testing.T) {
	b := New("pio", nil)
	a, c := &recorder{}, &recorder{}
	if err := b.Insert(0x3f8, 8, "com1", a); err != nil {
		t.Fatal(err)
	}
	if err := b.Insert(0x60, 1, "kbd", c); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 1)
	if !b.Read(0x3fd, data) || data[0] != 5 {
		t.Errorf("read 0x3fd: got %v, want offset 5", data)
	}
	if !b.Write(0x3f8, []byte{'x'}) || string(a.last) != "x" || a.writes[0] != 0 {
		t.Errorf("write 0x3f8: %+v", a)
	}
	if !b.Write(0x60, []byte{1}) || len(c.writes) != 1 {
		t.Errorf("write 0x60 not routed: %+v", c)
	}
}

func TestBusRejectsOverlapsAndBadRanges(t *testing.T) {
	b := New("mmio", nil)
	if err := b.Insert(0x1000, 0x100, "a", &recorder{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		base, size uint64
	}{{0x1000, 1}, {0x10ff, 1}, {0xf00, 0x101}, {0x0, 0x2000}, {0x2000, 0}, {^uint64(0), 2}} {
		if err := b.Insert(c.base, c.size, "b", &recorder{}); err == nil {
			t.Errorf("Insert(%#x, %#x) succeeded", c.base, c.size)
		}
	}
	if err := b.Insert(0x1100, 0x100, "adjacent", &recorder{}); err != nil {
		t.Errorf("adjacent range refused: %v", err)
	}
	if err := b.Insert(0xf00, 0x100, "adjacent below", &recorder{}); err != nil {
		t.Errorf("adjacent range below refused: %v", err)
	}
}

func TestBusUnknownAddressReadsOnesAndIsLoggedOnce(t *testing.T) {
	var logs bytes.Buffer
	b := New("pio", slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	data := []byte{0, 0}
	for range 3 {
		if b.Read(0x80, data) {
			t.Fatal("unknown port claimed")
		}
		b.Write(0x80, []byte{1})
	}
	if data[0] != 0xff || data[1] != 0xff {
		t.Errorf("unknown read = %x, want ffff", data)
	}
	if n := strings.Count(logs.String(), "no device claims"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, logs.String())
	}
}

func TestBusAccessStraddlingARangeEndIsUnknown(t *testing.T) {
	b := New("mmio", nil)
	r := &recorder{}
	if err := b.Insert(0x1000, 4, "dev", r); err != nil {
		t.Fatal(err)
	}
	if b.Read(0x1002, make([]byte, 4)) || len(r.reads) != 0 {
		t.Error("access past the end reached the device")
	}
}

func TestBusRemoveUnmaps(t *testing.T) {
	b := New("mmio", nil)
	r := &recorder{}
	if err := b.Insert(0x1000, 4, "dev", r); err != nil {
		t.Fatal(err)
	}
	if err := b.Remove(0x1000); err != nil {
		t.Fatal(err)
	}
	if b.Write(0x1000, []byte{1}) {
		t.Error("removed device still claims its range")
	}
	if err := b.Remove(0x1000); err == nil {
		t.Error("second Remove succeeded")
	}
}
