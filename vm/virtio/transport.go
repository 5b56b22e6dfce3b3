package virtio

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmmdev/vmm/vm/eventfd"
)

// transportFeatures are offered on every device.
const transportFeatures = featureVersion1 | featureIndirectDesc | featureEventIdx

// raiser is how a transport signals the driver: virtio-mmio raises its one
// interrupt line for both, virtio-pci the MSI-X vector the driver chose
// for the queue or for configuration changes.
type raiser interface {
	// usedBuffers raises queue i's interrupt: the device used buffers.
	usedBuffers(i int)
	// configChanged raises the configuration change interrupt (also
	// for DEVICE_NEEDS_RESET).
	configChanged()
}

// transportConfig is what a transport tells the shared part about itself.
type transportConfig struct {
	name   string // "virtio-mmio", "virtio-pci", for errors
	mem    Memory
	log    *slog.Logger
	raise  raiser
	maxQ   uint16 // every queue's largest size: QueueNumMax, queue_size at reset
	resetQ uint16 // a queue's size after reset: 0 (virtio-mmio) or maxQ (virtio-pci)
	// onReset resets the transport's own registers; it runs with mu
	// held at the end of every reset.
	onReset func()
	// workerSetup runs first on each worker's thread (WorkerSetup).
	workerSetup func() error
}

// transport is what the virtio transports share: the device, the driver's
// status and features, the queues (their registers, notification eventfds,
// worker goroutines and live rings) and the device's life through the
// status state machine (features, DRIVER_OK, reset, close). A transport
// decodes its own registers into these fields and calls, and raises the
// interrupts asked of it through raise. Guest register accesses run on
// vCPU threads; queues are served on their workers.
type transport struct {
	transportConfig
	dev Device
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
	// notify write must never reach a descriptor number the process
	// reused.
	fdMu     sync.RWMutex
	fdClosed bool
	// stopping tells the queue workers, woken by a write to their
	// eventfds, to return.
	stopping atomic.Bool

	isr        atomic.Uint32 // interrupt status (virtio-mmio's register, virtio-pci's ISR)
	needsReset atomic.Bool   // DEVICE_NEEDS_RESET, set by workers
	configGen  atomic.Uint32 // configuration generation (config_change.go)

	closeOnce sync.Once
	workers   sync.WaitGroup
}

// queueSlot is one queue: its registers, its notification eventfd and its
// live ring.
type queueSlot struct {
	// Registers, under transport.mu.
	cfg   ringConfig
	ready bool

	efd int // notification eventfd (blocking: its worker sleeps in read)

	run  sync.Mutex            // held while the ring is processed
	ring atomic.Pointer[vring] // nil unless live
}

// newTransport makes dev's queues and starts one worker per queue, each on
// an OS thread of its own. Nothing touches guest memory until the driver
// sets DRIVER_OK.
func newTransport(dev Device, cfg transportConfig) (*transport, error) {
	if cfg.log == nil {
		cfg.log = slog.Default()
	}
	t := &transport{transportConfig: cfg, dev: dev}
	if n, ok := dev.(configNotifier); ok {
		n.setConfigNotify(t.configChange)
	}
	for i := range dev.numQueues() {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
		if err != nil {
			t.closeQueues()
			return nil, fmt.Errorf("%s %s: eventfd for queue %d: %w", cfg.name, dev.Kind(), i, err)
		}
		s := &queueSlot{efd: fd}
		s.cfg.size = cfg.resetQ
		t.qs = append(t.qs, s)
	}
	for i := range t.qs {
		t.workers.Add(1)
		if err := t.goWorker(fmt.Sprintf("q%d", i), func() { t.worker(i) }); err != nil {
			t.workers.Done()
			t.stopWorkers()
			t.closeQueues()
			return nil, fmt.Errorf("%s %s: queue %d's worker: %w", cfg.name, dev.Kind(), i, err)
		}
	}
	return t, nil
}

// goWorker implements queues: run goes on a goroutine locked to an OS
// thread of its own, named after the device and what (ps -T shows
// "vq-net-q1"), once workerSetup succeeded there. The thread ends when
// run returns.
func (t *transport) goWorker(what string, run func()) error {
	return goThread(WorkerThreadName(t.dev.Kind(), what), t.workerSetup, run)
}

// stopWorkers ends the queue workers: each one, woken by a write to its
// eventfd, sees stopping and returns.
func (t *transport) stopWorkers() {
	t.stopping.Store(true)
	for _, s := range t.qs {
		eventfd.Signal(s.efd)
	}
	t.workers.Wait()
}

// checkTransport checks what every transport needs.
func checkTransport(name string, dev Device, mem Memory, queueSize uint16) error {
	switch {
	case dev == nil:
		return fmt.Errorf("%s: no device", name)
	case mem == nil:
		return fmt.Errorf("%s %s: no guest memory", name, dev.Kind())
	case queueSize == 0 || queueSize > MaxQueueSizeLimit || queueSize&(queueSize-1) != 0:
		return fmt.Errorf("%s %s: queue size %d: want a power of two up to %d", name, dev.Kind(), queueSize, MaxQueueSizeLimit)
	}
	return nil
}

// Device returns the device behind the transport.
func (t *transport) Device() Device { return t.dev }

// close stops the device and its workers and closes the device's backend
// and the notification eventfds. Safe to call more than once.
func (t *transport) close() error {
	var err error
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.reset()
		t.closed = true
		t.mu.Unlock()
		t.fdMu.Lock()
		t.fdClosed = true
		t.fdMu.Unlock()
		t.stopWorkers()
		t.closeQueues()
		if cerr := t.dev.Close(); cerr != nil {
			err = fmt.Errorf("%s %s: %w", t.name, t.dev.Kind(), cerr)
		}
	})
	return err
}

