package virtio

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"testing"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestGuestSlicesAcrossAdjacentRegions(t *testing.T) {
	mem := &fakeMemory{regions: []fakeRegion{
		{0x10000, make([]byte, 3*pageSize)},
		{0x13000, make([]byte, 2*pageSize)},
		{0x15000, make([]byte, pageSize)},
	}}
	for i := range 6 * pageSize {
		b, _ := mem.Slice(0x10000+uint64(i), 1)
		b[0] = byte(i * 7)
	}
	for _, c := range []struct {
		name      string
		gpa, n    uint64
		segments  int
		wantError bool
	}{
		{"inside one region", 0x10010, 100, 1, false},
		{"over one boundary", 0x12f00, 0x200, 2, false},
		{"over two boundaries", 0x10800, 0x4900, 3, false},
		{"all of it", 0x10000, 6 * pageSize, 3, false},
		{"past the end", 0x15f00, 0x200, 0, true},
		{"before the start", 0xff00, 0x200, 0, true},
		{"wrapping", ^uint64(0) - 10, 100, 0, true},
		{"empty", 0x1, 0, 0, false},
	} {
		got, err := guestSlices(mem, nil, c.gpa, c.n)
		if (err != nil) != c.wantError {
			t.Errorf("%s: error %v", c.name, err)
			continue
		}
		if err != nil {
			continue
		}
		if len(got) != c.segments {
			t.Errorf("%s: %d segments, want %d", c.name, len(got), c.segments)
		}
		var joined []byte
		for _, s := range got {
			joined = append(joined, s...)
		}
		if uint64(len(joined)) != c.n {
			t.Errorf("%s: %d bytes, want %d", c.name, len(joined), c.n)
			continue
		}
		for i, b := range joined {
			if b != byte((int(c.gpa-0x10000)+i)*7) {
				t.Errorf("%s: byte %d wrong", c.name, i)
				break
			}
		}
	}
}

func TestGatherScatterSubrange(t *testing.T) {
	bufs := [][]byte{[]byte("abc"), []byte(""), []byte("defg"), []byte("h")}
	p := make([]byte, 5)
	if n := gather(p, bufs, 2); n != 5 || string(p) != "cdefg" {
		t.Errorf("gather = %d %q", n, p)
	}
	if n := gather(p, bufs, 6); n != 2 || string(p[:2]) != "gh" {
		t.Errorf("gather at the end = %d %q", n, p[:n])
	}
	var joined []byte
	for _, s := range subrange(nil, bufs, 1, 5) {
		joined = append(joined, s...)
	}
	if string(joined) != "bcdef" {
		t.Errorf("subrange = %q", joined)
	}
	out := [][]byte{make([]byte, 2), make([]byte, 3)}
	if n := scatter(out, []byte("vwxyz!")); n != 5 || string(out[0])+string(out[1]) != "vwxyz" {
		t.Errorf("scatter = %d %q %q", n, out[0], out[1])
	}
}

// ringFixture is a queue of 8 in fake memory for walker tests.
type ringFixture struct {
	mem *fakeMemory
	q   *vring
}

const (
	fixDesc  = 0x1000
	fixAvail = 0x1100
	fixUsed  = 0x1200
	fixBufs  = 0x2000
)

func newRingFixture(indirect bool) *ringFixture {
	mem := newFakeMemory(0x1000, 0x8000)
	cfg := ringConfig{size: 8, desc: fixDesc, avail: fixAvail, used: fixUsed}
	return &ringFixture{mem: mem, q: newVring(cfg, mem, indirect, discard)}
}

func (f *ringFixture) desc(table uint64, i int, addr uint64, n uint32, flags, next uint16) {
	b, _ := f.mem.Slice(table+uint64(i)*descSize, descSize)
	binary.LittleEndian.PutUint64(b[0:], addr)
	binary.LittleEndian.PutUint32(b[8:], n)
	binary.LittleEndian.PutUint16(b[12:], flags)
	binary.LittleEndian.PutUint16(b[14:], next)
}

func (f *ringFixture) offer(heads ...uint16) {
	idx, _ := f.mem.Slice(fixAvail+2, 2)
	cur := binary.LittleEndian.Uint16(idx)
	for _, h := range heads {
		e, _ := f.mem.Slice(fixAvail+4+2*uint64(cur%8), 2)
		binary.LittleEndian.PutUint16(e, h)
		cur++
	}
	binary.LittleEndian.PutUint16(idx, cur)
}

func (f *ringFixture) used(i int) (id, n uint32) {
	e, _ := f.mem.Slice(fixUsed+4+8*uint64(i), 8)
	return binary.LittleEndian.Uint32(e), binary.LittleEndian.Uint32(e[4:])
}

