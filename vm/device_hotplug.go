package vm

import (
	"fmt"
	"slices"
	"time"

	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/hotplug"
	"github.com/vmmdev/vmm/vm/pci"
	"github.com/vmmdev/vmm/vm/virtio"
)

// The machine's side of device hot plug: a virtio-pci device added to or
// removed from a running guest through ACPI PCI hot plug (vm/hotplug's
// PCIHotplug). The VMM decides the device's id and address and keeps the
// configuration (device_api.go); the machine builds and frees the device.

// slotFree reports whether device number dev of segment seg holds no
// function: neither a device nor one whose removal the guest has not
// completed.
func (m *machine) slotFree(seg, dev int) bool {
	return seg >= 0 && seg < len(m.pci) && m.pci[seg].Function(dev) == nil
}

// findDevice returns the device with the given id, or nil. Called with
// devMu held.
func (m *machine) findDevice(id string) *virtioDevice {
	for _, vd := range m.virtio {
		if vd.p.id == id {
			return vd
		}
	}
	return nil
}

// hasDevice reports whether the machine has a device with the given id,
// and whether its removal is pending.
func (m *machine) hasDevice(id string) (found, removing bool) {
	m.devMu.Lock()
	defer m.devMu.Unlock()
	if vd := m.findDevice(id); vd != nil {
		return true, !vd.removeAsked.IsZero()
	}
	return false, false
}

// hotAdd opens the backend of the device cfg places at p, puts it behind
// virtio-pci at p's address and tells the guest. cfg's device lists
// (disks, nets, vsock), which hold the device, become the machine's on
// success (with the net's tap name and MAC filled in). On error nothing is
// left behind.
func (m *machine) hotAdd(cfg config.VM, p placement) (pci.BDF, error) {
	if m.pciHP == nil {
		return pci.BDF{}, invalidf("%s %s: hot plug needs the virtio-pci transport (vmm runs with --virtio-transport mmio)", p.kind, p.id)
	}
	if !m.slotFree(p.segment, p.device) {
		return pci.BDF{}, conflictf("%s %s: %s is taken", p.kind, p.id, p.bdf())
	}
	old := m.cfg
	m.cfg.Disks, m.cfg.Net, m.cfg.Vsock = cfg.Disks, cfg.Net, cfg.Vsock
	devs, err := m.openVirtioBackends([]placement{p})
	if err != nil {
		m.cfg = old
		return pci.BDF{}, fmt.Errorf("%s %s: %w", p.kind, p.id, err)
	}
	t, err := virtio.NewPCI(devs[0], m.pciConfig(p))
	if err != nil {
		_ = devs[0].Close()
		m.cfg = old
		return pci.BDF{}, fmt.Errorf("%s: %w", p, err)
	}
	if err := m.pci[p.segment].Add(p.device, t.Function()); err != nil {
		_ = t.Close()
		m.cfg = old
		return pci.BDF{}, fmt.Errorf("%s: %w", p, err)
	}
	m.devMu.Lock()
	m.virtio = append(m.virtio, &virtioDevice{p: p, t: t, pci: t})
	m.devMu.Unlock()
	if err := m.pciHP.SetInserting(p.segment, p.device); err != nil {
		return pci.BDF{}, err // cannot happen: the placement was checked
	}
	if err := m.ged.Trigger(hotplug.EventPCI); err != nil {
		// The device is in place; the guest finds it at its next scan.
		m.log.Warn("hot plug: could not signal the guest", "id", p.id, "err", err)
	}
	m.log.Info("device hot-added", "kind", p.kind, "id", p.id, "bdf", p.bdf().String())
	return p.bdf(), nil
}

