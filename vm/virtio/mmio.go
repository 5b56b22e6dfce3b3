package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/vmmdev/vmm/acpi"
)

// The virtio-mmio register block, version 2 (virtio 1.2, 4.2.2 "MMIO Device
// Register Layout"). Offsets are from the block's base; registers are 32
// bits wide and little endian.
const (
	regMagic             = 0x000 // R: "virt"
	regVersion           = 0x004 // R: 2
	regDeviceID          = 0x008 // R
	regVendorID          = 0x00c // R
	regDeviceFeatures    = 0x010 // R: 32 feature bits selected by regDeviceFeaturesSel
	regDeviceFeaturesSel = 0x014 // W
	regDriverFeatures    = 0x020 // W: 32 feature bits selected by regDriverFeaturesSel
	regDriverFeaturesSel = 0x024 // W
	regQueueSel          = 0x030 // W
	regQueueNumMax       = 0x034 // R
	regQueueNum          = 0x038 // W
	regQueueReady        = 0x044 // RW
	regQueueNotify       = 0x050 // W: the queue index
	regInterruptStatus   = 0x060 // R
	regInterruptACK      = 0x064 // W
	regStatus            = 0x070 // RW
	regQueueDescLow      = 0x080 // W
	regQueueDescHigh     = 0x084 // W
	regQueueDriverLow    = 0x090 // W: the available ring
	regQueueDriverHigh   = 0x094 // W
	regQueueDeviceLow    = 0x0a0 // W: the used ring
	regQueueDeviceHigh   = 0x0a4 // W
	regSHMSel            = 0x0ac // W: shared memory region (none here)
	regSHMLenLow         = 0x0b0 // R
	regSHMLenHigh        = 0x0b4 // R
	regSHMBaseLow        = 0x0b8 // R
	regSHMBaseHigh       = 0x0bc // R
	regQueueReset        = 0x0c0 // RW: VIRTIO_F_RING_RESET only (not offered)
	regConfigGeneration  = 0x0fc // R
	regConfig            = 0x100 // device-specific configuration space
)

// Register values.
const (
	// magicValue is "virt" in little endian.
	magicValue = 0x74726976
	// mmioVersion 2 is the virtio 1.x (non-legacy) register layout.
	mmioVersion = 2
	// VendorID is what the VendorID register reads: "vmm" in ASCII, little
	// endian. Drivers do not look at it.
	VendorID = 0x006d6d76
)

// MMIOSize is the length of one device's register block and configuration
// space, as its DSDT entry declares it. The machine maps this many bytes;
// a larger slot (a page) leaves the rest unmapped.
const MMIOSize = 0x200

// QueueNotifyOffset is the QueueNotify register's offset in the block: the
// machine registers an ioeventfd at base+QueueNotifyOffset per queue.
const QueueNotifyOffset = regQueueNotify

// Device status bits (virtio 1.2, 2.1 "Device Status Field").
const (
	statusAcknowledge      = 1
	statusDriver           = 2
	statusDriverOK         = 4
	statusFeaturesOK       = 8
	statusDeviceNeedsReset = 64
	statusFailed           = 128
)

// Interrupt status bits (4.2.2: InterruptStatus).
const (
	interruptUsedBuffer   = 1 << 0
	interruptConfigChange = 1 << 1
)

// Transport feature bits (virtio 1.2, 6 "Reserved Feature Bits").
const (
	featureIndirectDesc = 1 << 28
	// featureEventIdx (VIRTIO_F_EVENT_IDX): the driver says at which used
	// index it wants the next interrupt (used_event) and the device at
	// which available index it wants the next notification
	// (avail_event), so both sides batch: a device draining a busy queue
	// is not notified for every buffer, nor the driver interrupted.
	featureEventIdx = 1 << 29
	featureVersion1 = 1 << 32
)

// transportFeatures are offered on every device.
const transportFeatures = featureVersion1 | featureIndirectDesc | featureEventIdx

