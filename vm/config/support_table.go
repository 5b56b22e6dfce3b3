package config

import (
	"reflect"
	"strconv"
)

// The support table: for every object of Cloud Hypervisor's VmConfig, what
// vmm does with each field. CheckSupported refuses from it,
// SupportMarkdown documents it (docs/compatibility.md), the OpenAPI document
// marks it, and TestSupportTableCoversTheSchema fails when a field of a Go
// type has no row.

// honoured, notYet and defaultOnly are rows of that support.
func honoured(name, note string) Field    { return Field{Name: name, Support: Honoured, Note: note} }
func notYet(name, note string) Field      { return Field{Name: name, Support: NotYet, Note: note} }
func defaultOnly(name, note string) Field { return Field{Name: name, Support: DefaultOnly, Note: note} }

// partly is a field vmm honours at the given string values only.
func partly(name, note string, values ...string) Field {
	f := Field{Name: name, Support: Partly, Note: note}
	for _, v := range values {
		f.Values = append(f.Values, strconv.Quote(v))
	}
	return f
}

// all gives each name the same support and note.
func all(s Support, note string, names ...string) []Field {
	out := make([]Field, len(names))
	for i, n := range names {
		out[i] = Field{Name: n, Support: s, Note: note}
	}
	return out
}

// object is a table entry for T.
func object[T any](name string, fields ...[]Field) Object {
	o := Object{Name: name, Type: reflect.TypeFor[T]()}
	for _, f := range fields {
		o.Fields = append(o.Fields, f...)
	}
	return o
}

// row makes a list of single rows.
func row(f ...Field) []Field { return f }

const (
	noteDevice   = "vmm has no such device"
	noteSMBIOS   = "vmm writes no SMBIOS tables"
	noteVhost    = "vmm has no vhost-user backends"
	noteQueues   = "vmm's net has one queue pair of 256 descriptors"
	noteTopology = "see cpus.topology"
)

