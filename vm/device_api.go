package vm

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/layout"
)

// PCIDeviceInfo is Cloud Hypervisor's reply to a device added to a running
// VM: the device's id and PCI address (0000:00:05.0).
type PCIDeviceInfo struct {
	ID  string `json:"id"`
	BDF string `json:"bdf"`
}

// AddDisk adds a disk, as Cloud Hypervisor's vm.add-disk: to a running VM
// through ACPI PCI hot plug, answering the device's id and address; to a
// VM not booted yet (or shut down) it only adds it to the configuration
// and answers nil. The disk's id and slot are its own when given, else the
// next automatic id (_diskN) and the lowest free device number of its
// segment. A refused request changes nothing: ErrConflict for an id in
// use (or still held by a device the guest has not released), ErrInvalid
// for a bad configuration, an image that cannot be opened or a full
// segment.
func (v *VMM) AddDisk(d config.Disk) (*PCIDeviceInfo, error) {
	return v.addDevice(kindDisk, diskIDPrefix, func(c *config.VM) (*config.PCIDevice, error) {
		c.Disks = append(c.Disks, d)
		return &c.Disks[len(c.Disks)-1].PCIDevice, nil
	})
}

// AddNet adds a virtio-net device on a tap, as AddDisk adds a disk (ids
// _netN). An empty tap name lets the kernel name the tap, an empty MAC
// gets a generated one; vm.info shows both. A tap descriptor in n.FDs (one
// at most) is used instead of opening a tap: the VMM keeps a duplicate of
// it while the net is in the configuration (a reboot opens the device on
// it again) and closes it when the net is removed or the VM deleted; the
// caller's descriptor stays the caller's.
func (v *VMM) AddNet(n config.Net) (*PCIDeviceInfo, error) {
	fds, err := dupFDs(n.FDs)
	if err != nil {
		return nil, invalid(err)
	}
	n.FDs = fds
	info, err := v.addDevice(kindNet, netIDPrefix, func(c *config.VM) (*config.PCIDevice, error) {
		c.Net = append(c.Net, n)
		return &c.Net[len(c.Net)-1].PCIDevice, nil
	})
	if err != nil {
		closeFDs(fds)
	}
	return info, err
}

// AddVsock adds the virtio-vsock device, as AddDisk adds a disk (id
// _vsockN). A VM has at most one.
func (v *VMM) AddVsock(s config.Vsock) (*PCIDeviceInfo, error) {
	return v.addDevice(kindVsock, vsockIDPrefix, func(c *config.VM) (*config.PCIDevice, error) {
		if c.Vsock != nil {
			return nil, invalidf("the VM has a vsock device already (%s): it may have one", c.Vsock.Socket)
		}
		c.Vsock = &s
		return &c.Vsock.PCIDevice, nil
	})
}

// addDevice adds the device insert appends to a copy of the configuration
// (returning its PCI fields); see AddDisk.
func (v *VMM) addDevice(kind deviceKind, prefix string, insert func(c *config.VM) (*config.PCIDevice, error)) (*PCIDeviceInfo, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.checkDeviceOpLocked(); err != nil {
		return nil, err
	}
	m := v.m
	c := v.cfg.Clone()
	if m != nil {
		v.syncDevicesLocked()
		c = v.cfg.Clone()
		if err := pinDevices(&c); err != nil {
			return nil, err
		}
	}
	common, err := insert(&c)
	if err != nil {
		return nil, err
	}
	if m != nil {
		if err := v.placeNewDevice(&c, common, prefix); err != nil {
			return nil, err
		}
	}
	if err := v.checkDevices(&c); err != nil {
		return nil, err
	}
	if m == nil {
		v.cfg = &c
		return nil, nil
	}
	places, err := devicePlacements(&c)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(places, func(p placement) bool { return p.id == common.ID })
	if i < 0 || places[i].kind != kind {
		return nil, errors.New("the added device has no placement") // cannot happen
	}
	bdf, err := m.hotAdd(c, places[i])
	if err != nil {
		return nil, err
	}
	c.Net = m.cfg.Net // the tap name and MAC the net got
	v.cfg = &c
	return &PCIDeviceInfo{ID: common.ID, BDF: bdf.String()}, nil
}

