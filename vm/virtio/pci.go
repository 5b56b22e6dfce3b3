package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vmmdev/vmm/vm/pci"
)

// virtio-pci, modern only (virtio 1.2, 4.1 "Virtio Over PCI Bus"): a PCI
// function with the device ID 0x1040 + the virtio device ID, and one
// 64-bit BAR holding the common, ISR, device and notification structures
// (each on a page of its own, found through vendor capabilities) and the
// MSI-X table and PBA.
const (
	pciVendorID     = 0x1af4 // Red Hat, Inc., virtio's vendor
	pciDeviceIDBase = 0x1040 // + the virtio device ID: a modern-only device
	// pciRevision is at least 1 for a modern-only device: legacy drivers
	// (which match revision 0) leave it alone.
	pciRevision = 1
	// pciSubsystemID is informational for a modern device; QEMU's value.
	pciSubsystemID = 0x1100

	// The BAR and its layout.
	pciBAR          = 0
	pciBARSize      = 0x8000
	pciCommonOffset = 0x0000
	pciISROffset    = 0x1000
	pciDeviceOffset = 0x2000
	pciNotifyOffset = 0x3000
	pciMSIXTable    = 0x4000
	pciMSIXPBA      = 0x5000
	pciRegionSize   = 0x1000

	// PCINotifyMultiplier is notify_off_multiplier: queue i's notify
	// address is the notify structure plus i*4, so each queue has an
	// address of its own and its ioeventfd needs no data match (a driver
	// writes the queue's index there, 2 bytes). A page holds 1024 queues.
	PCINotifyMultiplier = 4
	// pciNotifyLen is the width of a notification write (without
	// VIRTIO_F_NOTIFICATION_DATA): the 16-bit queue index.
	pciNotifyLen = 2

	// pciMaxQueues bounds a device's queues: the notify region and the
	// MSI-X table (a vector per queue and one for configuration changes)
	// each fit their page.
	pciMaxQueues = pciRegionSize/pci.MSIXEntrySize - 1

	// Vendor capability cfg_type values (4.1.4).
	pciCapCommon = 1
	pciCapNotify = 2
	pciCapISR    = 3
	pciCapDevice = 4
	pciCapPCICfg = 5
	// pciCapLen is struct virtio_pci_cap; the notify and PCI access
	// capabilities add four bytes.
	pciCapLen = 16

	// pciCommonLen is struct virtio_pci_common_cfg up to queue_reset.
	pciCommonLen = 0x40

	// NoVector is VIRTIO_MSI_NO_VECTOR: no MSI-X vector for this event.
	NoVector = 0xffff
)

// pciClass is the PCI class of a virtio device type, as QEMU gives it.
func pciClass(deviceID uint32) uint32 {
	switch deviceID {
	case blockDeviceID:
		return pci.ClassStorageSCSI
	case netDeviceID:
		return pci.ClassEthernet
	}
	return pci.ClassOther
}

// IOEventRegistry registers queue notifications with KVM (KVM_IOEVENTFD);
// the machine implements it. A virtio-pci transport moves its
// registrations when the guest moves its BAR.
type IOEventRegistry interface {
	AddIOEventFD(IOEventFD) error
	RemoveIOEventFD(IOEventFD) error
}

