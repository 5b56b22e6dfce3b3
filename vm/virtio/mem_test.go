package virtio

import (
	"encoding/binary"
	"errors"
	"testing"
)

// A test region: 256 MiB at 4 GiB, 128 blocks of 2 MiB.
const (
	testMemAddr = 4 << 30
	testMemSize = 256 << 20
)

// releaseLog records what a device gave back to the host.
type releaseLog struct {
	ranges [][2]uint64
	fail   bool
}

func (r *releaseLog) release(off, size uint64) error {
	if r.fail {
		return errors.New("madvise failed")
	}
	r.ranges = append(r.ranges, [2]uint64{off, size})
	return nil
}

func newTestMem(t testing.TB, requested uint64, rel *releaseLog) *Mem {
	t.Helper()
	m, err := NewMem(MemConfig{Addr: testMemAddr, Size: testMemSize, Requested: requested, Release: rel.release})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// memRequestBytes encodes struct virtio_mem_req.
func memRequestBytes(typ uint16, addr uint64, nb uint16) []byte {
	b := make([]byte, memRequestSize)
	binary.LittleEndian.PutUint16(b[0:], typ)
	binary.LittleEndian.PutUint64(b[8:], addr)
	binary.LittleEndian.PutUint16(b[16:], nb)
	return b
}

// memCall sends one request through the fake driver and returns the
// response's type and state.
func memCall(d *fakeDriver, req []byte) (typ, state uint16) {
	d.t.Helper()
	in := d.buf(uint32(len(req)), false)
	copy(d.data(in), req)
	out := d.buf(memResponseSize, true)
	head := d.submit(0, in, out)
	id, n := d.waitUsed(0)
	if id != uint32(head) || n != memResponseSize {
		d.t.Fatalf("used element (%d, %d), want (%d, %d)", id, n, head, memResponseSize)
	}
	r := d.data(out)
	return binary.LittleEndian.Uint16(r[0:]), binary.LittleEndian.Uint16(r[8:])
}

// memConfigField reads a u64 of the configuration space through
// virtio-mmio.
func memConfigField(d *fakeDriver, off uint64) uint64 {
	return uint64(d.r32(regConfig+off)) | uint64(d.r32(regConfig+off+4))<<32
}

func TestMemRequestsWithFakeDriver(t *testing.T) {
	rel := &releaseLog{}
	d := newFakeDriver(t, newTestMem(t, 8<<20, rel))
	d.start(featureVersion1, 1, 16)
	const blk = MemBlockSize
	steps := []struct {
		name        string
		req         []byte
		typ, state  uint16
		plugged     uint64
		releasedOff uint64 // the last release's offset and size, when one is expected
		releasedLen uint64
	}{
		{"state of the first 4 blocks: unplugged", memRequestBytes(memReqState, testMemAddr, 4), memRespAck, memStateUnplugged, 0, 0, 0},
		{"plug 2 blocks", memRequestBytes(memReqPlug, testMemAddr, 2), memRespAck, 0, 2 * blk, 0, 0},
		{"state: mixed", memRequestBytes(memReqState, testMemAddr, 4), memRespAck, memStateMixed, 2 * blk, 0, 0},
		{"state: plugged", memRequestBytes(memReqState, testMemAddr, 2), memRespAck, memStatePlugged, 2 * blk, 0, 0},
		{"plug them again: error", memRequestBytes(memReqPlug, testMemAddr, 1), memRespError, 0, 2 * blk, 0, 0},
		{"plug 2 more: requested reached", memRequestBytes(memReqPlug, testMemAddr+4*blk, 2), memRespAck, 0, 4 * blk, 0, 0},
		{"plug beyond requested_size: nack", memRequestBytes(memReqPlug, testMemAddr+8*blk, 1), memRespNack, 0, 4 * blk, 0, 0},
		{"unplug a plugged and an unplugged block: error", memRequestBytes(memReqUnplug, testMemAddr+blk, 2), memRespError, 0, 4 * blk, 0, 0},
		{"unplug one: released to the host", memRequestBytes(memReqUnplug, testMemAddr+blk, 1), memRespAck, 0, 3 * blk, blk, blk},
		{"unaligned address: error", memRequestBytes(memReqPlug, testMemAddr+4096, 1), memRespError, 0, 3 * blk, blk, blk},
		{"below the region: error", memRequestBytes(memReqState, testMemAddr-blk, 1), memRespError, 0, 3 * blk, blk, blk},
		{"past the region's end: error", memRequestBytes(memReqState, testMemAddr+testMemSize-blk, 2), memRespError, 0, 3 * blk, blk, blk},
		{"zero blocks: error", memRequestBytes(memReqUnplug, testMemAddr, 0), memRespError, 0, 3 * blk, blk, blk},
		{"address that wraps: error", memRequestBytes(memReqState, ^uint64(0)&^(blk-1), 0xffff), memRespError, 0, 3 * blk, blk, blk},
		{"unknown type: error", memRequestBytes(9, testMemAddr, 1), memRespError, 0, 3 * blk, blk, blk},
		{"short request: error", make([]byte, 8), memRespError, 0, 3 * blk, blk, blk},
		{"unplug all: the whole region released", memRequestBytes(memReqUnplugAll, 0, 0), memRespAck, 0, 0, 0, testMemSize},
		{"state after unplug all: unplugged", memRequestBytes(memReqState, testMemAddr, 128), memRespAck, memStateUnplugged, 0, 0, testMemSize},
	}
	for _, s := range steps {
		typ, state := memCall(d, s.req)
		if typ != s.typ || state != s.state {
			t.Fatalf("%s: response (type %d, state %d), want (%d, %d)", s.name, typ, state, s.typ, s.state)
		}
		if got := memConfigField(d, memCfgPluggedSize); got != s.plugged {
			t.Fatalf("%s: plugged_size %d MiB, want %d MiB", s.name, got>>20, s.plugged>>20)
		}
		if s.releasedLen != 0 {
			last := rel.ranges[len(rel.ranges)-1]
			if last != [2]uint64{s.releasedOff, s.releasedLen} {
				t.Fatalf("%s: released %#x+%#x, want %#x+%#x", s.name, last[0], last[1], s.releasedOff, s.releasedLen)
			}
		}
	}
}

func TestMemConfigSpaceWithFakeDriver(t *testing.T) {
	d := newFakeDriver(t, newTestMem(t, 64<<20, &releaseLog{}))
	if id := d.r32(regDeviceID); id != memDeviceID {
		t.Fatalf("device id %d, want %d", id, memDeviceID)
	}
	for _, f := range []struct {
		name string
		off  uint64
		want uint64
	}{
		{"block_size", memCfgBlockSize, MemBlockSize},
		{"addr", memCfgAddr, testMemAddr},
		{"region_size", memCfgRegionSize, testMemSize},
		{"usable_region_size", memCfgUsableSize, testMemSize},
		{"plugged_size", memCfgPluggedSize, 0},
		{"requested_size", memCfgRequestedSize, 64 << 20},
	} {
		if got := memConfigField(d, f.off); got != f.want {
			t.Errorf("%s = %#x, want %#x", f.name, got, f.want)
		}
	}
}

func TestMemResizeRaisesConfigChangeWithFakeDriver(t *testing.T) {
	m := newTestMem(t, 0, &releaseLog{})
	d := newFakeDriver(t, m)
	gen := d.r32(regConfigGeneration)
	// Before DRIVER_OK the generation moves on, but nothing is raised.
	if err := m.Resize(32 << 20); err != nil {
		t.Fatal(err)
	}
	if d.irq.count.Load() != 0 {
		t.Fatal("configuration change raised before DRIVER_OK")
	}
	d.start(featureVersion1, 1, 16)
	if err := m.Resize(64 << 20); err != nil {
		t.Fatal(err)
	}
	if d.irq.count.Load() != 1 || d.r32(regInterruptStatus)&interruptConfigChange == 0 {
		t.Fatalf("interrupts %d, status %#x: want the configuration change", d.irq.count.Load(), d.r32(regInterruptStatus))
	}
	if d.r32(regConfigGeneration) == gen {
		t.Fatal("the configuration generation did not change")
	}
	if got := memConfigField(d, memCfgRequestedSize); got != 64<<20 {
		t.Fatalf("requested_size %d MiB, want 64", got>>20)
	}
	// The same size again tells the driver nothing.
	if err := m.Resize(64 << 20); err != nil || d.irq.count.Load() != 1 {
		t.Fatalf("same size: err %v, interrupts %d", err, d.irq.count.Load())
	}
}

func TestMemResizeErrors(t *testing.T) {
	m := newTestMem(t, 0, &releaseLog{})
	for _, c := range []struct {
		name string
		size uint64
	}{
		{"beyond the region", testMemSize + MemBlockSize},
		{"not whole blocks", 3 << 20},
	} {
		if err := m.Resize(c.size); !errors.Is(err, ErrMemResize) {
			t.Errorf("%s: err %v, want ErrMemResize", c.name, err)
		}
	}
	if m.Requested() != 0 {
		t.Fatalf("requested %d after refused resizes", m.Requested())
	}
	for _, c := range []MemConfig{
		{Addr: testMemAddr, Size: 0},
		{Addr: testMemAddr + MemBlockSize, Size: testMemSize},
		{Addr: testMemAddr, Size: testMemSize + MemBlockSize},
		{Addr: testMemAddr, Size: testMemSize, Requested: 2 * testMemSize},
	} {
		if _, err := NewMem(c); !errors.Is(err, ErrMemResize) {
			t.Errorf("NewMem(%+v): err %v, want ErrMemResize", c, err)
		}
	}
}

func TestMemReleaseFailureKeepsBlocksPluggedWithFakeDriver(t *testing.T) {
	rel := &releaseLog{}
	d := newFakeDriver(t, newTestMem(t, 8<<20, rel))
	d.start(featureVersion1, 1, 16)
	if typ, _ := memCall(d, memRequestBytes(memReqPlug, testMemAddr, 4)); typ != memRespAck {
		t.Fatalf("plug: %d", typ)
	}
	rel.fail = true
	for _, req := range [][]byte{memRequestBytes(memReqUnplug, testMemAddr, 1), memRequestBytes(memReqUnplugAll, 0, 0)} {
		if typ, _ := memCall(d, req); typ != memRespError {
			t.Fatalf("unplug with a failing release: response %d, want ERROR", typ)
		}
	}
	if got := memConfigField(d, memCfgPluggedSize); got != 8<<20 {
		t.Fatalf("plugged_size %d MiB, want 8", got>>20)
	}
}

func TestMemChainWithoutResponseRoomWithFakeDriver(t *testing.T) {
	d := newFakeDriver(t, newTestMem(t, 8<<20, &releaseLog{}))
	d.start(featureVersion1, 1, 16)
	in := d.buf(memRequestSize, false)
	copy(d.data(in), memRequestBytes(memReqPlug, testMemAddr, 1))
	head := d.submit(0, in, d.buf(4, true))
	if id, n := d.waitUsed(0); id != uint32(head) || n != 0 {
		t.Fatalf("used (%d, %d), want (%d, 0)", id, n, head)
	}
	if typ, state := memCall(d, memRequestBytes(memReqState, testMemAddr, 1)); typ != memRespAck || state != memStateUnplugged {
		t.Fatalf("the chain without room plugged a block: state %d", state)
	}
}

func TestBlockMap(t *testing.T) {
	b := newBlockMap(200)
	b.set(60, 70, true)
	for _, c := range []struct{ first, n, want uint64 }{
		{0, 200, 70}, {0, 60, 0}, {60, 70, 70}, {59, 2, 1}, {129, 2, 1}, {64, 64, 64}, {199, 1, 0},
	} {
		if got := b.count(c.first, c.n); got != c.want {
			t.Errorf("count(%d, %d) = %d, want %d", c.first, c.n, got, c.want)
		}
	}
	b.set(62, 3, false)
	if got := b.count(0, 200); got != 67 {
		t.Fatalf("count after clearing 3: %d, want 67", got)
	}
}

// FuzzMemRequests runs arbitrary request sequences against the device's
// state machine: no panic, plugged_size always the plugged blocks, never
// beyond the region, and only unplugged blocks given back to the host.
func FuzzMemRequests(f *testing.F) {
	f.Add(append(memRequestBytes(memReqPlug, testMemAddr, 4), memRequestBytes(memReqUnplug, testMemAddr+MemBlockSize, 2)...))
	f.Add(append(memRequestBytes(memReqUnplugAll, 0, 0), memRequestBytes(memReqState, testMemAddr, 128)...))
	f.Add(memRequestBytes(memReqPlug, ^uint64(0)-MemBlockSize+1, 0xffff))
	f.Fuzz(func(t *testing.T, data []byte) {
		rel := &releaseLog{}
		m := newTestMem(t, testMemSize/2, rel)
		for len(data) > 0 {
			n := min(len(data), memRequestSize)
			req := parseMemRequest(data[:n])
			data = data[n:]
			if req.typ == memReqUnplug && req.ok {
				// Resize now and then, from what the driver sent.
				_ = m.Resize(uint64(req.nbBlocks%128) * MemBlockSize)
			}
			before := len(rel.ranges)
			m.handle(req)
			if len(rel.ranges) > before && req.typ == memReqUnplug {
				r := rel.ranges[len(rel.ranges)-1]
				if m.blocks.count(r[0]/MemBlockSize, r[1]/MemBlockSize) != 0 {
					t.Fatalf("released %#x+%#x, still plugged", r[0], r[1])
				}
			}
			if got := m.blocks.count(0, m.blocks.len()) * MemBlockSize; got != m.Plugged() || got > testMemSize {
				t.Fatalf("plugged_size %d, plugged blocks %d bytes", m.Plugged(), got)
			}
		}
	})
}

func TestMemPartialShrinkReportsWhatTheDriverReachedWithFakeDriver(t *testing.T) {
	// A shrink the guest honours only in part (blocks it cannot empty):
	// the device reports the blocks still plugged, not the target.
	m := newTestMem(t, 8<<20, &releaseLog{})
	d := newFakeDriver(t, m)
	d.start(featureVersion1, 1, 16)
	const blk = MemBlockSize
	if typ, _ := memCall(d, memRequestBytes(memReqPlug, testMemAddr, 4)); typ != memRespAck {
		t.Fatalf("plug: response %d", typ)
	}
	if err := m.Resize(blk); err != nil {
		t.Fatal(err)
	}
	// The driver gives back one block of the three asked.
	if typ, _ := memCall(d, memRequestBytes(memReqUnplug, testMemAddr+3*blk, 1)); typ != memRespAck {
		t.Fatalf("unplug: response %d", typ)
	}
	if m.Requested() != blk || m.Plugged() != 3*blk {
		t.Errorf("requested %d MiB, plugged %d MiB; want 2 and 6", m.Requested()>>20, m.Plugged()>>20)
	}
	if got := memConfigField(d, memCfgPluggedSize); got != 3*blk {
		t.Errorf("plugged_size in the configuration space %d MiB, want 6", got>>20)
	}
	if got := memConfigField(d, memCfgRequestedSize); got != blk {
		t.Errorf("requested_size %d MiB, want 2", got>>20)
	}
}