func TestVringWalkerRejectsMalformedChains(t *testing.T) {
	for _, c := range []struct {
		name     string
		indirect bool
		build    func(f *ringFixture)
	}{
		{"a loop", false, func(f *ringFixture) {
			f.desc(fixDesc, 0, fixBufs, 4, descFNext, 1)
			f.desc(fixDesc, 1, fixBufs, 4, descFNext, 0)
		}},
		{"a self loop", false, func(f *ringFixture) { f.desc(fixDesc, 0, fixBufs, 4, descFNext, 0) }},
		{"next out of the table", false, func(f *ringFixture) { f.desc(fixDesc, 0, fixBufs, 4, descFNext, 8) }},
		{"a buffer outside RAM", false, func(f *ringFixture) { f.desc(fixDesc, 0, 0x10, 4, 0, 0) }},
		{"a buffer wrapping", false, func(f *ringFixture) { f.desc(fixDesc, 0, ^uint64(0)-1, 4, 0, 0) }},
		{"readable after writable", false, func(f *ringFixture) {
			f.desc(fixDesc, 0, fixBufs, 4, descFNext|descFWrite, 1)
			f.desc(fixDesc, 1, fixBufs, 4, 0, 0)
		}},
		{"indirect not negotiated", false, func(f *ringFixture) { f.desc(fixDesc, 0, 0x3000, 16, descFIndirect, 0) }},
		{"indirect with next", true, func(f *ringFixture) { f.desc(fixDesc, 0, 0x3000, 16, descFIndirect|descFNext, 1) }},
		{"indirect of a partial descriptor", true, func(f *ringFixture) { f.desc(fixDesc, 0, 0x3000, 15, descFIndirect, 0) }},
		{"empty indirect table", true, func(f *ringFixture) { f.desc(fixDesc, 0, 0x3000, 0, descFIndirect, 0) }},
		{"huge indirect table", true, func(f *ringFixture) { f.desc(fixDesc, 0, 0x3000, 1<<31, descFIndirect, 0) }},
		{"nested indirect", true, func(f *ringFixture) {
			f.desc(fixDesc, 0, 0x3000, 32, descFIndirect, 0)
			f.desc(0x3000, 0, 0x3100, 16, descFIndirect, 0)
		}},
		{"indirect loop", true, func(f *ringFixture) {
			f.desc(fixDesc, 0, 0x3000, 32, descFIndirect, 0)
			f.desc(0x3000, 0, fixBufs, 4, descFNext, 1)
			f.desc(0x3000, 1, fixBufs, 4, descFNext, 0)
		}},
		{"indirect next out of its table", true, func(f *ringFixture) {
			f.desc(fixDesc, 0, 0x3000, 32, descFIndirect, 0)
			f.desc(0x3000, 0, fixBufs, 4, descFNext, 2)
		}},
	} {
		f := newRingFixture(c.indirect)
		c.build(f)
		// A good chain after the bad one.
		f.desc(fixDesc, 5, fixBufs, 8, descFWrite, 0)
		f.offer(0, 5)
		var ch chain
		if !f.q.next(&ch) {
			t.Errorf("%s: no chain after the bad one (err %v)", c.name, f.q.err)
			continue
		}
		if ch.head != 5 || ch.wlen != 8 || len(ch.writable) != 1 {
			t.Errorf("%s: got head %d wlen %d", c.name, ch.head, ch.wlen)
		}
		if id, n := f.used(0); id != 0 || n != 0 {
			t.Errorf("%s: bad chain used as id %d len %d, want 0 0", c.name, id, n)
		}
		if f.q.badChains != 1 {
			t.Errorf("%s: %d bad chains counted", c.name, f.q.badChains)
		}
	}
}

func TestVringFatalErrors(t *testing.T) {
	for _, c := range []struct {
		name  string
		build func(f *ringFixture)
	}{
		{"head out of range", func(f *ringFixture) { f.offer(8) }},
		{"index far ahead", func(f *ringFixture) {
			idx, _ := f.mem.Slice(fixAvail+2, 2)
			binary.LittleEndian.PutUint16(idx, 9)
		}},
	} {
		f := newRingFixture(false)
		c.build(f)
		var ch chain
		if f.q.next(&ch) || f.q.err == nil {
			t.Errorf("%s: no fatal error", c.name)
		}
		if f.q.next(&ch) {
			t.Errorf("%s: a broken queue gave a chain", c.name)
		}
	}
}