// PCIConfig is what a virtio-pci transport needs from the machine.
type PCIConfig struct {
	// Memory is guest RAM.
	Memory Memory
	// MSI makes the MSI-X vectors: one per queue and one for
	// configuration changes.
	MSI pci.MSIAllocator
	// IOEvents registers the notify addresses' ioeventfds; nil leaves
	// notifications to BAR writes (a VM exit each).
	IOEvents IOEventRegistry
	// QueueSize is every queue's largest size (queue_size at reset): a
	// power of two up to MaxQueueSizeLimit; 0 means MaxQueueSize.
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

// PCI is a virtio-pci transport: a PCI function (to be added to a
// segment) whose BAR holds the virtio structures a guest driver programs,
// over the transport the virtio transports share, and whose MSI-X vectors
// raise each queue's interrupt.
type PCI struct {
	*transport
	cfg  PCIConfig
	fn   *pci.Function
	msix *pci.MSIX

	// The vectors the driver chose: one per queue, one for configuration
	// changes (NoVector: none). Written under mu, read by the workers.
	queueVectors  []atomic.Uint32
	configVector  atomic.Uint32
	cfgAccessBase int // the PCI configuration access capability

	evMu     sync.Mutex
	events   []IOEventFD // registered now
	evClosed bool
}

// NewPCI puts dev behind a virtio-pci transport and starts one worker
// goroutine per queue; a segment then places its Function. Nothing
// touches guest memory until the guest's driver sets DRIVER_OK. On error
// dev is left open.
func NewPCI(dev Device, cfg PCIConfig) (_ *PCI, err error) {
	if cfg.QueueSize == 0 {
		cfg.QueueSize = MaxQueueSize
	}
	if err := checkTransport("virtio-pci", dev, cfg.Memory, cfg.QueueSize); err != nil {
		return nil, err
	}
	nq := dev.numQueues()
	switch {
	case cfg.MSI == nil:
		return nil, fmt.Errorf("virtio-pci %s: no MSI-X vector allocator", dev.Kind())
	case nq > pciMaxQueues:
		return nil, fmt.Errorf("virtio-pci %s: %d queues, at most %d fit", dev.Kind(), nq, pciMaxQueues)
	case dev.configSize() > pciRegionSize:
		return nil, fmt.Errorf("virtio-pci %s: configuration space of %d bytes", dev.Kind(), dev.configSize())
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	p := &PCI{cfg: cfg, queueVectors: make([]atomic.Uint32, nq)}
	p.resetVectors()
	p.fn = pci.NewFunction(pci.Header{
		VendorID: pciVendorID, DeviceID: uint16(pciDeviceIDBase + dev.deviceID()), Revision: pciRevision,
		Class: pciClass(dev.deviceID()), SubsystemVendorID: pciVendorID, SubsystemID: pciSubsystemID,
	}, p)
	if err := p.fn.SetBAR(pciBAR, pci.BAR{Size: pciBARSize, Kind: pci.BARMem64}); err != nil {
		return nil, err
	}
	if err := p.addCapabilities(dev, nq); err != nil {
		return nil, fmt.Errorf("virtio-pci %s: %w", dev.Kind(), err)
	}
	if p.msix, err = p.fn.AddMSIX(pci.MSIXConfig{Vectors: nq + 1, BAR: pciBAR, TableOffset: pciMSIXTable,
		PBAOffset: pciMSIXPBA, Alloc: cfg.MSI, Log: cfg.Log}); err != nil {
		return nil, fmt.Errorf("virtio-pci %s: %w", dev.Kind(), err)
	}
	p.fn.OnBARChange(p.barMoved)
	t, err := newTransport(dev, transportConfig{
		name: "virtio-pci", mem: cfg.Memory, raise: p, maxQ: cfg.QueueSize, resetQ: cfg.QueueSize,
		log: cfg.Log.With("device", dev.Kind()), onReset: p.resetVectors, workerSetup: cfg.WorkerSetup,
	})
	if err != nil {
		_ = p.msix.Close()
		return nil, err
	}
	p.transport = t
	return p, nil
}

// addCapabilities writes the vendor capabilities that locate the virtio
// structures in the BAR, and the PCI configuration access capability.
func (p *PCI) addCapabilities(dev Device, nq int) error {
	caps := []struct {
		typ          byte
		offset, size uint32
		extra        []byte
	}{
		{pciCapCommon, pciCommonOffset, pciCommonLen, nil},
		{pciCapNotify, pciNotifyOffset, uint32(nq * PCINotifyMultiplier), binary.LittleEndian.AppendUint32(nil, PCINotifyMultiplier)},
		{pciCapISR, pciISROffset, 1, nil},
		{pciCapDevice, pciDeviceOffset, uint32(dev.configSize()), nil},
	}
	for _, c := range caps {
		if c.size == 0 {
			continue // no device configuration: no capability
		}
		if _, err := p.fn.AddCapability(pci.CapVendor, virtioCap(c.typ, pciBAR, c.offset, c.size, c.extra), nil); err != nil {
			return err
		}
	}
	// VIRTIO_PCI_CAP_PCI_CFG: bar, offset and length are the driver's,
	// pci_cfg_data a window onto the BAR.
	body := virtioCap(pciCapPCICfg, 0, 0, 0, make([]byte, 4))
	writable := make([]byte, len(body))
	writable[2] = 0xff                                                           // bar
	copy(writable[6:14], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) // offset, length
	off, err := p.fn.AddCapability(pci.CapVendor, body, writable)
	if err != nil {
		return err
	}
	p.cfgAccessBase = off
	return p.fn.HookWindow(off+pciCapLen, 4, p.readCfgData, p.writeCfgData)
}

// virtioCap is a struct virtio_pci_cap after its id and next bytes:
// cap_len, cfg_type, bar, id, two bytes of padding, offset, length, then
// extra.
func virtioCap(typ, bar byte, offset, length uint32, extra []byte) []byte {
	b := []byte{byte(pciCapLen + len(extra)), typ, bar, 0, 0, 0}
	b = binary.LittleEndian.AppendUint32(b, offset)
	b = binary.LittleEndian.AppendUint32(b, length)
	return append(b, extra...)
}

// Function is the PCI function to add to a segment.
func (p *PCI) Function() *pci.Function { return p.fn }

// MSIX is the function's MSI-X.
func (p *PCI) MSIX() *pci.MSIX { return p.msix }

// resetVectors forgets the driver's vectors (device reset).
func (p *PCI) resetVectors() {
	p.configVector.Store(NoVector)
	for i := range p.queueVectors {
		p.queueVectors[i].Store(NoVector)
	}
}

// vector keeps v if the table has it, else NoVector: the driver reads the
// register back to learn whether its choice took.
func (p *PCI) vector(v uint32) uint32 {
	if v < uint32(p.msix.Vectors()) {
		return v
	}
	return NoVector
}

// usedBuffers implements raiser: the queue's vector, if it has one.
func (p *PCI) usedBuffers(i int) {
	if v := p.queueVectors[i].Load(); v != NoVector {
		p.msix.Trigger(int(v))
	}
}

// configChanged implements raiser: the configuration vector, if any.
func (p *PCI) configChanged() {
	if v := p.configVector.Load(); v != NoVector {
		p.msix.Trigger(int(v))
	}
}

// barMoved follows the BAR: the notify addresses' ioeventfds move with
// it, and go while memory decoding is off.
func (p *PCI) barMoved(bar int, base uint64, on bool) {
	if bar != pciBAR || p.cfg.IOEvents == nil {
		return
	}
	p.evMu.Lock()
	defer p.evMu.Unlock()
	p.unregisterLocked()
	if !on || p.evClosed {
		return
	}
	for i, s := range p.qs {
		e := IOEventFD{EventFD: s.efd, Addr: base + pciNotifyOffset + uint64(i)*PCINotifyMultiplier, Len: pciNotifyLen}
		if err := p.cfg.IOEvents.AddIOEventFD(e); err != nil {
			// Another device's BAR the guest put at the same address:
			// notifications still reach the queue through BAR writes.
			p.log.Warn("virtio-pci: queue notifications exit to the VMM", "queue", i, "addr", fmt.Sprintf("%#x", e.Addr), "err", err)
			continue
		}
		p.events = append(p.events, e)
	}
}

// unregisterLocked removes the registered ioeventfds. Called with evMu
// held.
func (p *PCI) unregisterLocked() {
	for _, e := range p.events {
		if err := p.cfg.IOEvents.RemoveIOEventFD(e); err != nil {
			p.log.Warn("virtio-pci: remove ioeventfd", "addr", fmt.Sprintf("%#x", e.Addr), "err", err)
		}
	}
	p.events = nil
}

// Close stops the device and its workers, removes the ioeventfds, gives
// the MSI-X vectors back and closes the device's backend and the
// notification eventfds. Call it after the vCPUs stopped. Safe to call
// more than once.
func (p *PCI) Close() error {
	p.evMu.Lock()
	if p.cfg.IOEvents != nil {
		p.unregisterLocked()
	}
	p.evClosed = true
	p.evMu.Unlock()
	err := p.close()
	return errors.Join(err, p.msix.Close())
}

// DebugState adds MSI-X's state and the vectors to the transport's.
func (p *PCI) DebugState() string {
	var b strings.Builder
	b.WriteString(p.transport.DebugState())
	fmt.Fprintf(&b, " msix=%v config_vector=%#x", p.msix.Enabled(), p.configVector.Load())
	for i := range p.queueVectors {
		fmt.Fprintf(&b, " q%d_vector=%#x", i, p.queueVectors[i].Load())
	}
	return b.String()
}
