package vm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/vmmdev/vmm/acpi"
	"github.com/vmmdev/vmm/kvm"
	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/layout"
	"github.com/vmmdev/vmm/vm/pci"
	"github.com/vmmdev/vmm/vm/seccomp"
	"github.com/vmmdev/vmm/vm/virtio"
)

// VirtioTransport is how the guest reaches the virtio devices.
type VirtioTransport string

// Virtio transports.
const (
	// TransportPCI puts each device on a PCI segment (virtio-pci, an
	// MSI-X vector per queue), as Cloud Hypervisor does: the default.
	TransportPCI VirtioTransport = "pci"
	// TransportMMIO puts them on virtio-mmio register blocks in the DSDT,
	// each with an IOAPIC line, as QEMU's microvm and Firecracker do.
	TransportMMIO VirtioTransport = "mmio"
)

// maxMMIODevices is how many virtio-mmio devices a VM may have: each has
// its own GSI, from layout.VirtioIRQStart to the last IOAPIC pin.
const maxMMIODevices = layout.IOAPICPins - layout.VirtioIRQStart

// virtioTransport is what the machine does with either transport.
type virtioTransport interface {
	Device() virtio.Device
	DebugState() string
	Close() error
}

// virtioDevice is one virtio device of a machine: its placement and its
// transport, which owns the device and its backend; virtio-mmio's
// ioeventfds are registered here, virtio-pci's by the transport.
type virtioDevice struct {
	p          placement
	t          virtioTransport
	pci        *virtio.PCI  // set for virtio-pci
	mmio       *virtio.MMIO // set for virtio-mmio
	ioeventfds []virtio.IOEventFD
	// removeAsked is when the guest was asked to release the device
	// (hot plug); zero while no removal is pending. Guarded by the
	// machine's devMu.
	removeAsked time.Time
	// ejecting is set when the guest ejected the device and its transport
	// is being closed; the device leaves the machine's list after that.
	// Guarded by devMu.
	ejecting bool
}

// checkVirtio checks the virtio part of cfg before anything is opened: the
// placements, the device count the transport takes and that the disk
// images exist. The backends themselves are opened, and checked in full,
// when the machine is built.
func checkVirtio(cfg *config.VM, transport VirtioTransport) error {
	places, err := devicePlacements(cfg)
	if err != nil {
		return err
	}
	if n := len(places); transport == TransportMMIO && n > maxMMIODevices {
		return invalidf("%d virtio devices (disks, nets, rng and vsock): at most %d fit on virtio-mmio", n, maxMMIODevices)
	}
	for i, d := range cfg.Disks {
		if _, err := os.Stat(d.Path); err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return invalidf("disk %s: %w", d.Path, err)
		}
		if err := checkImageFormat(i, d); err != nil {
			return err
		}
	}
	return nil
}

// checkImageFormat refuses a disk whose image vmm cannot read: with
// image_type Unknown (the default) the image's format is detected from its
// bytes, as Cloud Hypervisor does, and anything but raw is refused; Raw is
// read as raw whatever its bytes. The other types are CheckSupported's.
func checkImageFormat(i int, d config.Disk) error {
	if d.ImageType != "" && d.ImageType != config.ImageUnknown {
		return nil
	}
	format, err := virtio.DetectFormat(d.Path)
	if err != nil {
		return invalidf("disk %s: %w", d.Path, err)
	}
	if format != virtio.FormatRaw {
		return invalidf("disks[%d].image_type=\"Unknown\": %s is a %s image, which vmm cannot read: it reads raw images only (qemu-img convert -O raw makes one)",
			i, d.Path, format)
	}
	return nil
}

