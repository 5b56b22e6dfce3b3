package virtio

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmmdev/vmm/acpi"
	"github.com/vmmdev/vmm/acpi/acpitest"
)

// newTestRNG is an RNG reading a file of known bytes.
func newTestRNG(t *testing.T, content []byte) *RNG {
	t.Helper()
	src := filepath.Join(t.TempDir(), "entropy")
	if err := os.WriteFile(src, content, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := NewRNG(src)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestMMIOIdentityRegistersWithFakeDriver(t *testing.T) {
	d := newFakeDriver(t, newTestRNG(t, nil))
	for _, c := range []struct {
		name string
		off  uint64
		want uint32
	}{
		{"magic", regMagic, 0x74726976},
		{"version", regVersion, 2},
		{"device id", regDeviceID, rngDeviceID},
		{"vendor id", regVendorID, VendorID},
		{"status", regStatus, 0},
		{"interrupt status", regInterruptStatus, 0},
		{"config generation", regConfigGeneration, 0},
		{"shared memory length", regSHMLenLow, 0xffffffff},
	} {
		if got := d.r32(c.off); got != c.want {
			t.Errorf("%s (%#x) = %#x, want %#x", c.name, c.off, got, c.want)
		}
	}
	if f := d.deviceFeatures(); f&featureVersion1 == 0 {
		t.Errorf("features %#x lack VIRTIO_F_VERSION_1", f)
	}
	d.w32(regQueueSel, 0)
	if got := d.r32(regQueueNumMax); got != MaxQueueSize {
		t.Errorf("queue 0 QueueNumMax = %d, want %d", got, MaxQueueSize)
	}
	d.w32(regQueueSel, 1)
	if got := d.r32(regQueueNumMax); got != 0 {
		t.Errorf("missing queue 1 QueueNumMax = %d, want 0", got)
	}
}

func TestMMIOIgnoresOddAccessesWithFakeDriver(t *testing.T) {
	d := newFakeDriver(t, newTestRNG(t, nil))
	for _, c := range []struct {
		off  uint64
		size int
	}{
		{regMagic, 1}, {regMagic, 2}, {regMagic, 8}, {regMagic + 1, 4}, {0x1fc, 8}, {0x200, 4}, {1 << 40, 4}, {^uint64(0), 4},
	} {
		b := make([]byte, c.size)
		for i := range b {
			b[i] = 0xaa
		}
		d.dev.Read(c.off, b)
		for _, x := range b {
			if x != 0 {
				t.Errorf("read %d bytes at %#x = % x, want zeros", c.size, c.off, b)
				break
			}
		}
		d.dev.Write(c.off, b)
	}
	if got := d.r32(regMagic); got != magicValue {
		t.Errorf("magic after odd accesses = %#x", got)
	}
}

func TestMMIORefusesDriverWithoutVersion1(t *testing.T) {
	d := newFakeDriver(t, newTestRNG(t, nil))
	if d.negotiate(0) {
		t.Fatal("FEATURES_OK accepted without VIRTIO_F_VERSION_1")
	}
	// A driver cannot take features the device did not offer either.
	d.w32(regStatus, 0)
	d.w32(regStatus, statusAcknowledge|statusDriver)
	d.w32(regDriverFeaturesSel, 1)
	d.w32(regDriverFeatures, 1|1<<3) // VERSION_1 and an unoffered bit
	d.w32(regStatus, statusAcknowledge|statusDriver|statusFeaturesOK)
	if d.r32(regStatus)&statusFeaturesOK != 0 {
		t.Fatal("FEATURES_OK accepted with unoffered features")
	}
}

func TestMMIOResetClearsStateAndStopsQueues(t *testing.T) {
	content := []byte("0123456789abcdef")
	d := newFakeDriver(t, newTestRNG(t, content))
	d.start(featureVersion1, 1, 8)
	b := d.buf(4, true)
	d.submit(0, b)
	if _, n := d.waitUsed(0); n != 4 {
		t.Fatalf("used len %d, want 4", n)
	}
	if d.r32(regInterruptStatus)&interruptUsedBuffer == 0 {
		t.Fatal("interrupt status lacks the used buffer bit")
	}
	d.w32(regInterruptACK, interruptUsedBuffer)
	if got := d.r32(regInterruptStatus); got != 0 {
		t.Fatalf("interrupt status after ACK = %#x", got)
	}

	d.w32(regStatus, 0)
	if got := d.r32(regStatus); got != 0 {
		t.Errorf("status after reset = %#x", got)
	}
	d.w32(regQueueSel, 0)
	if got := d.r32(regQueueReady); got != 0 {
		t.Errorf("queue ready after reset = %d", got)
	}
	// The old ring is dead: a notification does nothing.
	d.submit(0, d.buf(4, true))
	d.expectNoUsed(0)

	// A new driver starts over and is served from the start of its rings.
	d.start(featureVersion1, 1, 8)
	b2 := d.buf(4, true)
	d.submit(0, b2)
	if _, n := d.waitUsed(0); n != 4 {
		t.Fatalf("after reset: used len %d, want 4", n)
	}
	if got := string(d.data(b2)); got != "4567" {
		t.Errorf("after reset: got %q, want %q", got, "4567")
	}
}

func TestMMIONotificationThroughIOEventFD(t *testing.T) {
	d := newFakeDriver(t, newTestRNG(t, []byte("abcd")))
	d.start(featureVersion1, 1, 8)
	fds := d.dev.IOEventFDs()
	if len(fds) != 1 || fds[0].Addr != testBase+0x50 || fds[0].Len != 4 || fds[0].Datamatch == nil || *fds[0].Datamatch != 0 {
		t.Fatalf("IOEventFDs = %+v", fds)
	}
	q := d.queues[0]
	b := d.buf(4, true)
	d.offer(q, d.chainDescs(q, []fakeBuf{b}))
	// What KVM does for a guest write matching the ioeventfd.
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	if _, err := unix.Write(fds[0].EventFD, one[:]); err != nil {
		t.Fatal(err)
	}
	if _, n := d.waitUsed(0); n != 4 || string(d.data(b)) != "abcd" {
		t.Fatalf("used len %d, data %q", n, d.data(b))
	}
	if d.irq.count.Load() == 0 {
		t.Error("no interrupt raised")
	}
}

func TestMMIOQueueSetupOutsideRAMNeedsReset(t *testing.T) {
	d := newFakeDriver(t, newTestRNG(t, nil))
	if !d.negotiate(featureVersion1) {
		t.Fatal("features refused")
	}
	d.w32(regQueueSel, 0)
	d.w32(regQueueNum, 8)
	d.w32(regQueueDescLow, 0x1000) // below the fake RAM
	d.w32(regQueueDriverLow, testRAMBase)
	d.w32(regQueueDeviceLow, testRAMBase+0x1000)
	d.w32(regQueueReady, 1)
	d.w32(regStatus, statusAcknowledge|statusDriver|statusFeaturesOK|statusDriverOK)
	if d.r32(regStatus)&statusDeviceNeedsReset == 0 {
		t.Fatal("DEVICE_NEEDS_RESET not set")
	}
	if d.r32(regInterruptStatus)&interruptConfigChange == 0 {
		t.Fatal("no configuration change interrupt")
	}
	d.w32(regStatus, 0)
	if d.r32(regStatus) != 0 {
		t.Fatal("reset did not clear DEVICE_NEEDS_RESET")
	}
}

func TestMMIOBadQueueSizeRefused(t *testing.T) {
	for _, size := range []uint32{0, 3, 512, 1 << 20} {
		d := newFakeDriver(t, newTestRNG(t, nil))
		d.negotiate(featureVersion1)
		d.setupQueue(0, 8)
		d.w32(regQueueSel, 0)
		d.w32(regQueueReady, 0)
		d.w32(regQueueNum, size)
		d.w32(regQueueReady, 1)
		d.w32(regStatus, statusAcknowledge|statusDriver|statusFeaturesOK|statusDriverOK)
		if d.r32(regStatus)&statusDeviceNeedsReset == 0 {
			t.Errorf("queue size %d: DEVICE_NEEDS_RESET not set", size)
		}
	}
}

func TestMMIOBrokenAvailIndexNeedsReset(t *testing.T) {
	d := newFakeDriver(t, newTestRNG(t, nil))
	d.start(featureVersion1, 1, 8)
	q := d.queues[0]
	d.setAvailIdx(q, 100) // 100 entries in a ring of 8
	d.w32(regQueueNotify, 0)
	deadline := time.Now().Add(5 * time.Second)
	for d.r32(regStatus)&statusDeviceNeedsReset == 0 {
		if time.Now().After(deadline) {
			t.Fatal("DEVICE_NEEDS_RESET not set")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestMMIOMalformedChainReturnedUnused(t *testing.T) {
	d := newFakeDriver(t, newTestRNG(t, []byte("xyzw")))
	d.start(featureVersion1, 1, 8)
	// A device-readable buffer after a device-writable one.
	d.submit(0, d.buf(4, true), d.buf(4, false))
	if _, n := d.waitUsed(0); n != 0 {
		t.Fatalf("malformed chain used with %d bytes, want 0", n)
	}
	// A buffer outside guest RAM.
	d.submit(0, fakeBuf{gpa: 0x10, len: 4, write: true})
	if _, n := d.waitUsed(0); n != 0 {
		t.Fatalf("chain outside RAM used with %d bytes, want 0", n)
	}
	// The queue still works.
	b := d.buf(4, true)
	d.submit(0, b)
	if _, n := d.waitUsed(0); n != 4 || string(d.data(b)) != "xyzw" {
		t.Fatalf("after malformed chains: used len %d, data %q", n, d.data(b))
	}
}

func TestMMIONoInterruptWhenDriverSuppressesIt(t *testing.T) {
	d := newFakeDriver(t, newTestRNG(t, []byte("abcdefgh")))
	d.start(featureVersion1, 1, 8)
	q := d.queues[0]
	d.setAvailFlags(q, availFNoInterrupt)
	d.submit(0, d.buf(4, true))
	d.waitUsed(0)
	time.Sleep(20 * time.Millisecond)
	if n := d.irq.count.Load(); n != 0 {
		t.Fatalf("%d interrupts despite VRING_AVAIL_F_NO_INTERRUPT", n)
	}
}

func TestMMIOCloseIsIdempotent(t *testing.T) {
	d := newFakeDriver(t, newTestRNG(t, nil))
	d.start(featureVersion1, 1, 8)
	if err := d.dev.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.dev.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestNewMMIORejectsBadPlacement(t *testing.T) {
	mem, irq := newFakeMemory(0, 4096), &fakeInterrupt{}
	for _, c := range []struct {
		name string
		cfg  MMIOConfig
	}{
		{"no memory", MMIOConfig{Base: testBase, Interrupt: irq}},
		{"no interrupt", MMIOConfig{Base: testBase, Memory: mem}},
		{"unaligned", MMIOConfig{Base: testBase + 4, Memory: mem, Interrupt: irq}},
		{"above 4 GiB", MMIOConfig{Base: 1 << 32, Memory: mem, Interrupt: irq}},
		{"UID 100", MMIOConfig{Base: testBase, UID: 100, Memory: mem, Interrupt: irq}},
	} {
		r := newTestRNG(t, nil)
		if m, err := NewMMIO(r, c.cfg); err == nil {
			m.Close()
			t.Errorf("%s: no error", c.name)
		}
		r.Close()
	}
}

func TestMMIOAMLDisassemblesWithIASL(t *testing.T) {
	mem, irq := newFakeMemory(0, 4096), &fakeInterrupt{}
	var devs []acpi.Describer
	for i, base := range []uint64{0xd0100000, 0xd0101000} {
		m, err := NewMMIO(newTestRNG(t, nil), MMIOConfig{Base: base, GSI: uint32(16 + i), UID: i, Memory: mem, Interrupt: irq})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		devs = append(devs, m)
	}
	dsdt, err := acpi.DSDT(acpi.SystemBus(devs...))
	if err != nil {
		t.Fatal(err)
	}
	asl := acpitest.Disassemble(t, dsdt)
	for _, want := range []string{
		`Device (VR00)`,
		`Device (VR01)`,
		`Name (_HID, "LNRO0005")`,
		`Name (_UID, One)`,
		`Memory32Fixed (ReadWrite,`,
		`0xD0100000,         // Address Base`,
		`0x00000200,         // Address Length`,
		`Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )`,
		`0x00000011,`,
	} {
		if !strings.Contains(asl, want) {
			t.Errorf("disassembly lacks %q:\n%s", want, asl)
		}
	}
}

// FuzzMMIORegisters plays arbitrary register accesses, of any size at any
// offset, against a block or entropy device whose guest RAM is arbitrary
// too: the transport and the devices must neither panic nor hang, and
// Close must stop them.
func FuzzMMIORegisters(f *testing.F) {
	img := filepath.Join(f.TempDir(), "fuzz.img")
	if err := os.WriteFile(img, make([]byte, 8*SectorSize), 0o644); err != nil {
		f.Fatal(err)
	}
	// A driver's start-up: features, queue 0 of 8 at 0x1000, DRIVER_OK,
	// a notification; then a request in RAM.
	var ops []byte
	w := func(off uint64, v uint32) {
		ops = binary.LittleEndian.AppendUint16(append(ops, 1|2<<1), uint16(off))
		ops = binary.LittleEndian.AppendUint32(ops, v)
	}
	w(regStatus, statusAcknowledge)
	w(regStatus, statusAcknowledge|statusDriver)
	w(regDriverFeaturesSel, 1)
	w(regDriverFeatures, 1)
	w(regStatus, statusAcknowledge|statusDriver|statusFeaturesOK)
	w(regQueueSel, 0)
	w(regQueueNum, 8)
	w(regQueueDescLow, 0x1000)
	w(regQueueDriverLow, 0x1100)
	w(regQueueDeviceLow, 0x1200)
	w(regQueueReady, 1)
	w(regStatus, statusAcknowledge|statusDriver|statusFeaturesOK|statusDriverOK)
	w(regQueueNotify, 0)
	ram := make([]byte, 0x1400)
	binary.LittleEndian.PutUint64(ram[0x1000:], 0x800)
	binary.LittleEndian.PutUint32(ram[0x1008:], 16)
	binary.LittleEndian.PutUint16(ram[0x100c:], descFNext)
	binary.LittleEndian.PutUint16(ram[0x100e:], 1)
	binary.LittleEndian.PutUint64(ram[0x1010:], 0x900)
	binary.LittleEndian.PutUint32(ram[0x1018:], 513)
	binary.LittleEndian.PutUint16(ram[0x101c:], descFWrite)
	binary.LittleEndian.PutUint16(ram[0x1102:], 1)
	f.Add(false, ops, ram)
	f.Add(true, ops, ram)
	f.Fuzz(func(t *testing.T, block bool, ops, ram []byte) {
		mem := newFakeMemory(0, 0x4000)
		copy(mem.regions[0].b, ram)
		var dev Device
		var err error
		if block {
			dev, err = NewBlock(img, false)
		} else {
			dev, err = NewRNG("/dev/zero")
		}
		if err != nil {
			t.Fatal(err)
		}
		m, err := NewMMIO(dev, MMIOConfig{Base: testBase, GSI: testGSI, Memory: mem, Interrupt: &fakeInterrupt{}, Log: discard})
		if err != nil {
			t.Fatal(err)
		}
		for ; len(ops) >= 7; ops = ops[7:] {
			kind := ops[0]
			off := uint64(binary.LittleEndian.Uint16(ops[1:])) % (MMIOSize + 0x20)
			data := make([]byte, 8)
			copy(data, ops[3:7])
			data = data[:[]int{1, 2, 4, 8}[kind>>1&3]]
			if kind&1 == 0 {
				m.Read(off, data)
			} else {
				m.Write(off, data)
			}
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestNeedEventIsTheSpecsVringNeedEvent(t *testing.T) {
	for _, c := range []struct {
		event, newIdx, oldIdx uint16
		want                  bool
	}{
		{5, 6, 5, true},           // the move used entry 5
		{5, 8, 2, true},           // entry 5 is among those used
		{5, 5, 2, false},          // entry 5 not used yet
		{5, 9, 6, false},          // entry 5 was used before old
		{0xffff, 1, 0xfffe, true}, // across the wrap
		{0xfffd, 0xffff, 0xfffe, false},
	} {
		if got := needEvent(c.event, c.newIdx, c.oldIdx); got != c.want {
			t.Errorf("needEvent(event %d, new %d, old %d) = %v, want %v", c.event, c.newIdx, c.oldIdx, got, c.want)
		}
	}
}

// setUsedEvent writes the driver's used_event, after the available ring
// (4-byte aligned in these tests: size is a multiple of 2), atomically.
func (d *fakeDriver) setUsedEvent(q *fakeQueue, v uint16) {
	storeLow16(d.mem.bytes(d.t, q.avail+4+2*uint64(q.size), 4), v)
}

// availEvent reads the device's avail_event, after the used ring, with an
// atomic load of the word it starts.
func (d *fakeDriver) availEvent(q *fakeQueue) uint16 {
	return uint16(load32(d.mem.bytes(d.t, q.used+4+usedElemSize*uint64(q.size), 4)))
}

func TestMMIOWithEventIdxInterruptsOnlyWhenUsedEventIsPassed(t *testing.T) {
	d := newFakeDriver(t, newTestRNG(t, []byte("abcdefgh")))
	d.start(featureVersion1|featureEventIdx, 1, 8)
	q := d.queues[0]
	d.setUsedEvent(q, 5)              // interrupt me when entry 5 is used
	want := []int64{1, 1, 1, 1, 1, 2} // the first decision always interrupts
	for i, w := range want {
		d.submit(0, d.buf(4, true))
		d.waitUsed(0)
		time.Sleep(5 * time.Millisecond) // the interrupt follows the used index
		if n := d.irq.count.Load(); n != w {
			t.Fatalf("after %d buffers: %d interrupts, want %d", i+1, n, w)
		}
	}
}

func TestMMIOWithEventIdxAsksForANotificationAtTheNextEntryWhenDrained(t *testing.T) {
	d := newFakeDriver(t, newTestRNG(t, []byte("abcdefgh")))
	d.start(featureVersion1|featureEventIdx, 1, 8)
	q := d.queues[0]
	for range 3 {
		d.submit(0, d.buf(4, true))
		d.waitUsed(0)
	}
	time.Sleep(5 * time.Millisecond)
	if got := d.availEvent(q); got != 3 {
		t.Fatalf("avail_event %d after 3 buffers, want 3", got)
	}
}