// supportTable is the table: VmConfig first, then the objects in it, each
// near the object holding it. Objects returns it.
var supportTable = []Object{
	object[VM]("VmConfig",
		row(honoured("cpus", ""), honoured("memory", ""), honoured("payload", "")),
		all(NotYet, "", "rate_limit_groups"),
		row(honoured("disks", "virtio-blk over virtio-pci (virtio-mmio with --virtio-transport mmio)"), honoured("net", "virtio-net over virtio-pci (or virtio-mmio), on a tap"),
			honoured("rng", "virtio-rng; absent: no rng device (Cloud Hypervisor always has one)")),
		row(honoured("balloon", "virtio-balloon; vm.resize's desired_balloon"), defaultOnly("generic_vhost_user", noteVhost), notYet("fs", ""), notYet("pmem", "")),
		row(honoured("serial", "the COM1 UART (ttyS0)"), honoured("console", "the virtio console (hvc0)"),
			honoured("debug_console", "port 0xe9")),
		all(DefaultOnly, "vmm passes no host devices through", "devices", "user_devices", "vdpa"),
		row(honoured("vsock", "virtio-vsock with hybrid vsock (docs/vsock.md)"), defaultOnly("pvmemcontrol", noteDevice), notYet("pvpanic", ""),
			defaultOnly("iommu", "vmm has no virtual IOMMU"),
			notYet("numa", ""), notYet("watchdog", ""), defaultOnly("rtc", noteDevice),
			defaultOnly("gdb", "vmm has no gdb stub"), notYet("pci_segments", ""),
			honoured("platform", ""), defaultOnly("tpm", noteDevice),
			honoured("landlock_enable", "the whole process, from vm.create on (docs/security.md)"),
			honoured("landlock_rules", "paths added to the disks, payload and sockets the VM has: hot-added disks go here"),
			defaultOnly("ivshmem", noteDevice)),
	),
	object[Payload]("PayloadConfig",
		row(honoured("firmware", "a PVH ELF firmware"), honoured("kernel", "a bzImage or an ELF vmlinux with a PVH entry"),
			honoured("cmdline", ""), honoured("initramfs", "")),
		all(DefaultOnly, "confidential guests are not supported", "igvm", "host_data"),
		row(defaultOnly("fw_cfg_config", "vmm has no fw_cfg device")),
	),
	object[FwCfg]("FwCfgConfig", all(DefaultOnly, "vmm has no fw_cfg device", "e820", "kernel", "cmdline", "initramfs", "acpi_tables", "items")),
	object[FwCfgItems]("FwCfgItemList", all(DefaultOnly, "vmm has no fw_cfg device", "item_list")),
	object[FwCfgItem]("FwCfgItem", all(DefaultOnly, "vmm has no fw_cfg device", "name", "file", "string")),
	object[CPUs]("CpusConfig",
		row(honoured("boot_vcpus", "vCPUs at boot; vm.resize sets it"), honoured("max_vcpus", "at most 255 and the host's limit"),
			honoured("topology", "CPUID leaves 1, 4, 0xB, 0x1F, AMD's 0x80000008, 0x8000001D and 0x8000001E, the MADT and the hot plug _MAT agree on each vCPU's APIC id"),
			defaultOnly("kvm_hyperv", "vmm offers no Hyper-V enlightenments"),
			notYet("max_phys_bits", "vmm passes the host's address width"),
			notYet("affinity", ""), honoured("features", ""),
			honoured("nested", "false hides VMX and SVM from the guest's CPUID"),
			notYet("core_scheduling", "vmm sets no core scheduling cookie"),
			honoured("profile", "Host, the only profile: the guest sees the host's CPU as KVM offers it")),
	),
	object[CPUTopology]("CpuTopology", all(Honoured, noteTopology, "threads_per_core", "cores_per_die", "dies_per_package", "packages")),
	object[CPUAffinity]("CpuAffinity", all(NotYet, "", "vcpu", "host_cpus")),
	object[CPUFeatures]("CpuFeatures", row(defaultOnly("amx", ""))),
	object[Memory]("MemoryConfig",
		row(honoured("size", "boot RAM; vm.resize sets it at once (applied at the next boot when lower)"),
			honoured("mergeable", "MADV_MERGEABLE, boot and hot-added RAM")),
		row(honoured("hotplug_method", "Acpi: ACPI memory devices, RAM added live and lowered at the next boot; VirtioMem: a virtio-mem device, RAM added and taken back live"),
			honoured("hotplug_size", "only whole 128 MiB blocks of it are usable"),
			honoured("hotplugged_size", "VirtioMem only: plugged at boot, in 2 MiB blocks; vm.resize keeps it")),
		row(honoured("shared", "a memfd mapped MAP_SHARED, boot and hot-added RAM"),
			honoured("hugepages", "a memfd with MFD_HUGETLB; the host must have the pages free (/sys/kernel/mm/hugepages)"),
			honoured("hugepage_size", "MFD_HUGETLB's size flag; default: the host's default huge page"),
			honoured("prefault", "MADV_POPULATE_WRITE when each region is mapped, boot and hot-added RAM")),
		all(NotYet, "", "reserve", "zones"),
		row(honoured("thp", "true: MADV_HUGEPAGE; false: MADV_NOHUGEPAGE")),
	),
	object[MemoryZone]("MemoryZoneConfig", all(NotYet, "", "id", "size", "file", "shared", "hugepages", "hugepage_size",
		"host_numa_node", "hotplug_size", "hotplugged_size", "prefault", "reserve", "mergeable")),
	object[RateLimitGroup]("RateLimitGroupConfig", all(NotYet, "", "id", "rate_limiter_config")),
	object[RateLimiter]("RateLimiterConfig", all(NotYet, "", "bandwidth", "ops")),
	object[TokenBucket]("TokenBucket", all(NotYet, "", "size", "one_time_burst", "refill_time")),
	object[Disk]("DiskConfig",
		row(honoured("path", "a raw image"), honoured("readonly", ""),
			honoured("direct", "O_DIRECT, through an aligned buffer per queue"),
			honoured("num_queues", "1 to 64 request queues, each with its MSI-X vector on PCI"), honoured("queue_size", "a power of two up to 32768")),
		all(DefaultOnly, noteVhost, "vhost_user", "vhost_socket"),
		all(NotYet, "", "rate_limit_group", "rate_limiter_config"),
		all(Honoured, "vmm uses neither io_uring nor AIO", "disable_io_uring", "disable_aio"),
		all(NotYet, "", "serial", "queue_affinity"),
		row(defaultOnly("backing_files", "vmm reads raw images only"), notYet("sparse", "vmm passes no discards"),
			partly("image_type", "Raw: read as raw; Unknown: the format is detected from the image's bytes and anything but raw refused", "Unknown", "Raw"),
			notYet("lock_granularity", "vmm does not lock images")),
	),
	object[VirtQueueAffinity]("VirtQueueAffinity", all(NotYet, "", "queue_index", "host_cpus")),
	object[PCIDevice]("PciDeviceCommonConfig (in every device)",
		row(honoured("id", "names the device in vm.info's device_tree; unique, not starting with __; empty: _disk0, _net1, ... as Cloud Hypervisor"),
			defaultOnly("iommu", "vmm has no virtual IOMMU"),
			honoured("pci_segment", "below platform.num_pci_segments"),
			honoured("pci_device_id", "1 to 31 on its segment; absent: the lowest free")),
	),
	object[Net]("NetConfig",
		row(honoured("tap", "created if missing; empty: the kernel names it"), honoured("ip", "given to the tap"),
			honoured("mask", "given to the tap"), honoured("mac", "empty: generated")),
		all(NotYet, "", "host_mac", "mtu"),
		all(NotYet, noteQueues, "num_queues", "queue_size"),
		all(DefaultOnly, noteVhost, "vhost_user", "vhost_socket", "vhost_mode"),
		row(honoured("fds", "one open tap (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR): --net fd=N, or passed as SCM_RIGHTS with vm.add-net; refused in vm.create's body"), notYet("rate_limiter_config", "")),
		all(NotYet, "vmm offers checksum and TSO offloads, not UFO", "offload_tso", "offload_ufo", "offload_csum"),
	),
	object[RNG]("RngConfig", row(honoured("src", ""))),
	object[Balloon]("BalloonConfig",
		row(honoured("size", "the balloon's target at boot; vm.resize's desired_balloon changes it"),
			honoured("deflate_on_oom", "VIRTIO_BALLOON_F_DEFLATE_ON_OOM"),
			honoured("free_page_reporting", "VIRTIO_BALLOON_F_REPORTING: pages the guest frees go back to the host")),
	),
	object[GenericVhostUser]("GenericVhostUserConfig", all(DefaultOnly, noteVhost, "socket", "queue_sizes", "device_type")),
	object[FS]("FsConfig", all(NotYet, "", "tag", "socket", "num_queues", "queue_size")),
	object[Pmem]("PmemConfig", all(NotYet, "", "file", "size", "discard_writes")),
	object[Serial]("SerialConfig",
		row(honoured("mode", "Off, Null, Tty (stdout, stdin), File, Pty (path in file), Socket (a unix socket, one client at a time)"),
			honoured("file", "with File; with Pty vm.info shows the pseudo-terminal's path"),
			honoured("socket", "with Socket: the listening socket's path (must not exist)"),
			defaultOnly("iommu", "the serial port is no PCI device")),
	),
	object[Console]("ConsoleConfig",
		row(honoured("mode", "Off, Null, Tty, File, Pty; Socket is refused at vm.create, as Cloud Hypervisor does"),
			honoured("file", "with File; with Pty vm.info shows the pseudo-terminal's path"),
			honoured("socket", "Socket mode is refused, as Cloud Hypervisor does")),
	),
	object[DebugConsole]("DebugConsoleConfig",
		row(partly("mode", "", "Off"), notYet("file", ""), notYet("iobase", "")),
	),
	object[Device]("DeviceConfig", all(DefaultOnly, "vmm passes no host devices through", "path", "fd", "x_nv_gpudirect_clique", "x_exclude_mmap_bars")),
	object[UserDevice]("UserDeviceConfig", all(DefaultOnly, "vmm passes no host devices through", "socket")),
	object[Vdpa]("VdpaConfig", all(DefaultOnly, "vmm passes no host devices through", "path", "num_queues")),
	object[Vsock]("VsockConfig", row(honoured("cid", "the guest's CID: 3 to 2^32-2"), honoured("socket", "hybrid vsock: host programs connect and write CONNECT <port>; guest connections to port P reach socket_P"))),
	object[NUMA]("NumaConfig", all(NotYet, "", "guest_numa_id", "cpus", "distances", "memory_zones", "pci_segments", "device_id")),
	object[NUMADistance]("NumaDistance", all(NotYet, "", "destination", "distance")),
	object[RTC]("RtcConfig"),
	object[PCISegment]("PciSegmentConfig", all(NotYet, "", "pci_segment", "mmio32_aperture_weight", "mmio64_aperture_weight")),
	object[Platform]("PlatformConfig",
		row(honoured("num_pci_segments", "1 to 16, each a host bridge with its ECAM and windows")),
		all(DefaultOnly, "vmm has no virtual IOMMU", "iommu_segments", "iommu_address_width_bits", "iommu_address_width"),
		all(NotYet, noteSMBIOS, "system_serial_number", "serial_number", "system_uuid", "uuid", "oem_strings",
			"system_manufacturer", "system_product_name", "system_version", "system_family", "system_sku_number", "chassis_asset_tag"),
		all(DefaultOnly, "confidential guests are not supported", "tdx", "sev_snp"),
		all(DefaultOnly, "vmm passes no host devices through", "iommufd", "iommufd_fd", "vfio_p2p_dma"),
	),
	object[TPM]("TpmConfig", all(DefaultOnly, noteDevice, "socket")),
	object[Pvmemcontrol]("PvmemcontrolConfig"),
	object[Ivshmem]("IvshmemConfig", all(DefaultOnly, noteDevice, "path", "size")),
	object[LandlockRule]("LandlockConfig", row(honoured("path", "a file, or a directory and everything beneath it"),
		honoured("access", "r, w or rw"))),
}
