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

// transportFeatures are offered on every device.
const transportFeatures = featureVersion1 | featureIndirectDesc | featureEventIdx

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
