package config

// Memory is Cloud Hypervisor's MemoryConfig: the boot RAM, the space RAM
// may be hot-added into, and how guest RAM is backed on the host. Sizes are
// bytes.
type Memory struct {
	// Size is the guest's RAM. vm.resize sets it to the size asked for at
	// once, as Cloud Hypervisor does: the next boot's RAM.
	Size uint64 `json:"size"`
	// Mergeable lets KSM merge identical guest pages.
	Mergeable bool `json:"mergeable"`
	// HotplugMethod is how RAM is hot-added: ACPI memory devices or
	// virtio-mem.
	HotplugMethod HotplugMethod `json:"hotplug_method,omitempty" default:"Acpi"`
	// HotplugSize is the guest-physical space reserved for RAM hot plug;
	// only whole 128 MiB blocks of it are usable. 0: no RAM hot plug.
	HotplugSize uint64 `json:"hotplug_size,omitempty"`
	// HotpluggedSize is the RAM plugged through virtio-mem at boot.
	HotpluggedSize uint64 `json:"hotplugged_size,omitempty"`
	// Shared maps guest RAM MAP_SHARED (vhost-user backends need it).
	Shared bool `json:"shared"`
	// Hugepages backs guest RAM with hugetlbfs pages of HugepageSize.
	Hugepages    bool   `json:"hugepages"`
	HugepageSize uint64 `json:"hugepage_size,omitempty"`
	// Prefault populates guest RAM before the guest runs.
	Prefault bool `json:"prefault"`
	// Reserve reserves swap space for guest RAM (no MAP_NORESERVE).
	Reserve bool `json:"reserve"`
	// Zones are user-defined memory regions, with Size 0.
	Zones []MemoryZone `json:"zones,omitempty"`
	// THP backs guest RAM with transparent huge pages where the host can;
	// nil is true. THPEnabled reads it.
	THP *bool `json:"thp,omitempty" default:"true"`
}

// THPEnabled reports whether guest RAM asks for transparent huge pages:
// memory.thp, true unless set to false.
func (m Memory) THPEnabled() bool { return m.THP == nil || *m.THP }

// HotplugMethod is Cloud Hypervisor's memory hot plug method.
type HotplugMethod string

// Memory hot plug methods.
const (
	// HotplugACPI adds RAM as ACPI memory devices (DIMMs).
	HotplugACPI HotplugMethod = "Acpi"
	// HotplugVirtioMem adds RAM through a virtio-mem device.
	HotplugVirtioMem HotplugMethod = "VirtioMem"
)

// Values lists the methods Cloud Hypervisor knows.
func (HotplugMethod) Values() []string { return []string{"Acpi", "VirtioMem"} }

// MemoryZone is Cloud Hypervisor's MemoryZoneConfig: one user-defined
// region of guest RAM.
type MemoryZone struct {
	ID             string  `json:"id"`
	Size           uint64  `json:"size"`
	File           string  `json:"file,omitempty"`
	Shared         bool    `json:"shared"`
	Hugepages      bool    `json:"hugepages"`
	HugepageSize   uint64  `json:"hugepage_size,omitempty"`
	HostNUMANode   *uint32 `json:"host_numa_node,omitempty"`
	HotplugSize    uint64  `json:"hotplug_size,omitempty"`
	HotpluggedSize uint64  `json:"hotplugged_size,omitempty"`
	Prefault       bool    `json:"prefault"`
	Reserve        bool    `json:"reserve"`
	Mergeable      bool    `json:"mergeable"`
}