// Interrupt raises a device's interrupt line in the guest: one edge on its
// GSI. The machine implements it with an irqfd (an eventfd write); the
// transport sets the cause in InterruptStatus before calling it. Trigger
// may be called from any goroutine and must not block. It has the shape of
// vmm/devices.Interrupt, so the machine's irqfd line fits both.
type Interrupt interface {
	Trigger() error
}

// InterruptFunc adapts a function to Interrupt.
type InterruptFunc func() error

// Trigger calls f.
func (f InterruptFunc) Trigger() error { return f() }

// Device is a virtio device model: a *Block, *Net or *RNG. Its behaviour
// is reached through an MMIO transport (NewMMIO); the transport closes it.
type Device interface {
	// Kind names the device type for logs: "virtio-blk", "virtio-net",
	// "virtio-rng".
	Kind() string
	// Close releases the device's backend (file, tap). The transport's
	// Close calls it.
	Close() error

	deviceID() uint32
	features() uint64
	numQueues() int
	readConfig(offset uint64, data []byte)
	writeConfig(offset uint64, data []byte)
	// activate starts the device after the driver set DRIVER_OK; qs
	// reaches its queues from the device's own goroutines.
	activate(qs queues)
	// process handles a notification of queue i. It runs on that queue's
	// worker goroutine with the queue locked, never on a vCPU thread.
	process(i int, q *vring)
	// deactivate stops what activate started and returns when nothing of
	// the device touches guest memory any more.
	deactivate()
}

// queueOnly is embedded by the devices that do all their work in process:
// their configuration space is read-only (writes are ignored) and they have
// nothing to start or stop with the driver.
type queueOnly struct{}

func (queueOnly) writeConfig(uint64, []byte) {}
func (queueOnly) activate(queues)            {}
func (queueOnly) deactivate()                {}

// queues is how a device's own goroutines reach its live queues.
type queues interface {
	// with runs f with queue i locked and raises the interrupt afterwards
	// if f used buffers. It returns false, without calling f, when the
	// queue is not live (reset, not ready, broken).
	with(i int, f func(q *vring)) bool
	// logger is the device's log.
	logger() *slog.Logger
}

// MMIOConfig places a device in the guest.
type MMIOConfig struct {
	// Base is the guest physical address of the MMIOSize-byte register
	// block; it must be below 4 GiB and MMIOSize aligned.
	Base uint64
	// GSI is the device's interrupt: edge triggered, active high, not
	// shared.
	GSI uint32
	// UID is the device's ACPI _UID and names its DSDT device VRnn; unique
	// among virtio devices, 0 to 99.
	UID int
	// Memory is guest RAM.
	Memory Memory
	// Interrupt raises GSI.
	Interrupt Interrupt
	// Log receives the device's warnings; nil means slog.Default().
	Log *slog.Logger
}

// IOEventFD is a KVM_IOEVENTFD registration the machine makes for one
// queue: a 4-byte guest write of Datamatch at Addr signals EventFD, which
// the queue's worker reads, without a VM exit.
type IOEventFD struct {
	EventFD   int
	Addr      uint64
	Len       uint32
	Datamatch uint64
}

// MMIO is a virtio-mmio transport: the register block a guest driver
// programs, and the worker goroutines that run the device's queues. It
// implements the bus device interface (Read, Write) and acpi.Describer.
type MMIO struct {
	cfg MMIOConfig
	dev Device
	log *slog.Logger
	qs  []*queueSlot

	mu             sync.Mutex // the registers below
	status         uint32
	devFeaturesSel uint32
	drvFeaturesSel uint32
	driverFeatures uint64
	queueSel       uint32
	active         bool // DRIVER_OK accepted: the device runs
	closed         bool // Close ran: writes are ignored

	// fdMu guards the raw notification eventfds against Close: a vCPU's
	// QueueNotify write must never reach a descriptor number the process
	// reused.
	fdMu     sync.RWMutex
	fdClosed bool

	isr        atomic.Uint32 // InterruptStatus
	needsReset atomic.Bool   // DEVICE_NEEDS_RESET, set by workers

	closeOnce sync.Once
	workers   sync.WaitGroup
}

