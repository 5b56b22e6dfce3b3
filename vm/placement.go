package vm

import (
	"fmt"
	"strconv"

	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/layout"
	"github.com/vmmdev/vmm/vm/pci"
)

// deviceKind is a virtio device's type, as its configuration list names
// it.
type deviceKind string

// Virtio device kinds.
const (
	kindDisk deviceKind = "disk"
	kindNet  deviceKind = "net"
	kindRNG  deviceKind = "rng"
	// kindVsock is the virtio-vsock device (config.VM.Vsock).
	kindVsock deviceKind = "vsock"
)

// Device ids, as Cloud Hypervisor names the devices it was not given an id
// for (vmm/src/device_manager.rs): one counter for disks and nets, in the
// order they are built, and a fixed name for the one rng.
const (
	diskIDPrefix = "_disk"
	netIDPrefix  = "_net"
	rngID        = "__rng"
	// vsockIDPrefix continues the disks' and nets' counter, as Cloud
	// Hypervisor names its vsock device after them.
	vsockIDPrefix = "_vsock"
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
// of its own.
//
// TODO(config): config.VM.Platform.NumPCISegments (Cloud Hypervisor's
// platform.num_pci_segments, 1 to 16) is being added to the VmConfig;
// return it here, defaulting to 1, at merge time.
func pciSegmentCount(*config.VM) int { return 1 }

// devicePlacements lists the virtio devices cfg asks for, in the order
// they are built: disks, nets, the rng, the vsock (whose id and
// pci_segment the configuration may give). Each gets its id (Cloud
// Hypervisor's automatic one) and, on its segment, the next free device
// number from 1, in that order. It reads nothing but the configuration.
//
// TODO(config): the VmConfig rewrite adds, per device, Cloud Hypervisor's
// `id` and `pci_segment` (config.Disk.ID/PCISegment, config.Net.ID/
// PCISegment), and the disks' `num_queues` and `queue_size`: at merge
// time take them here (an explicit id replaces the automatic one and
// must be unique; pci_segment must be below pciSegmentCount), and pass
// the rng's too if it gets them.
func devicePlacements(cfg *config.VM) ([]placement, error) {
	var out []placement
	counter := 0
	auto := func(prefix string) string {
		id := prefix + strconv.Itoa(counter)
		counter++
		return id
	}
	for i := range cfg.Disks {
		out = append(out, placement{kind: kindDisk, index: i, id: auto(diskIDPrefix)})
	}
	for i := range cfg.Net {
		out = append(out, placement{kind: kindNet, index: i, id: auto(netIDPrefix)})
	}
	if cfg.RNG != nil {
		out = append(out, placement{kind: kindRNG, id: rngID})
	}
	if v := cfg.Vsock; v != nil {
		p := placement{kind: kindVsock, id: v.ID, segment: int(v.PCISegment)}
		if p.id == "" {
			p.id = auto(vsockIDPrefix)
		}
		out = append(out, p)
	}
	segments := pciSegmentCount(cfg)
	next := make([]int, segments)
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
		next[p.segment]++
		if next[p.segment] >= layout.PCIDevicesPerBus {
			return nil, invalidf("%s %s: PCI segment %d is full: at most %d devices fit", p.kind, p.id, p.segment, layout.PCIDevicesPerBus-1)
		}
		p.device = next[p.segment]
	}
	return out, nil
}

// String describes the placement for logs and errors.
func (p placement) String() string {
	return fmt.Sprintf("%s %s at %s", p.kind, p.id, p.bdf())
}