// closeQueues closes the notification eventfds, once their workers ended.
func (t *transport) closeQueues() {
	for _, s := range t.qs {
		unix.Close(s.efd)
	}
}

// worker runs queue i's notifications: each eventfd wake-up (from an
// ioeventfd or from a notify register write) processes the queue once.
// It sleeps in read(2) on the eventfd, as a thread of its own does: a
// notification wakes it directly.
func (t *transport) worker(i int) {
	defer t.workers.Done()
	efd := t.qs[i].efd
	var buf [8]byte
	for {
		_, err := unix.Read(efd, buf[:])
		if t.stopping.Load() {
			return
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.log.Error("virtio: queue notification eventfd failed; queue stopped", "queue", i, "err", err)
			return
		}
		if g, ok := t.dev.(gatherer); ok {
			if d := g.gather(i, time.Now()); d > 0 {
				ts := unix.NsecToTimespec(d.Nanoseconds())
				_ = unix.Nanosleep(&ts, nil) // EINTR: a shorter wait
			}
		}
		t.with(i, func(q *vring) { t.dev.process(i, q) })
	}
}

// with implements queues.
func (t *transport) with(i int, f func(q *vring)) bool {
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
		t.isr.Or(interruptUsedBuffer)
		t.raise.usedBuffers(i)
	}
	if q.err != nil {
		t.log.Error("virtio: queue broken; the driver must reset the device", "queue", i, "err", q.err)
		t.requestReset()
	}
	return true
}

// requestReset sets DEVICE_NEEDS_RESET and tells the driver.
func (t *transport) requestReset() {
	t.needsReset.Store(true)
	t.isr.Or(interruptConfigChange)
	t.raise.configChanged()
}

// logger implements queues.
func (t *transport) logger() *slog.Logger { return t.log }

// negotiated is the driver's features; the device's activate runs with
// them settled (FEATURES_OK, then DRIVER_OK).
func (t *transport) negotiated() uint64 { return t.driverFeatures }

// DebugState describes the transport for a state dump: the interrupt
// status and, per live queue, the driver's and the device's indexes and
// event indexes, as a queue stuck on a lost notification or interrupt
// shows them. It reads the rings without their lock, so a busy queue's
// numbers may be a moment apart.
func (t *transport) DebugState() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s isr=%#x", t.dev.Kind(), t.isr.Load())
	if d, ok := t.dev.(interface{ debugState() string }); ok {
		b.WriteString(" " + d.debugState())
	}
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

// notify signals queue i's worker, as an ioeventfd would.
func (t *transport) notify(i uint32) {
	if i >= uint32(len(t.qs)) {
		return
	}
	t.fdMu.RLock()
	defer t.fdMu.RUnlock()
	if t.fdClosed {
		return
	}
	if err := eventfd.Signal(t.qs[i].efd); err != nil {
		t.log.Error("virtio: queue notification", "queue", i, "err", err)
	}
}

// offered is every feature bit the device offers.
func (t *transport) offered() uint64 {
	return t.dev.features() | transportFeatures
}

// deviceFeatures is the 32 offered feature bits the selector names.
// Called with t.mu held.
func (t *transport) deviceFeatures() uint32 {
	switch t.devFeaturesSel {
	case 0:
		return uint32(t.offered())
	case 1:
		return uint32(t.offered() >> 32)
	}
	return 0
}

// setDriverFeatures takes 32 of the driver's feature bits, until
// FEATURES_OK. Called with t.mu held.
func (t *transport) setDriverFeatures(v uint32) {
	if t.status&statusFeaturesOK != 0 {
		return
	}
	switch t.drvFeaturesSel {
	case 0:
		t.driverFeatures = t.driverFeatures&^0xffffffff | uint64(v)
	case 1:
		t.driverFeatures = t.driverFeatures&0xffffffff | uint64(v)<<32
	}
}

// readStatus is the device status, with DEVICE_NEEDS_RESET. Called with
// t.mu held.
func (t *transport) readStatus() uint32 {
	st := t.status
	if t.needsReset.Load() {
		st |= statusDeviceNeedsReset
	}
	return st
}

// selected is the queue the selector names, or nil. Called with t.mu
// held.
func (t *transport) selected() *queueSlot {
	if t.queueSel < uint32(len(t.qs)) {
		return t.qs[t.queueSel]
	}
	return nil
}

// inSetup reports whether the driver may still set up queues: before
// DRIVER_OK (the spec forbids later changes, which are ignored). Called
// with t.mu held.
func (t *transport) inSetup() bool { return t.status&statusDriverOK == 0 }

// setReady handles the driver enabling or disabling queue i: a queue made
// ready while the device runs goes live at once; one made not ready stops.
// Called with t.mu held.
func (t *transport) setReady(i int, s *queueSlot, ready bool) {
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

// setStatus handles a status write. Called with t.mu held.
func (t *transport) setStatus(v uint32) {
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
func (t *transport) checkFeatures() error {
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
func (t *transport) activate() {
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
func (t *transport) startQueue(i int, s *queueSlot) {
	if err := s.cfg.validate(t.mem, t.maxQ); err != nil {
		t.log.Error("virtio: queue setup refused; the driver must reset the device", "queue", i, "err", err)
		t.requestReset()
		return
	}
	q := newVring(s.cfg, t.mem, t.driverFeatures&featureIndirectDesc != 0, t.log.With("queue", i))
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

// reset returns the device to its initial state (a status write of 0, or
// close). After it returns nothing touches guest memory. Called with t.mu
// held.
func (t *transport) reset() {
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
		s.cfg, s.ready = ringConfig{size: t.resetQ}, false
	}
	t.isr.Store(0)
	t.needsReset.Store(false)
	if t.onReset != nil {
		t.onReset()
	}
}