// queueSlot is one queue: its registers, its notification eventfd and its
// live ring.
type queueSlot struct {
	// Registers, under MMIO.mu.
	cfg   ringConfig
	ready bool

	efd  int      // notification eventfd (nonblocking)
	file *os.File // efd, for the worker's poller-backed reads

	run  sync.Mutex            // held while the ring is processed
	ring atomic.Pointer[vring] // nil unless live
}

// NewMMIO puts dev behind a virtio-mmio transport and starts one worker
// goroutine per queue. Nothing touches guest memory until the guest's
// driver sets DRIVER_OK. On error dev is left open.
func NewMMIO(dev Device, cfg MMIOConfig) (*MMIO, error) {
	switch {
	case dev == nil:
		return nil, errors.New("virtio-mmio: no device")
	case cfg.Memory == nil:
		return nil, fmt.Errorf("virtio-mmio %s: no guest memory", dev.Kind())
	case cfg.Interrupt == nil:
		return nil, fmt.Errorf("virtio-mmio %s: no interrupt", dev.Kind())
	case cfg.Base%MMIOSize != 0 || cfg.Base+MMIOSize > 1<<32:
		return nil, fmt.Errorf("virtio-mmio %s: base %#x is not a %#x-aligned address below 4 GiB", dev.Kind(), cfg.Base, MMIOSize)
	case cfg.UID < 0 || cfg.UID > 99:
		return nil, fmt.Errorf("virtio-mmio %s: UID %d outside 0-99", dev.Kind(), cfg.UID)
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	t := &MMIO{cfg: cfg, dev: dev}
	t.log = cfg.Log.With("device", dev.Kind(), "base", fmt.Sprintf("%#x", cfg.Base))
	for i := range dev.numQueues() {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			t.closeQueues()
			return nil, fmt.Errorf("virtio-mmio %s: eventfd for queue %d: %w", dev.Kind(), i, err)
		}
		t.qs = append(t.qs, &queueSlot{efd: fd, file: os.NewFile(uintptr(fd), fmt.Sprintf("virtio-queue-%d", i))})
	}
	for i := range t.qs {
		t.workers.Add(1)
		go t.worker(i)
	}
	return t, nil
}

// Device returns the device behind the transport.
func (t *MMIO) Device() Device { return t.dev }

// Base is the register block's guest physical address.
func (t *MMIO) Base() uint64 { return t.cfg.Base }

// GSI is the device's interrupt.
func (t *MMIO) GSI() uint32 { return t.cfg.GSI }

// IOEventFDs returns one registration per queue for QueueNotify. The
// machine may register them with KVM_IOEVENTFD so that notifications skip
// the VM exit; without them a write to QueueNotify through Write signals
// the same eventfds. The descriptors belong to the transport: the machine
// must deregister them (or close the VM) before Close.
func (t *MMIO) IOEventFDs() []IOEventFD {
	out := make([]IOEventFD, len(t.qs))
	for i, s := range t.qs {
		out[i] = IOEventFD{EventFD: s.efd, Addr: t.cfg.Base + QueueNotifyOffset, Len: 4, Datamatch: uint64(i)}
	}
	return out
}

// AML returns the device's DSDT entry for the \_SB scope: a Device VRnn
// with _HID "LNRO0005" (which Linux's virtio_mmio driver matches), its
// _UID, and _CRS with the register block and its interrupt. The interrupt
// is edge triggered: an irqfd delivers edges, and a level-triggered IOAPIC
// pin fed edges would drop an interrupt raised while the previous one is
// still in service (remote IRR set), stalling the device.
func (t *MMIO) AML() acpi.Aml {
	return acpi.Device(fmt.Sprintf("VR%02d", t.cfg.UID),
		acpi.Name("_HID", acpi.String("LNRO0005")),
		acpi.Name("_UID", acpi.Int(t.cfg.UID)),
		acpi.Name("_CRS", acpi.ResourceTemplate(
			acpi.Memory32Fixed{Base: uint32(t.cfg.Base), Length: MMIOSize},
			acpi.Interrupt{GSIs: []uint32{t.cfg.GSI}},
		)),
	)
}