// checkDeviceOpLocked allows a device operation on a VM that exists and is
// not paused.
func (v *VMM) checkDeviceOpLocked() error {
	switch {
	case v.cfg == nil:
		return ErrNoVM
	case v.state == StatePaused:
		return stateError("the VM is paused: resume it to add or remove devices")
	}
	return nil
}

// placeNewDevice gives the device being hot-added (common, in c) its id
// and device number when the request has none: the next automatic id
// (prefix and a number no device, in c or still in the guest, has) and
// the lowest device number of its segment that neither c nor the running
// machine uses. It refuses an id or address the machine still holds.
func (v *VMM) placeNewDevice(c *config.VM, common *config.PCIDevice, prefix string) error {
	m := v.m
	if common.ID != "" {
		if found, _ := m.hasDevice(common.ID); found {
			return ofKind(&config.NotUniqueError{ID: common.ID}, ErrConflict)
		}
	}
	seg := int(common.PCISegment)
	if seg >= len(m.pci) {
		return invalidf("pci_segment=%d: the VM has %d PCI segments", seg, len(m.pci))
	}
	if common.ID == "" {
		// Every other disk, net and vsock has its id written in c
		// (pinDevices), and the rng and console have fixed ones.
		ids := map[string]bool{rngID: true, consoleID: true}
		for _, d := range c.Disks {
			ids[d.ID] = true
		}
		for _, n := range c.Net {
			ids[n.ID] = true
		}
		if c.Vsock != nil {
			ids[c.Vsock.ID] = true
		}
		for n := len(c.Disks) + len(c.Net) - 1; common.ID == ""; n++ {
			id := prefix + strconv.Itoa(n)
			if found, _ := m.hasDevice(id); !ids[id] && !found {
				common.ID = id
			}
		}
	}
	// The other devices' numbers: those written in c, and those of the
	// running machine (the rng and console sit where they were placed).
	used := map[int]bool{}
	pin := func(d config.PCIDevice) {
		if d.ID != common.ID && d.PCIDeviceID != nil && int(d.PCISegment) == seg {
			used[int(*d.PCIDeviceID)] = true
		}
	}
	for _, d := range c.Disks {
		pin(d.PCIDevice)
	}
	for _, n := range c.Net {
		pin(n.PCIDevice)
	}
	if c.Vsock != nil {
		pin(c.Vsock.PCIDevice)
	}
	if d := common.PCIDeviceID; d != nil {
		if !m.slotFree(seg, int(*d)) {
			return conflictf("pci_device_id=%d: device %d of segment %d is taken (or its removal is pending in the guest)", *d, *d, seg)
		}
		return nil
	}
	for d := 1; d < layout.PCIDevicesPerBus; d++ {
		if !used[d] && m.slotFree(seg, d) {
			dev := uint8(d)
			common.PCIDeviceID = &dev
			return nil
		}
	}
	return invalidf("PCI segment %d has no free slot: all %d device numbers are taken", seg, layout.PCIDevicesPerBus-1)
}

// checkDevices fills in c's defaults and checks it as Create does, less
// the payload and consoles, which a device change leaves alone.
func (v *VMM) checkDevices(c *config.VM) error {
	c.SetDefaults()
	if err := v.validate(c); err != nil {
		return err
	}
	return checkVirtio(c, v.opts.VirtioTransport)
}