func TestVringWalksDirectAndIndirectChains(t *testing.T) {
	f := newRingFixture(true)
	// Direct: 2 readable then 1 writable, out of order in the table.
	f.desc(fixDesc, 3, fixBufs, 4, descFNext, 6)
	f.desc(fixDesc, 6, fixBufs+4, 6, descFNext, 1)
	f.desc(fixDesc, 1, fixBufs+16, 10, descFWrite, 0)
	// Indirect, after a direct descriptor, with a zero-length buffer.
	f.desc(fixDesc, 2, fixBufs+32, 2, descFNext, 4)
	f.desc(fixDesc, 4, 0x3000, 3*descSize, descFIndirect, 0)
	f.desc(0x3000, 0, fixBufs+40, 0, descFNext, 2)
	f.desc(0x3000, 2, fixBufs+48, 5, descFNext|descFWrite, 1)
	f.desc(0x3000, 1, fixBufs+64, 7, descFWrite, 0)
	f.offer(3, 2)
	var ch chain
	if !f.q.next(&ch) || ch.head != 3 || ch.rlen != 10 || ch.wlen != 10 || len(ch.readable) != 2 || len(ch.writable) != 1 {
		t.Fatalf("direct chain: %+v err %v", ch, f.q.err)
	}
	f.q.push(ch.head, 10)
	if !f.q.next(&ch) || ch.head != 2 || ch.rlen != 2 || ch.wlen != 12 || len(ch.writable) != 2 {
		t.Fatalf("indirect chain: head %d rlen %d wlen %d err %v", ch.head, ch.rlen, ch.wlen, f.q.err)
	}
	f.q.push(ch.head, 12)
	if f.q.next(&ch) {
		t.Fatal("a third chain")
	}
	if id, n := f.used(1); id != 2 || n != 12 {
		t.Fatalf("used[1] = %d %d", id, n)
	}
	w, _ := f.mem.Slice(fixUsed, 4)
	if got := binary.LittleEndian.Uint16(w[2:]); got != 2 {
		t.Fatalf("used idx %d", got)
	}
	if !f.q.needsInterrupt() || f.q.needsInterrupt() {
		t.Fatal("needsInterrupt should report the pushes once")
	}
}

func TestVringAvailIndexAtAnyTwoByteAlignment(t *testing.T) {
	for _, avail := range []uint64{0x1100, 0x1102} {
		mem := newFakeMemory(0x1000, 0x4000)
		q := newVring(ringConfig{size: 8, desc: fixDesc, avail: avail, used: fixUsed}, mem, false, discard)
		b, _ := mem.Slice(avail, 4)
		binary.LittleEndian.PutUint16(b, availFNoInterrupt)
		binary.LittleEndian.PutUint16(b[2:], 0x1234)
		if idx, err := q.availIdx(); err != nil || idx != 0x1234 {
			t.Errorf("avail at %#x: idx %#x %v", avail, idx, err)
		}
		if fl, err := q.availFlags(); err != nil || fl != availFNoInterrupt {
			t.Errorf("avail at %#x: flags %#x %v", avail, fl, err)
		}
	}
}

// FuzzDescriptorChain feeds arbitrary rings and descriptor tables to the
// walker: it must neither panic nor loop, and every chain it returns must
// be guest RAM of the length it claims.
func FuzzDescriptorChain(f *testing.F) {
	seed := make([]byte, 0x400)
	// Queue of 16 at 0x1000; avail ring at 0x1100 offering heads 0 and 1;
	// desc 0 -> desc 1 (a loop), desc 2 indirect.
	binary.LittleEndian.PutUint64(seed[0:], 0x2000)
	binary.LittleEndian.PutUint32(seed[8:], 64)
	binary.LittleEndian.PutUint16(seed[12:], descFNext)
	binary.LittleEndian.PutUint16(seed[14:], 1)
	binary.LittleEndian.PutUint64(seed[16:], 0x2000)
	binary.LittleEndian.PutUint32(seed[24:], 64)
	binary.LittleEndian.PutUint16(seed[28:], descFNext|descFWrite)
	binary.LittleEndian.PutUint64(seed[32:], 0x1300)
	binary.LittleEndian.PutUint32(seed[40:], 48)
	binary.LittleEndian.PutUint16(seed[44:], descFIndirect)
	binary.LittleEndian.PutUint16(seed[0x102:], 3)
	binary.LittleEndian.PutUint16(seed[0x106:], 2)
	f.Add(seed, true)
	f.Add(seed, false)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, data []byte, indirect bool) {
		// RAM in two adjacent regions, the second small, so buffers can
		// cross a region boundary or fall off the end.
		mem := &fakeMemory{regions: []fakeRegion{
			{0x1000, make([]byte, 0x3000)},
			{0x4000, make([]byte, pageSize)},
		}}
		copy(mem.regions[0].b, data)
		if len(data) > 0x3000 {
			copy(mem.regions[1].b, data[0x3000:])
		}
		q := newVring(ringConfig{size: 16, desc: 0x1000, avail: 0x1100, used: 0x1200}, mem, indirect, discard)
		var c chain
		for range 64 {
			if !q.next(&c) {
				break
			}
			if c.descs > maxChain {
				t.Fatalf("chain of %d descriptors", c.descs)
			}
			var r, w uint64
			for _, s := range c.readable {
				r += uint64(len(s))
			}
			for _, s := range c.writable {
				w += uint64(len(s))
			}
			if r != c.rlen || w != c.wlen {
				t.Fatalf("chain lengths %d/%d, slices %d/%d", c.rlen, c.wlen, r, w)
			}
			hdr := make([]byte, 16)
			gather(hdr, c.readable, 0)
			scatter(c.writable, bytes.Repeat([]byte{0x5a}, 32))
			q.push(c.head, uint32(min(w, 32)))
		}
		q.needsInterrupt()
	})
}