// Close stops the device and its workers and closes the device's backend
// and the notification eventfds. Call it after the vCPUs stopped and
// before guest memory is unmapped. Safe to call more than once.
func (t *MMIO) Close() error {
	var err error
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.reset()
		t.closed = true
		t.mu.Unlock()
		t.fdMu.Lock()
		t.fdClosed = true
		t.closeQueues()
		t.fdMu.Unlock()
		t.workers.Wait()
		if cerr := t.dev.Close(); cerr != nil {
			err = fmt.Errorf("virtio-mmio %s: %w", t.dev.Kind(), cerr)
		}
	})
	return err
}

func (t *MMIO) closeQueues() {
	for _, s := range t.qs {
		s.file.Close() // wakes the worker: its Read fails with os.ErrClosed
	}
}

// worker runs queue i's notifications: each eventfd wake-up (from an
// ioeventfd or from Write) processes the queue once.
func (t *MMIO) worker(i int) {
	defer t.workers.Done()
	s := t.qs[i]
	var buf [8]byte
	for {
		if _, err := s.file.Read(buf[:]); err != nil {
			if !errors.Is(err, os.ErrClosed) {
				t.log.Error("virtio: queue notification eventfd failed; queue stopped", "queue", i, "err", err)
			}
			return
		}
		t.with(i, func(q *vring) { t.dev.process(i, q) })
	}
}

// with implements queues.
func (t *MMIO) with(i int, f func(q *vring)) bool {
	if i < 0 || i >= len(t.qs) {
		return false
	}
	s := t.qs[i]
	s.run.Lock()
	defer s.run.Unlock()
	q := s.ring.Load()
	if q == nil || q.err != nil {
		return false
	}
	f(q)
	if q.needsInterrupt() {
		t.interrupt(interruptUsedBuffer)
	}
	if q.err != nil {
		t.log.Error("virtio: queue broken; the driver must reset the device", "queue", i, "err", q.err)
		t.needsReset.Store(true)
		t.interrupt(interruptConfigChange)
	}
	return true
}

// DebugState describes the transport for a state dump: the interrupt
// status and, per live queue, the driver's and the device's indexes and
// event indexes, as a queue stuck on a lost notification or interrupt
// shows them. It reads the rings without their lock, so a busy queue's
// numbers may be a moment apart.
func (t *MMIO) DebugState() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s isr=%#x", t.dev.Kind(), t.isr.Load())
	for i, s := range t.qs {
		q := s.ring.Load()
		if q == nil {
			continue
		}
		fmt.Fprintf(&b, " q%d:", i)
		b.WriteString(q.debugState())
	}
	return b.String()
}

// logger implements queues.
func (t *MMIO) logger() *slog.Logger { return t.log }

// interrupt sets cause in InterruptStatus and raises the interrupt.
func (t *MMIO) interrupt(cause uint32) {
	t.isr.Or(cause)
	if err := t.cfg.Interrupt.Trigger(); err != nil {
		t.log.Error("virtio: raise interrupt", "err", err)
	}
}

