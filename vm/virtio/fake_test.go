package virtio

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

// fakeMemory is guest RAM for tests: regions at fixed guest addresses, as
// the machine's memory.Guest keeps them.
type fakeMemory struct {
	regions []fakeRegion
}

type fakeRegion struct {
	base uint64
	b    []byte
}

func newFakeMemory(base, size uint64) *fakeMemory {
	return &fakeMemory{regions: []fakeRegion{{base, make([]byte, size)}}}
}

// Slice implements Memory: the range must lie inside one region.
func (m *fakeMemory) Slice(gpa, n uint64) ([]byte, error) {
	for _, r := range m.regions {
		if gpa >= r.base && gpa-r.base < uint64(len(r.b)) {
			off := gpa - r.base
			if n > uint64(len(r.b))-off {
				break
			}
			return r.b[off : off+n : off+n], nil
		}
	}
	return nil, fmt.Errorf("fake memory: %#x+%#x is not RAM", gpa, n)
}

// bytes returns guest memory for the test's own use, failing the test when
// it is not RAM.
func (m *fakeMemory) bytes(t testing.TB, gpa, n uint64) []byte {
	t.Helper()
	b, err := m.Slice(gpa, n)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fakeInterrupt counts interrupts.
type fakeInterrupt struct {
	count atomic.Int64
}

func (f *fakeInterrupt) Trigger() error {
	f.count.Add(1)
	return nil
}

// Test placement of the device.
const (
	testBase    = 0xd0100000
	testGSI     = 16
	testRAMBase = 0x100000
	testRAMSize = 4 << 20
)

// fakeDriver plays a guest's virtio driver: it programs the transport
// through its registers, as vCPUs would, and keeps its rings in fake guest
// memory. The transport is virtio-mmio (dev) unless newFakePCIDriver made
// it virtio-pci (pci).
type fakeDriver struct {
	t      testing.TB
	mem    *fakeMemory
	irq    *fakeInterrupt
	dev    *MMIO
	pci    *fakePCI
	next   uint64 // bump allocator in guest RAM
	queues map[int]*fakeQueue
}

// fakeTransportOps is what the driver does differently per transport.
type fakeTransportOps interface {
	deviceFeatures() uint64
	setDriverFeatures(f uint64)
	status() uint32
	setStatus(v uint32)
	// setupQueue programs queue q (size, rings) and enables it.
	setupQueue(q *fakeQueue)
	notify(i int)
}

// ops is the transport's half of the driver.
func (d *fakeDriver) ops() fakeTransportOps {
	if d.pci != nil {
		return d.pci
	}
	return fakeMMIOOps{d}
}

// fakeMMIOOps drives virtio-mmio's registers.
type fakeMMIOOps struct{ d *fakeDriver }

func (o fakeMMIOOps) deviceFeatures() uint64 {
	d := o.d
	d.w32(regDeviceFeaturesSel, 0)
	lo := d.r32(regDeviceFeatures)
	d.w32(regDeviceFeaturesSel, 1)
	hi := d.r32(regDeviceFeatures)
	return uint64(hi)<<32 | uint64(lo)
}

func (o fakeMMIOOps) setDriverFeatures(f uint64) {
	d := o.d
	d.w32(regDriverFeaturesSel, 0)
	d.w32(regDriverFeatures, uint32(f))
	d.w32(regDriverFeaturesSel, 1)
	d.w32(regDriverFeatures, uint32(f>>32))
}

func (o fakeMMIOOps) status() uint32     { return o.d.r32(regStatus) }
func (o fakeMMIOOps) setStatus(v uint32) { o.d.w32(regStatus, v) }
func (o fakeMMIOOps) notify(i int)       { o.d.w32(regQueueNotify, uint32(i)) }

func (o fakeMMIOOps) setupQueue(q *fakeQueue) {
	d := o.d
	d.w32(regQueueSel, uint32(q.index))
	if d.r32(regQueueReady) != 0 {
		d.t.Fatalf("queue %d ready before setup", q.index)
	}
	if max := d.r32(regQueueNumMax); max < uint32(q.size) {
		d.t.Fatalf("queue %d: QueueNumMax %d below %d", q.index, max, q.size)
	}
	d.w32(regQueueNum, uint32(q.size))
	d.w32(regQueueDescLow, uint32(q.desc))
	d.w32(regQueueDescHigh, uint32(q.desc>>32))
	d.w32(regQueueDriverLow, uint32(q.avail))
	d.w32(regQueueDriverHigh, uint32(q.avail>>32))
	d.w32(regQueueDeviceLow, uint32(q.used))
	d.w32(regQueueDeviceHigh, uint32(q.used>>32))
	d.w32(regQueueReady, 1)
}

// fakeQueue is the driver side of one split virtqueue.
type fakeQueue struct {
	index             int
	size              uint16
	desc, avail, used uint64
	nextDesc          uint16
	availIdx          uint16
	usedSeen          uint16
}

// fakeBuf is one buffer the driver offers: guest address, length, and
// whether the device writes it.
type fakeBuf struct {
	gpa   uint64
	len   uint32
	write bool
}

// newFakeDriver puts dev behind a transport on fake memory. The transport
// is closed when the test ends.
func newFakeDriver(t testing.TB, dev Device) *fakeDriver {
	t.Helper()
	d := &fakeDriver{t: t, mem: newFakeMemory(testRAMBase, testRAMSize), irq: &fakeInterrupt{}, next: testRAMBase, queues: map[int]*fakeQueue{}}
	m, err := NewMMIO(dev, MMIOConfig{Base: testBase, GSI: testGSI, UID: 0, Memory: d.mem, Interrupt: d.irq,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	d.dev = m
	return d
}

func (d *fakeDriver) r32(off uint64) uint32 {
	var b [4]byte
	d.dev.Read(off, b[:])
	return binary.LittleEndian.Uint32(b[:])
}

func (d *fakeDriver) w32(off uint64, v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	d.dev.Write(off, b[:])
}

// alloc reserves n bytes of guest RAM aligned to align.
func (d *fakeDriver) alloc(n, align uint64) uint64 {
	d.next = (d.next + align - 1) &^ (align - 1)
	a := d.next
	d.next += n
	if d.next > testRAMBase+testRAMSize {
		d.t.Fatalf("fake driver: out of guest RAM")
	}
	return a
}

// deviceFeatures reads the 64 offered feature bits.
func (d *fakeDriver) deviceFeatures() uint64 { return d.ops().deviceFeatures() }

// negotiate resets the device and runs the status sequence up to
// FEATURES_OK with the offered features in want; it reports whether the
// device accepted them.
func (d *fakeDriver) negotiate(want uint64) bool {
	o := d.ops()
	o.setStatus(0)
	o.setStatus(statusAcknowledge)
	o.setStatus(statusAcknowledge | statusDriver)
	o.setDriverFeatures(o.deviceFeatures() & want)
	o.setStatus(statusAcknowledge | statusDriver | statusFeaturesOK)
	return o.status()&statusFeaturesOK != 0
}

// setupQueue lays out queue i with size entries and makes it ready.
func (d *fakeDriver) setupQueue(i int, size uint16) *fakeQueue {
	n := uint64(size)
	q := &fakeQueue{index: i, size: size,
		desc:  d.alloc(descSize*n, descAlign),
		avail: d.alloc(6+2*n, 4), // 4 so that the tests publish idx atomically
		used:  d.alloc(6+usedElemSize*n, usedAlign),
	}
	d.ops().setupQueue(q)
	d.queues[i] = q
	return q
}

// start negotiates want, sets up nq queues of size entries and sets
// DRIVER_OK.
func (d *fakeDriver) start(want uint64, nq int, size uint16) {
	d.t.Helper()
	if !d.negotiate(want) {
		d.t.Fatalf("device refused features %#x", want)
	}
	for i := range nq {
		d.setupQueue(i, size)
	}
	d.ops().setStatus(statusAcknowledge | statusDriver | statusFeaturesOK | statusDriverOK)
}

// writeDesc writes descriptor i of the table at table.
func (d *fakeDriver) writeDesc(table uint64, i uint16, gpa uint64, n uint32, flags, next uint16) {
	b := d.mem.bytes(d.t, table+uint64(i)*descSize, descSize)
	binary.LittleEndian.PutUint64(b[0:], gpa)
	binary.LittleEndian.PutUint32(b[8:], n)
	binary.LittleEndian.PutUint16(b[12:], flags)
	binary.LittleEndian.PutUint16(b[14:], next)
}

// chainDescs writes bufs as a chain into the descriptor table and returns
// its head; descriptors are used round robin (tests keep few in flight).
func (d *fakeDriver) chainDescs(q *fakeQueue, bufs []fakeBuf) uint16 {
	head := q.nextDesc
	for k, b := range bufs {
		i := q.nextDesc
		q.nextDesc = (q.nextDesc + 1) % q.size
		var flags uint16
		if b.write {
			flags |= descFWrite
		}
		if k < len(bufs)-1 {
			flags |= descFNext
		}
		d.writeDesc(q.desc, i, b.gpa, b.len, flags, q.nextDesc)
	}
	return head
}

// offer makes head available and bumps the available index.
func (d *fakeDriver) offer(q *fakeQueue, head uint16) {
	e := d.mem.bytes(d.t, q.avail+4+2*uint64(q.availIdx%q.size), 2)
	binary.LittleEndian.PutUint16(e, head)
	q.availIdx++
	d.setAvailIdx(q, q.availIdx)
}

// setAvailIdx publishes the available index with an atomic store of the
// ring's first word (flags and idx), as a driver's barrier and store
// would: the device then sees every descriptor written before.
func (d *fakeDriver) setAvailIdx(q *fakeQueue, idx uint16) {
	w := d.mem.bytes(d.t, q.avail, 4)
	store32(w, load32(w)&0xffff|uint32(idx)<<16)
}

// setAvailFlags sets the available ring's flags, atomically.
func (d *fakeDriver) setAvailFlags(q *fakeQueue, flags uint16) {
	w := d.mem.bytes(d.t, q.avail, 4)
	store32(w, load32(w)&^0xffff|uint32(flags))
}

// submit offers bufs as one chain on queue i and notifies the device
// through the QueueNotify register.
func (d *fakeDriver) submit(i int, bufs ...fakeBuf) uint16 {
	q := d.queues[i]
	head := d.chainDescs(q, bufs)
	d.offer(q, head)
	d.ops().notify(i)
	return head
}

// usedIdx reads the device's used index.
func (d *fakeDriver) usedIdx(q *fakeQueue) uint16 {
	return uint16(load32(d.mem.bytes(d.t, q.used, 4)) >> 16)
}

// waitUsed waits for the next used element of queue i and returns it.
func (d *fakeDriver) waitUsed(i int) (id, n uint32) {
	d.t.Helper()
	q := d.queues[i]
	deadline := time.Now().Add(5 * time.Second)
	for d.usedIdx(q) == q.usedSeen {
		if time.Now().After(deadline) {
			d.t.Fatalf("queue %d: no used buffer after 5s (used idx %d)", i, q.usedSeen)
		}
		time.Sleep(time.Millisecond)
	}
	e := d.mem.bytes(d.t, q.used+4+usedElemSize*uint64(q.usedSeen%q.size), usedElemSize)
	q.usedSeen++
	return binary.LittleEndian.Uint32(e[0:]), binary.LittleEndian.Uint32(e[4:])
}

// expectNoUsed checks that queue i returns nothing within a short while.
func (d *fakeDriver) expectNoUsed(i int) {
	d.t.Helper()
	time.Sleep(50 * time.Millisecond)
	if q := d.queues[i]; d.usedIdx(q) != q.usedSeen {
		d.t.Fatalf("queue %d: unexpected used buffer", i)
	}
}

// buf allocates n bytes of guest RAM for a buffer.
func (d *fakeDriver) buf(n uint32, write bool) fakeBuf {
	return fakeBuf{gpa: d.alloc(uint64(n), 16), len: n, write: write}
}

// data returns a buffer's bytes.
func (d *fakeDriver) data(b fakeBuf) []byte {
	return d.mem.bytes(d.t, b.gpa, uint64(b.len))
}
