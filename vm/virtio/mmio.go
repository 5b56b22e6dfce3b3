package virtio

import (
	"fmt"
	"log/slog"

	"github.com/vmmdev/vmm/acpi"
)

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
	// QueueSize is every queue's QueueNumMax: a power of two up to
	// MaxQueueSizeLimit; 0 means MaxQueueSize.
	QueueSize uint16
	// Log receives the device's warnings; nil means slog.Default().
	Log *slog.Logger
	// WorkerSetup, when set, runs first on each of the device's worker
	// threads (a thread per queue, and one more for the receive side of a
	// network card or a vsock), which keep their threads for good: vmm
	// installs the virtio seccomp filter there. Its error fails NewMMIO
	// and NewPCI.
	WorkerSetup func() error
}

// IOEventFD is a KVM_IOEVENTFD registration for one queue's
// notifications: a guest write of Len bytes at Addr (of the value
// *Datamatch, when set) signals EventFD, which the queue's worker reads,
// without a VM exit.
type IOEventFD struct {
	EventFD   int
	Addr      uint64
	Len       uint32
	Datamatch *uint64
}

// MMIO is a virtio-mmio transport: the register block a guest driver
// programs, over the transport the virtio transports share. It implements
// the bus device interface (Read, Write) and acpi.Describer.
type MMIO struct {
	*transport
	cfg MMIOConfig
}

// NewMMIO puts dev behind a virtio-mmio transport and starts one worker
// goroutine per queue. Nothing touches guest memory until the guest's
// driver sets DRIVER_OK. On error dev is left open.
func NewMMIO(dev Device, cfg MMIOConfig) (*MMIO, error) {
	if cfg.QueueSize == 0 {
		cfg.QueueSize = MaxQueueSize
	}
	if err := checkTransport("virtio-mmio", dev, cfg.Memory, cfg.QueueSize); err != nil {
		return nil, err
	}
	switch {
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
	m := &MMIO{cfg: cfg}
	t, err := newTransport(dev, transportConfig{
		name: "virtio-mmio", mem: cfg.Memory, raise: m, maxQ: cfg.QueueSize,
		log:         cfg.Log.With("device", dev.Kind(), "base", fmt.Sprintf("%#x", cfg.Base)),
		workerSetup: cfg.WorkerSetup,
	})
	if err != nil {
		return nil, err
	}
	m.transport = t
	return m, nil
}

// Base is the register block's guest physical address.
func (m *MMIO) Base() uint64 { return m.cfg.Base }

// GSI is the device's interrupt.
func (m *MMIO) GSI() uint32 { return m.cfg.GSI }

// IOEventFDs returns one registration per queue for QueueNotify. The
// machine may register them with KVM_IOEVENTFD so that notifications skip
// the VM exit; without them a write to QueueNotify through Write signals
// the same eventfds. The descriptors belong to the transport: the machine
// must deregister them (or close the VM) before Close.
func (m *MMIO) IOEventFDs() []IOEventFD {
	out := make([]IOEventFD, len(m.qs))
	for i, s := range m.qs {
		dm := uint64(i)
		out[i] = IOEventFD{EventFD: s.efd, Addr: m.cfg.Base + QueueNotifyOffset, Len: 4, Datamatch: &dm}
	}
	return out
}

// AML returns the device's DSDT entry for the \_SB scope: a Device VRnn
// with _HID "LNRO0005" (which Linux's virtio_mmio driver matches), its
// _UID, and _CRS with the register block and its interrupt. The interrupt
// is edge triggered: an irqfd delivers edges, and a level-triggered IOAPIC
// pin fed edges would drop an interrupt raised while the previous one is
// still in service (remote IRR set), stalling the device.
func (m *MMIO) AML() acpi.Aml {
	return acpi.Device(fmt.Sprintf("VR%02d", m.cfg.UID),
		acpi.Name("_HID", acpi.String("LNRO0005")),
		acpi.Name("_UID", acpi.Int(m.cfg.UID)),
		acpi.Name("_CRS", acpi.ResourceTemplate(
			acpi.Memory32Fixed{Base: uint32(m.cfg.Base), Length: MMIOSize},
			acpi.Interrupt{GSIs: []uint32{m.cfg.GSI}},
		)),
	)
}

// Close stops the device and its workers and closes the device's backend
// and the notification eventfds. Call it after the vCPUs stopped and
// before guest memory is unmapped. Safe to call more than once.
func (m *MMIO) Close() error { return m.close() }

// usedBuffers implements raiser: virtio-mmio has one interrupt, and the
// cause is in InterruptStatus.
func (m *MMIO) usedBuffers(int) { m.trigger() }

// configChanged implements raiser.
func (m *MMIO) configChanged() { m.trigger() }

func (m *MMIO) trigger() {
	if err := m.cfg.Interrupt.Trigger(); err != nil {
		m.log.Error("virtio: raise interrupt", "err", err)
	}
}
