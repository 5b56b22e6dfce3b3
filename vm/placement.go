package vm

import (
	"cmp"
	"fmt"
	"strconv"

	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/layout"
	"github.com/vmmdev/vmm/vm/pci"
	"github.com/vmmdev/vmm/vm/virtio"
)

// deviceKind is a virtio device's type, as its configuration list names
// it.
type deviceKind string

// Virtio device kinds.
const (
	kindDisk deviceKind = "disk"
	kindNet  deviceKind = "net"
	kindRNG  deviceKind = "rng"
	// kindConsole is the virtio console (hvc0).
	kindConsole deviceKind = "console"
	// kindVsock is the virtio-vsock device (config.VM.Vsock).
	kindVsock deviceKind = "vsock"
	// kindMem is the virtio-mem device of memory.hotplug_method
	// VirtioMem.
	kindMem deviceKind = "virtio-mem"
	// kindBalloon is the virtio-balloon (config.VM.Balloon).
	kindBalloon deviceKind = "balloon"
)

// Device ids, as Cloud Hypervisor names the devices it was not given an id
// for (vmm/src/device_manager.rs): one counter for disks and nets, in the
// order they are built, and a fixed name for the one rng.
const (
	diskIDPrefix = "_disk"
	netIDPrefix  = "_net"
	rngID        = "__rng"
	consoleID    = "__console"
	// vsockIDPrefix continues the disks' and nets' counter, as Cloud
	// Hypervisor names its vsock device after them.
	vsockIDPrefix = "_vsock"
	// memIDPrefix continues the same counter: Cloud Hypervisor names its
	// virtio-mem device "_mem" and the next number.
	memIDPrefix = "_mem"
	// virtioPCIIDPrefix names the PCI transport's node in vm.info's
	// device_tree: "_virtio-pci-_disk0".
	virtioPCIIDPrefix = "_virtio-pci-"
)

// placement is one virtio device of the configuration: what it is, its id
// and where it goes. devicePlacements computes them from the
// configuration alone, so that a device keeps its id and PCI address
// across reboots.
type placement struct {
	kind  deviceKind
	index int    // in its configuration list (cfg.Disks[index], ...)
	id    string // Cloud Hypervisor's device id
	// segment and device are its PCI address: segment, bus 0, device
	// number (1 to 31), function 0.
	segment int
	device  int
	// numQueues and queueSize are the disk's request queues and their
	// largest size; 0 means the defaults (1 queue, virtio.MaxQueueSize).
	numQueues int
	queueSize uint16
}

// bdf is the placement's PCI address.
func (p placement) bdf() pci.BDF {
	return pci.BDF{Segment: uint16(p.segment), Device: uint8(p.device)}
}

// pciSegmentCount is how many PCI segments the VM has, each a host bridge
// of its own: platform.num_pci_segments, 1 without a platform object.
func pciSegmentCount(cfg *config.VM) int {
	if cfg.Platform == nil || cfg.Platform.NumPCISegments == 0 {
		return 1
	}
	return int(cfg.Platform.NumPCISegments)
}

// devicePlacements lists the virtio devices cfg asks for, in the order
// they are built: disks, nets, the rng, the vsock, the virtio console, the
// virtio-mem device (memory.hotplug_method VirtioMem with a hot plug
// space) and the balloon; these two come after the others so that adding
// them moves none of them. Each gets its id (the one given,
// or Cloud Hypervisor's automatic one) and, on its pci_segment, the
// pci_device_id given or else the lowest free device number from 1. It
// reads nothing but the configuration, so a device keeps its id and
// address across reboots.
func devicePlacements(cfg *config.VM) ([]placement, error) {
	var out []placement
	counter := 0
	place := func(kind deviceKind, index int, prefix string, common config.PCIDevice) placement {
		p := placement{kind: kind, index: index, id: common.ID, segment: int(common.PCISegment), device: -1}
		if p.id == "" {
			p.id = prefix + strconv.Itoa(counter)
			counter++
		}
		if common.PCIDeviceID != nil {
			p.device = int(*common.PCIDeviceID)
		}
		return p
	}
	for i, d := range cfg.Disks {
		p := place(kindDisk, i, diskIDPrefix, d.PCIDevice)
		p.numQueues, p.queueSize = d.NumQueues, d.QueueSize
		if p.numQueues < 0 || p.numQueues > virtio.MaxBlockQueues {
			return nil, invalidf("disk %s: num_queues=%d: want 1 to %d", p.id, p.numQueues, virtio.MaxBlockQueues)
		}
		if q := p.queueSize; q != 0 && (q > virtio.MaxQueueSizeLimit || q&(q-1) != 0) {
			return nil, invalidf("disk %s: queue_size=%d: want a power of two up to %d", p.id, q, virtio.MaxQueueSizeLimit)
		}
		out = append(out, p)
	}
	for i, n := range cfg.Net {
		out = append(out, place(kindNet, i, netIDPrefix, n.PCIDevice))
	}
	if cfg.RNG != nil {
		out = append(out, placement{kind: kindRNG, id: rngID, device: -1})
	}
	if v := cfg.Vsock; v != nil {
		out = append(out, place(kindVsock, 0, vsockIDPrefix, v.PCIDevice))
	}
	if m := cfg.Console.Mode; m != "" && m != config.ModeOff {
		out = append(out, placement{kind: kindConsole, id: consoleID, device: -1})
	}
	if hasVirtioMem(cfg.Memory) {
		out = append(out, place(kindMem, 0, memIDPrefix, config.PCIDevice{}))
	}
	if b := cfg.Balloon; b != nil {
		common := b.PCIDevice
		common.ID = cmp.Or(common.ID, balloonID)
		out = append(out, place(kindBalloon, 0, "", common))
	}
	segments := pciSegmentCount(cfg)
	used := make([][layout.PCIDevicesPerBus]bool, segments)
	ids := map[string]bool{}
	for i := range out {
		p := &out[i]
		if ids[p.id] {
			return nil, invalidf("%s %d: id %q is used by another device", p.kind, p.index, p.id)
		}
		ids[p.id] = true
		if p.segment < 0 || p.segment >= segments {
			return nil, invalidf("%s %s: pci_segment=%d: the VM has %d PCI segments", p.kind, p.id, p.segment, segments)
		}
		if p.device == -1 {
			continue
		}
		if p.device < 1 || p.device >= layout.PCIDevicesPerBus {
			return nil, invalidf("%s %s: pci_device_id=%d: want 1 to %d (0 is the host bridge)", p.kind, p.id, p.device, layout.PCIDevicesPerBus-1)
		}
		if used[p.segment][p.device] {
			return nil, invalidf("%s %s: pci_device_id=%d is taken on segment %d", p.kind, p.id, p.device, p.segment)
		}
		used[p.segment][p.device] = true
	}
	for i := range out {
		p := &out[i]
		if p.device != -1 {
			continue
		}
		for d := 1; d < layout.PCIDevicesPerBus; d++ {
			if !used[p.segment][d] {
				p.device = d
				used[p.segment][d] = true
				break
			}
		}
		if p.device == -1 {
			return nil, invalidf("%s %s: PCI segment %d is full: at most %d devices fit", p.kind, p.id, p.segment, layout.PCIDevicesPerBus-1)
		}
	}
	return out, nil
}

// String describes the placement for logs and errors.
func (p placement) String() string {
	return fmt.Sprintf("%s %s at %s", p.kind, p.id, p.bdf())
}
