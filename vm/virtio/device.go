package virtio

import (
	"log/slog"
	"time"
)

// Interrupt raises a device's interrupt line in the guest: one edge on its
// GSI. The machine implements it with an irqfd (an eventfd write); the
// transport sets the cause in InterruptStatus before calling it. Trigger
// may be called from any goroutine and must not block. It has the shape of
// vm/devices.Interrupt, so the machine's irqfd line fits both.
type Interrupt interface {
	Trigger() error
}

// InterruptFunc adapts a function to Interrupt.
type InterruptFunc func() error

// Trigger calls f.
func (f InterruptFunc) Trigger() error { return f() }

// Device is a virtio device model: a *Block, *Net, *RNG or *Vsock. It knows
// nothing of its transport: the guest reaches it through virtio-mmio
// (NewMMIO) or virtio-pci (NewPCI), which share its queues and status
// handling, and the transport closes it.
type Device interface {
	// Kind names the device type for logs: "virtio-blk", "virtio-net",
	// "virtio-rng", "virtio-vsock".
	Kind() string
	// Close releases the device's backend (file, tap). The transport's
	// Close calls it.
	Close() error

	deviceID() uint32
	features() uint64
	numQueues() int
	// configSize is the length of the device-specific configuration
	// space; 0 when the device has none.
	configSize() int
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

func (queueOnly) activate(queues) {}

func (queueOnly) deactivate() {}

// gatherer is a device whose queue's buffers may gather for a moment after
// the notification that woke the queue's worker, before it serves them:
// the driver does not notify again until the worker has caught up
// (VIRTIO_F_EVENT_IDX), so what it adds meanwhile joins the same pass, one
// used-ring update and at most one interrupt for the burst.
type gatherer interface {
	// gather is how long queue i's worker waits before this pass; now is
	// when the notification woke it.
	gather(i int, now time.Time) time.Duration
}

// queues is how a device's own goroutines reach its live queues.
type queues interface {
	// with runs f with queue i locked and raises the interrupt afterwards
	// if f used buffers. It returns false, without calling f, when the
	// queue is not live (reset, not ready, broken).
	with(i int, f func(q *vring)) bool
	// logger is the device's log.
	logger() *slog.Logger
	// negotiated is the features the driver accepted.
	negotiated() uint64
	// goWorker runs run on a thread of its own, as the queues' workers
	// run, set up as theirs are (the virtio seccomp filter); what names
	// it. It returns the setup's error, and run does not run then.
	goWorker(what string, run func()) error
}