// addVirtio opens the virtio backends named by the config (disks, nets,
// rng, vsock, virtio console, in that order), puts each behind its transport at its placement
// and registers its queue notifications with KVM. The tap names and MACs
// the nets ended up with are written back into m.cfg, so that vm.info
// lists them and a reboot reuses them. Backend errors are configuration
// errors. On error, what was opened is either closed here or left in
// m.virtio for close.
func (m *machine) addVirtio() error {
	if err := checkVirtio(&m.cfg, m.deps.transport); err != nil {
		return err
	}
	places, err := devicePlacements(&m.cfg)
	if err != nil {
		return err
	}
	devs, err := m.openVirtioBackends(places)
	if err != nil {
		return err
	}
	for i, dev := range devs {
		if err := m.placeVirtio(i, places[i], dev); err != nil {
			for _, d := range devs[i+1:] {
				_ = d.Close()
			}
			return fmt.Errorf("%s: %w", places[i], err)
		}
	}
	return nil
}

// openVirtioBackends opens every placed device's backend (the vsock's is
// its listening unix socket); on error it closes those it opened.
func (m *machine) openVirtioBackends(places []placement) (devs []virtio.Device, err error) {
	defer func() {
		if err != nil {
			for _, d := range devs {
				_ = d.Close()
			}
			devs = nil
		}
	}()
	// The config's slice may be shared with the caller's: write the tap
	// names and MACs into a copy, which the VMM takes back (bootLocked).
	m.cfg.Net = slices.Clone(m.cfg.Net)
	for _, p := range places {
		var dev virtio.Device
		var derr error
		switch p.kind {
		case kindDisk:
			d := m.cfg.Disks[p.index]
			dev, derr = virtio.OpenBlock(virtio.BlockConfig{Path: d.Path, Readonly: d.Readonly, NumQueues: p.numQueues, Direct: d.Direct})
		case kindNet:
			n := &m.cfg.Net[p.index]
			var nic *virtio.Net
			if nic, derr = virtio.NewNet(virtio.NetConfig{Tap: n.Tap, MAC: n.MAC, IP: n.IP, Mask: n.Mask, FDs: n.FDs}); derr == nil {
				n.Tap, n.MAC = nic.TapName(), nic.MAC().String()
				dev = nic
			}
		case kindRNG:
			dev, derr = virtio.NewRNG(m.cfg.RNG.Src)
		case kindVsock:
			dev, derr = virtio.NewVsock(virtio.VsockConfig{CID: uint64(m.cfg.Vsock.CID), Socket: m.cfg.Vsock.Socket})
		case kindConsole:
			out := m.deps.consoleOut
			if out == nil {
				out = io.Discard
			}
			m.vconsole = virtio.NewConsole(out)
			dev = m.vconsole
		case kindMem:
			dev, derr = m.newVirtioMem()
		case kindBalloon:
			dev, derr = m.newBalloon()
		}
		if derr != nil {
			return devs, invalid(derr)
		}
		devs = append(devs, dev)
	}
	return devs, nil
}

// placeVirtio puts device i (placed at p) behind the machine's transport.
// Once the transport exists it owns dev and is in m.virtio, for close;
// before that dev is closed here.
func (m *machine) placeVirtio(i int, p placement, dev virtio.Device) error {
	if m.deps.transport == TransportMMIO {
		return m.placeMMIO(i, p, dev)
	}
	t, err := virtio.NewPCI(dev, m.pciConfig(p))
	if err != nil {
		_ = dev.Close()
		return err
	}
	m.virtio = append(m.virtio, &virtioDevice{p: p, t: t, pci: t})
	return m.pci[p.segment].Add(p.device, t.Function())
}

// pciConfig is a virtio-pci transport's configuration for the device
// placed at p.
func (m *machine) pciConfig(p placement) virtio.PCIConfig {
	return virtio.PCIConfig{
		Memory: m.mem, MSI: m.newMSI, IOEvents: kvmIOEvents{m.vm}, QueueSize: p.queueSize,
		Log: m.log.With("id", p.id), WorkerSetup: m.virtioWorkerSetup,
	}
}