// notify signals queue i's worker, as an ioeventfd would.
func (t *MMIO) notify(i uint32) {
	if i >= uint32(len(t.qs)) {
		return
	}
	t.fdMu.RLock()
	defer t.fdMu.RUnlock()
	if t.fdClosed {
		return
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	// EAGAIN means the counter is saturated: a wake-up is pending anyway.
	if _, err := unix.Write(t.qs[i].efd, one[:]); err != nil && !errors.Is(err, unix.EAGAIN) {
		t.log.Error("virtio: queue notification", "queue", i, "err", err)
	}
}

// offered is every feature bit the device offers.
func (t *MMIO) offered() uint64 {
	return t.dev.features() | transportFeatures
}

// Read implements the bus device interface: a guest read of the register
// block. Registers take 4-byte aligned 4-byte reads; the configuration
// space takes any size. Anything else reads as zero.
func (t *MMIO) Read(offset uint64, data []byte) {
	clear(data)
	if offset >= regConfig {
		if offset < MMIOSize && uint64(len(data)) <= MMIOSize-offset {
			t.dev.readConfig(offset-regConfig, data)
		}
		return
	}
	if len(data) != 4 || offset%4 != 0 {
		return
	}
	binary.LittleEndian.PutUint32(data, t.readReg(offset))
}

func (t *MMIO) readReg(offset uint64) uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch offset {
	case regMagic:
		return magicValue
	case regVersion:
		return mmioVersion
	case regDeviceID:
		return t.dev.deviceID()
	case regVendorID:
		return VendorID
	case regDeviceFeatures:
		switch t.devFeaturesSel {
		case 0:
			return uint32(t.offered())
		case 1:
			return uint32(t.offered() >> 32)
		}
		return 0
	case regQueueNumMax:
		if t.queueSel < uint32(len(t.qs)) {
			return MaxQueueSize
		}
		return 0
	case regQueueReady:
		if s := t.selected(); s != nil && s.ready {
			return 1
		}
		return 0
	case regInterruptStatus:
		return t.isr.Load()
	case regStatus:
		st := t.status
		if t.needsReset.Load() {
			st |= statusDeviceNeedsReset
		}
		return st
	case regSHMLenLow, regSHMLenHigh:
		return ^uint32(0) // no shared memory region: length all ones
	case regConfigGeneration:
		return 0 // the configuration never changes under the driver
	}
	return 0
}

// selected is the queue QueueSel names, or nil.
func (t *MMIO) selected() *queueSlot {
	if t.queueSel < uint32(len(t.qs)) {
		return t.qs[t.queueSel]
	}
	return nil
}

// Write implements the bus device interface: a guest write to the register
// block. Registers take 4-byte aligned 4-byte writes; other writes to them
// are ignored.
func (t *MMIO) Write(offset uint64, data []byte) {
	if offset >= regConfig {
		if offset < MMIOSize && uint64(len(data)) <= MMIOSize-offset {
			t.mu.Lock()
			if !t.closed {
				t.dev.writeConfig(offset-regConfig, data)
			}
			t.mu.Unlock()
		}
		return
	}
	if len(data) != 4 || offset%4 != 0 {
		return
	}
	v := binary.LittleEndian.Uint32(data)
	if offset == regQueueNotify {
		t.notify(v) // no lock: the hot path, as an ioeventfd would do
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		t.writeReg(offset, v)
	}
}

// writeReg handles a register write with t.mu held.
func (t *MMIO) writeReg(offset uint64, v uint32) {
	// The driver sets up features and queues before DRIVER_OK; later
	// writes to them are ignored (the spec forbids them).
	setup := t.status&statusDriverOK == 0
	switch offset {
	case regDeviceFeaturesSel:
		t.devFeaturesSel = v
	case regDriverFeaturesSel:
		t.drvFeaturesSel = v
	case regDriverFeatures:
		if t.status&statusFeaturesOK != 0 {
			return
		}
		switch t.drvFeaturesSel {
		case 0:
			t.driverFeatures = t.driverFeatures&^0xffffffff | uint64(v)
		case 1:
			t.driverFeatures = t.driverFeatures&0xffffffff | uint64(v)<<32
		}
	case regQueueSel:
		t.queueSel = v
	case regQueueNum:
		if s := t.selected(); s != nil && setup && !s.ready {
			s.cfg.size = uint16(min(v, 0xffff)) // validated when the queue goes live
		}
	case regQueueDescLow, regQueueDescHigh, regQueueDriverLow, regQueueDriverHigh, regQueueDeviceLow, regQueueDeviceHigh:
		if s := t.selected(); s != nil && setup && !s.ready {
			setHalf(queueAddr(&s.cfg, offset), offset, v)
		}
	case regQueueReady:
		if s := t.selected(); s != nil {
			t.setReady(int(t.queueSel), s, v == 1)
		}
	case regInterruptACK:
		t.isr.And(^v)
	case regStatus:
		t.setStatus(v)
	}
}