// hotRemove asks the guest to release device id (an eject request on its
// slot). The device is freed when the guest ejects the slot (EjectPCI);
// until then it stays, marked as being removed. Asking again signals the
// guest again.
func (m *machine) hotRemove(id string) error {
	if m.pciHP == nil {
		return invalidf("device %s: hot plug needs the virtio-pci transport", id)
	}
	m.devMu.Lock()
	vd := m.findDevice(id)
	if vd != nil && vd.removeAsked.IsZero() {
		vd.removeAsked = time.Now()
	}
	m.devMu.Unlock()
	if vd == nil {
		return notFoundf("Failed to find device corresponding to the given identifier: %s", id)
	}
	if err := m.pciHP.SetRemoving(vd.p.segment, vd.p.device); err != nil {
		return err
	}
	if err := m.ged.Trigger(hotplug.EventPCI); err != nil {
		return fmt.Errorf("device %s: signal the guest: %w", id, err)
	}
	m.log.Info("device removal asked", "id", id, "bdf", vd.p.bdf().String())
	return nil
}

// EjectPCI frees the device at slot of segment after the guest ejected it
// (hotplug.PCIOwner): off the bus, its transport closed (workers stopped,
// ioeventfds and irqfds removed, MSI-X vectors given back, backend
// closed), and only then out of the machine's devices, so that vm.info
// lists a device until nothing of it is left open. It runs on the vCPU
// thread that wrote the eject register; it waits for nothing that vCPU
// holds. A device the guest ejected without being asked is remembered for
// the VMM to drop from the configuration.
func (m *machine) EjectPCI(segment, slot int) {
	m.devMu.Lock()
	i := slices.IndexFunc(m.virtio, func(vd *virtioDevice) bool {
		return vd.pci != nil && !vd.ejecting && vd.p.segment == segment && vd.p.device == slot
	})
	if i < 0 {
		m.devMu.Unlock()
		m.log.Debug("guest ejected an empty PCI slot", "segment", segment, "slot", slot)
		return
	}
	vd := m.virtio[i]
	vd.ejecting = true // a second eject of the slot finds nothing
	m.devMu.Unlock()
	m.pci[segment].Remove(slot)
	if err := vd.t.Close(); err != nil {
		m.log.Warn("close ejected device", "id", vd.p.id, "err", err)
	}
	m.devMu.Lock()
	m.virtio = slices.DeleteFunc(m.virtio, func(d *virtioDevice) bool { return d == vd })
	if vd.removeAsked.IsZero() {
		m.guestRemoved = append(m.guestRemoved, vd.p.id)
	}
	m.devMu.Unlock()
	asked := "by the guest"
	if !vd.removeAsked.IsZero() {
		asked = fmt.Sprintf("%d ms after the request", time.Since(vd.removeAsked).Milliseconds())
	}
	m.log.Info("device removed", "id", vd.p.id, "bdf", vd.p.bdf().String(), "ejected", asked)
}

// pendingRemovals lists the removals asked and not ejected yet, oldest
// first.
func (m *machine) pendingRemovals() []PendingRemoval {
	m.devMu.Lock()
	defer m.devMu.Unlock()
	var out []PendingRemoval
	for _, vd := range m.virtio {
		if vd.removeAsked.IsZero() {
			continue
		}
		notified := true
		if m.pciHP != nil {
			_, down := m.pciHP.Pending(vd.p.segment)
			notified = down&(1<<vd.p.device) == 0
		}
		out = append(out, PendingRemoval{
			ID: vd.p.id, BDF: vd.p.bdf().String(), Asked: vd.removeAsked.UTC().Truncate(time.Millisecond),
			WaitingMs: time.Since(vd.removeAsked).Milliseconds(), GuestNotified: notified,
		})
	}
	slices.SortFunc(out, func(a, b PendingRemoval) int { return a.Asked.Compare(b.Asked) })
	return out
}

// takeGuestRemoved returns, and forgets, the ids of the devices the guest
// ejected on its own.
func (m *machine) takeGuestRemoved() []string {
	m.devMu.Lock()
	defer m.devMu.Unlock()
	ids := m.guestRemoved
	m.guestRemoved = nil
	return ids
}
