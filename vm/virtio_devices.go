package vm

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/vmmdev/vmm/acpi"
	"github.com/vmmdev/vmm/kvm"
	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/layout"
	"github.com/vmmdev/vmm/vm/virtio"
)

// maxVirtioDevices is how many virtio-mmio devices a VM may have: each has
// its own GSI, from layout.VirtioIRQStart to the last IOAPIC pin.
const maxVirtioDevices = layout.IOAPICPins - layout.VirtioIRQStart

// virtioDevice is one virtio-mmio device of a machine: its transport, which
// owns the device and its backend, and the ioeventfds registered with KVM
// for its queue notifications.
type virtioDevice struct {
	t          *virtio.MMIO
	ioeventfds []kvm.IOEventFD
}

// virtioCount is how many virtio devices cfg asks for.
func virtioCount(cfg *config.VM) int {
	n := len(cfg.Disks) + len(cfg.Net)
	if cfg.RNG != nil {
		n++
	}
	return n
}

// checkVirtio checks the virtio part of cfg before anything is opened: the
// device count and that the disk images exist. The backends themselves are
// opened, and checked in full, when the machine is built.
func checkVirtio(cfg *config.VM) error {
	if n := virtioCount(cfg); n > maxVirtioDevices {
		return invalidf("%d virtio devices (disks, nets and rng): at most %d fit", n, maxVirtioDevices)
	}
	for _, d := range cfg.Disks {
		if _, err := os.Stat(d.Path); err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return invalidf("disk %s: %w", d.Path, err)
		}
	}
	return nil
}

// addVirtio opens the virtio backends named by the config (disks, nets,
// rng, in that order, which numbers the devices), puts each behind a
// virtio-mmio transport on the MMIO bus with its own GSI, and registers its
// queue notifications with KVM. The tap names and MACs the nets ended up
// with are written back into m.cfg, so that vm.info lists them and a reboot
// reuses them. Backend errors are configuration errors. On error, what was
// opened is either closed here or left in m.virtio for close.
func (m *machine) addVirtio() error {
	devs, err := m.openVirtioBackends()
	if err != nil {
		return err
	}
	for i, dev := range devs {
		if err := m.placeVirtio(i, dev); err != nil {
			for _, d := range devs[i+1:] {
				_ = d.Close()
			}
			return fmt.Errorf("%s %d: %w", dev.Kind(), i, err)
		}
	}
	return nil
}

// openVirtioBackends opens every virtio device's backend; on error it closes
// those it opened.
func (m *machine) openVirtioBackends() (devs []virtio.Device, err error) {
	if n := virtioCount(&m.cfg); n > maxVirtioDevices {
		return nil, invalidf("%d virtio devices (disks, nets and rng): at most %d fit", n, maxVirtioDevices)
	}
	defer func() {
		if err != nil {
			for _, d := range devs {
				_ = d.Close()
			}
			devs = nil
		}
	}()
	for _, d := range m.cfg.Disks {
		b, berr := virtio.NewBlock(d.Path, d.Readonly)
		if berr != nil {
			return devs, invalid(berr)
		}
		devs = append(devs, b)
	}
	// The config's slice may be shared with the caller's: write the tap
	// names and MACs into a copy, which the VMM takes back (bootLocked).
	m.cfg.Net = slices.Clone(m.cfg.Net)
	for i, n := range m.cfg.Net {
		nic, nerr := virtio.NewNet(virtio.NetConfig{Tap: n.Tap, MAC: n.MAC, IP: n.IP, Mask: n.Mask})
		if nerr != nil {
			return devs, invalid(nerr)
		}
		m.cfg.Net[i].Tap, m.cfg.Net[i].MAC = nic.TapName(), nic.MAC().String()
		devs = append(devs, nic)
	}
	if m.cfg.RNG != nil {
		r, rerr := virtio.NewRNG(m.cfg.RNG.Src)
		if rerr != nil {
			return devs, invalid(rerr)
		}
		devs = append(devs, r)
	}
	return devs, nil
}

// placeVirtio puts device i behind its transport: register block at
// layout.VirtioMMIOStart + i*layout.VirtioMMIOStride, GSI
// layout.VirtioIRQStart + i. Once NewMMIO succeeded the transport owns dev
// and is in m.virtio, for close; before that dev is closed here.
func (m *machine) placeVirtio(i int, dev virtio.Device) error {
	base := layout.VirtioMMIOStart + uint64(i)*layout.VirtioMMIOStride
	gsi := uint32(layout.VirtioIRQStart + i)
	line, err := m.irq.Line(gsi)
	if err != nil {
		_ = dev.Close()
		return err
	}
	t, err := virtio.NewMMIO(dev, virtio.MMIOConfig{
		Base: base, GSI: gsi, UID: i, Memory: m.mem, Interrupt: line, Log: m.log,
	})
	if err != nil {
		_ = dev.Close()
		return err
	}
	vd := &virtioDevice{t: t}
	m.virtio = append(m.virtio, vd)
	if err := m.mmBus.Insert(base, virtio.MMIOSize, fmt.Sprintf("virtio%d", i), t); err != nil {
		return err
	}
	for _, e := range t.IOEventFDs() {
		reg := kvm.IOEventFD{EventFD: e.EventFD, Addr: e.Addr, Len: e.Len, Datamatch: e.Datamatch}
		if err := m.vm.AddIOEventFD(reg); err != nil {
			return err
		}
		vd.ioeventfds = append(vd.ioeventfds, reg)
	}
	return nil
}

// virtioDescribers are the virtio devices' DSDT entries, in device order.
func (m *machine) virtioDescribers() []acpi.Describer {
	d := make([]acpi.Describer, 0, len(m.virtio))
	for _, vd := range m.virtio {
		d = append(d, vd.t)
	}
	return d
}

// closeVirtio stops the virtio devices and closes their backends. It runs
// after the vCPUs stopped and before the irqfds, the VM and guest RAM go:
// the devices' workers write guest RAM and raise interrupts until then.
func (m *machine) closeVirtio() {
	for _, vd := range m.virtio {
		for _, e := range vd.ioeventfds {
			if err := m.vm.RemoveIOEventFD(e); err != nil {
				m.log.Warn("remove ioeventfd", "addr", fmt.Sprintf("%#x", e.Addr), "err", err)
			}
		}
		if err := vd.t.Close(); err != nil {
			m.log.Warn("close virtio device", "device", vd.t.Device().Kind(), "err", err)
		}
	}
	m.virtio = nil
}