// virtioWorkerSetup runs on each virtio worker's own thread before it
// serves the guest: the virtio seccomp filter goes on.
func (m *machine) virtioWorkerSetup() error {
	return seccomp.InstallThread(seccomp.Virtio, m.deps.seccomp)
}

// newMSI allocates an MSI-X vector: a GSI of its own, routed by vm/irq.
func (m *machine) newMSI() (pci.MSIVector, error) {
	v, err := m.irq.NewMSI()
	if err != nil {
		return nil, err
	}
	return v, nil
}

// placeMMIO puts device i behind virtio-mmio: register block at
// layout.VirtioMMIOStart + i*layout.VirtioMMIOStride, GSI
// layout.VirtioIRQStart + i.
func (m *machine) placeMMIO(i int, p placement, dev virtio.Device) error {
	base := layout.VirtioMMIOStart + uint64(i)*layout.VirtioMMIOStride
	gsi := uint32(layout.VirtioIRQStart + i)
	line, err := m.irq.Line(gsi)
	if err != nil {
		_ = dev.Close()
		return err
	}
	t, err := virtio.NewMMIO(dev, virtio.MMIOConfig{
		Base: base, GSI: gsi, UID: i, Memory: m.mem, Interrupt: line, QueueSize: p.queueSize, Log: m.log.With("id", p.id),
		WorkerSetup: m.virtioWorkerSetup,
	})
	if err != nil {
		_ = dev.Close()
		return err
	}
	vd := &virtioDevice{p: p, t: t, mmio: t}
	m.virtio = append(m.virtio, vd)
	if err := m.mmBus.Insert(base, virtio.MMIOSize, fmt.Sprintf("virtio%d", i), t); err != nil {
		return err
	}
	for _, e := range t.IOEventFDs() {
		if err := (kvmIOEvents{m.vm}).AddIOEventFD(e); err != nil {
			return err
		}
		vd.ioeventfds = append(vd.ioeventfds, e)
	}
	return nil
}

// kvmIOEvents registers virtio queue notifications with KVM.
type kvmIOEvents struct{ vm *kvm.VM }

func (k kvmIOEvents) reg(e virtio.IOEventFD) kvm.IOEventFD {
	return kvm.IOEventFD{EventFD: e.EventFD, Addr: e.Addr, Len: e.Len, Datamatch: e.Datamatch}
}

// AddIOEventFD implements virtio.IOEventRegistry.
func (k kvmIOEvents) AddIOEventFD(e virtio.IOEventFD) error { return k.vm.AddIOEventFD(k.reg(e)) }

// RemoveIOEventFD implements virtio.IOEventRegistry.
func (k kvmIOEvents) RemoveIOEventFD(e virtio.IOEventFD) error { return k.vm.RemoveIOEventFD(k.reg(e)) }

// virtioDescribers are the virtio-mmio devices' DSDT entries, in device
// order; virtio-pci devices are found on the PCI bus instead.
func (m *machine) virtioDescribers() []acpi.Describer {
	var d []acpi.Describer
	for _, vd := range m.virtio {
		if vd.mmio != nil {
			d = append(d, vd.mmio)
		}
	}
	return d
}

// closeVirtio stops the virtio devices and closes their backends. It runs
// after the vCPUs stopped and before the VM and guest RAM go: the
// devices' workers write guest RAM until then.
func (m *machine) closeVirtio() {
	m.devMu.Lock()
	devs := m.virtio
	m.virtio = nil
	m.devMu.Unlock()
	for _, vd := range devs {
		for _, e := range vd.ioeventfds {
			if err := (kvmIOEvents{m.vm}).RemoveIOEventFD(e); err != nil {
				m.log.Warn("remove ioeventfd", "addr", fmt.Sprintf("%#x", e.Addr), "err", err)
			}
		}
		if err := vd.t.Close(); err != nil {
			m.log.Warn("close virtio device", "device", vd.t.Device().Kind(), "id", vd.p.id, "err", err)
		}
	}
}