// queueAddr is the ring address a Desc/Driver/Device register sets.
func queueAddr(c *ringConfig, offset uint64) *uint64 {
	switch offset {
	case regQueueDescLow, regQueueDescHigh:
		return &c.desc
	case regQueueDriverLow, regQueueDriverHigh:
		return &c.avail
	}
	return &c.used
}

// setHalf sets the low or high 32 bits of *p: the High registers sit 4
// bytes after the Low ones.
func setHalf(p *uint64, offset uint64, v uint32) {
	if offset%8 == 4 {
		*p = *p&0xffffffff | uint64(v)<<32
	} else {
		*p = *p&^0xffffffff | uint64(v)
	}
}

// setReady handles a QueueReady write: a queue made ready while the device
// runs goes live at once; one made not ready stops.
func (t *MMIO) setReady(i int, s *queueSlot, ready bool) {
	if ready == s.ready {
		return
	}
	s.ready = ready
	if !t.active {
		return
	}
	if ready {
		t.startQueue(i, s)
	} else {
		stopQueue(s)
	}
}

// setStatus handles a Status write.
func (t *MMIO) setStatus(v uint32) {
	if v == 0 {
		t.reset()
		return
	}
	old := t.status
	if v&statusFeaturesOK != 0 && old&statusFeaturesOK == 0 {
		if err := t.checkFeatures(); err != nil {
			t.log.Warn("virtio: driver features refused", "err", err)
			v &^= statusFeaturesOK // the driver reads it back and gives up
		}
	}
	t.status = v &^ statusDeviceNeedsReset
	if v&statusDriverOK != 0 && old&statusDriverOK == 0 && !t.active {
		if v&statusFeaturesOK == 0 {
			t.log.Warn("virtio: DRIVER_OK without FEATURES_OK; device not started")
			return
		}
		t.activate()
	}
}

// checkFeatures validates the driver's features when it sets FEATURES_OK.
func (t *MMIO) checkFeatures() error {
	if extra := t.driverFeatures &^ t.offered(); extra != 0 {
		return fmt.Errorf("features %#x were not offered", extra)
	}
	if t.driverFeatures&featureVersion1 == 0 {
		return errors.New("VIRTIO_F_VERSION_1 not accepted: legacy drivers are not supported")
	}
	return nil
}

// activate starts the device, then its ready queues (DRIVER_OK): the
// device is ready for process calls before any queue is live.
func (t *MMIO) activate() {
	t.active = true
	t.dev.activate(t)
	for i, s := range t.qs {
		if s.ready {
			t.startQueue(i, s)
		}
	}
}

// startQueue makes queue i live and processes whatever the driver queued
// before: a notification sent while the queue was not live was dropped.
func (t *MMIO) startQueue(i int, s *queueSlot) {
	if err := s.cfg.validate(t.cfg.Memory); err != nil {
		t.log.Error("virtio: queue setup refused; the driver must reset the device", "queue", i, "err", err)
		t.needsReset.Store(true)
		t.interrupt(interruptConfigChange)
		return
	}
	q := newVring(s.cfg, t.cfg.Memory, t.driverFeatures&featureIndirectDesc != 0, t.log.With("queue", i))
	q.eventIdx = t.driverFeatures&featureEventIdx != 0
	s.ring.Store(q)
	t.notify(uint32(i))
}

// stopQueue takes a queue out of service and waits until its worker (or
// the device's goroutine) no longer uses it.
func stopQueue(s *queueSlot) {
	s.run.Lock()
	s.ring.Store(nil)
	s.run.Unlock()
}

// reset returns the device to its initial state (a Status write of 0, or
// Close). After it returns nothing touches guest memory.
func (t *MMIO) reset() {
	for _, s := range t.qs {
		stopQueue(s)
	}
	if t.active {
		t.dev.deactivate()
	}
	t.active = false
	t.status = 0
	t.devFeaturesSel, t.drvFeaturesSel, t.driverFeatures, t.queueSel = 0, 0, 0, 0
	for _, s := range t.qs {
		s.cfg, s.ready = ringConfig{}, false
	}
	t.isr.Store(0)
	t.needsReset.Store(false)
}