// RemoveDevice removes device id (a disk, net or the vsock), as Cloud
// Hypervisor's vm.remove-device: from the configuration at once (a reboot
// does not bring it back) and, on a running VM, from the guest through an
// ACPI eject request. The host frees the device when the guest has
// released it; until then vm.info's device_tree lists it, its id and slot
// stay taken, and asking again signals the guest again. An unknown id is
// ErrNotFound.
func (v *VMM) RemoveDevice(id string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.checkDeviceOpLocked(); err != nil {
		return err
	}
	m := v.m
	c := v.cfg.Clone()
	if m != nil {
		v.syncDevicesLocked()
		if found, removing := m.hasDevice(id); found && removing {
			return m.hotRemove(id)
		}
		c = v.cfg.Clone()
		if err := pinDevices(&c); err != nil {
			return err
		}
	}
	fds, err := removeFromConfig(&c, id)
	if err != nil {
		return err
	}
	if m != nil {
		if err := m.hotRemove(id); err != nil {
			return err
		}
	}
	v.cfg = &c
	closeFDs(fds) // a running device works on its own duplicate
	return nil
}

// removeFromConfig deletes device id from c: ErrNotFound when c has no
// such device, ErrInvalid for one that cannot be removed. It returns the
// tap descriptors the VMM held for a net, for the caller to close once c
// is the configuration.
func removeFromConfig(c *config.VM, id string) ([]int, error) {
	places, err := devicePlacements(c)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(places, func(p placement) bool { return p.id == id })
	if i < 0 {
		return nil, notFoundf("No device with id %q to remove", id)
	}
	p := places[i]
	var fds []int
	switch p.kind {
	case kindDisk:
		c.Disks = slices.Delete(c.Disks, p.index, p.index+1)
	case kindNet:
		fds = c.Net[p.index].FDs
		c.Net = slices.Delete(c.Net, p.index, p.index+1)
	case kindVsock:
		c.Vsock = nil
	default:
		return nil, invalidf("device %s (the %s) cannot be removed: vmm hot plugs disks, nets and the vsock", id, p.kind)
	}
	return fds, nil
}

// dupFDs duplicates descriptors (close-on-exec) for the VMM to keep; on
// error none is left open.
func dupFDs(fds []int) ([]int, error) {
	if len(fds) == 0 {
		return nil, nil
	}
	out := make([]int, 0, len(fds))
	for _, fd := range fds {
		d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			closeFDs(out)
			return nil, fmt.Errorf("net: fds: descriptor %d: %w", fd, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// closeFDs closes descriptors the VMM held.
func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// pinDevices writes each disk's, net's and the vsock's id and device
// number into c, as devicePlacements gives them: once a running VM's
// devices change, the others keep their ids and addresses whatever is
// added or removed, across reboots too.
func pinDevices(c *config.VM) error {
	places, err := devicePlacements(c)
	if err != nil {
		return err
	}
	for _, p := range places {
		var common *config.PCIDevice
		switch p.kind {
		case kindDisk:
			common = &c.Disks[p.index].PCIDevice
		case kindNet:
			common = &c.Net[p.index].PCIDevice
		case kindVsock:
			common = &c.Vsock.PCIDevice
		default:
			continue
		}
		dev := uint8(p.device)
		common.ID, common.PCIDeviceID = p.id, &dev
	}
	return nil
}

// syncDevicesLocked drops from the configuration the devices the guest
// ejected on its own (echo 0 > /sys/bus/pci/slots/N/power). Called with
// v.mu held.
func (v *VMM) syncDevicesLocked() {
	if v.m == nil {
		return
	}
	ids := v.m.takeGuestRemoved()
	if len(ids) == 0 {
		return
	}
	c := v.cfg.Clone()
	if err := pinDevices(&c); err != nil {
		v.log.Warn("devices the guest ejected stay in the configuration", "ids", ids, "err", err)
		return
	}
	var fds []int
	for _, id := range ids {
		f, err := removeFromConfig(&c, id)
		if err != nil {
			v.log.Warn("device the guest ejected", "id", id, "err", err)
		}
		fds = append(fds, f...)
	}
	v.cfg = &c
	closeFDs(fds)
}
