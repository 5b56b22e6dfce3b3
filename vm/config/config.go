// Package config is a VM's description, Cloud Hypervisor's VmConfig: the
// command line parses into it, vm.create decodes it, vm.info returns it, the
// Lua bindings build it, and a reboot rebuilds the VM from it. Its rules
// live here, once.
//
// The Go types cover every object and field of Cloud Hypervisor's VmConfig,
// the union of its v51 release and of its development head, with Cloud
// Hypervisor's JSON names. What vmm does with each field is data: the
// support table (Objects) says whether a field is honoured, recorded,
// accepted at its default only, or not supported yet; CheckSupported refuses
// the values vmm does not do, and SupportMarkdown documents the same table.
//
// The zero value of every field stands for Cloud Hypervisor's default:
// fields whose default is not their type's zero value are filled in by
// SetDefaults (from their `default` struct tags), and booleans that default
// to true are pointers, nil until then. A Go literal such as
// Disk{Path: "root.img"} is therefore a disk with every other field at its
// default.
package config

// Sizes used by the configuration rules.
const (
	// MiB is one mebibyte.
	MiB = 1 << 20
	// GiB is one gibibyte.
	GiB = 1 << 30
	// HotplugBlock is the granularity of memory hot plug: the x86_64 Linux
	// memory block size (/sys/devices/system/memory/block_size_bytes).
	HotplugBlock = 128 * MiB
	// MinMemory is the smallest boot RAM a Linux guest is given.
	MinMemory = 64 * MiB
	// MaxPCISegments is the most PCI segments platform.num_pci_segments may
	// ask for (Cloud Hypervisor allows 96).
	MaxPCISegments = 16
)

// VM is the whole description of a VM, Cloud Hypervisor's VmConfig. The
// command line parses into it, vm.create decodes it, vm.info returns it, the
// Lua bindings build it, and a reboot rebuilds the VM from it. Fields are in
// Cloud Hypervisor's order; pvmemcontrol, gdb and ivshmem exist only in
// Cloud Hypervisor builds with those features.
type VM struct {
	CPUs             CPUs               `json:"cpus"`
	Memory           Memory             `json:"memory"`
	Payload          Payload            `json:"payload"`
	RateLimitGroups  []RateLimitGroup   `json:"rate_limit_groups,omitempty"`
	Disks            []Disk             `json:"disks,omitempty"`
	Net              []Net              `json:"net,omitempty"`
	RNG              *RNG               `json:"rng,omitempty"`
	Balloon          *Balloon           `json:"balloon,omitempty"`
	GenericVhostUser []GenericVhostUser `json:"generic_vhost_user,omitempty"`
	FS               []FS               `json:"fs,omitempty"`
	Pmem             []Pmem             `json:"pmem,omitempty"`
	Serial           Serial             `json:"serial"`
	Console          Console            `json:"console"`
	DebugConsole     DebugConsole       `json:"debug_console"`
	Devices          []Device           `json:"devices,omitempty"`
	UserDevices      []UserDevice       `json:"user_devices,omitempty"`
	Vdpa             []Vdpa             `json:"vdpa,omitempty"`
	Vsock            *Vsock             `json:"vsock,omitempty"`
	Pvmemcontrol     *Pvmemcontrol      `json:"pvmemcontrol,omitempty"`
	Pvpanic          bool               `json:"pvpanic"`
	IOMMU            bool               `json:"iommu"`
	NUMA             []NUMA             `json:"numa,omitempty"`
	Watchdog         bool               `json:"watchdog"`
	RTC              *RTC               `json:"rtc,omitempty"`
	GDB              bool               `json:"gdb,omitempty"`
	PCISegments      []PCISegment       `json:"pci_segments,omitempty"`
	Platform         *Platform          `json:"platform,omitempty"`
	TPM              *TPM               `json:"tpm,omitempty"`
	LandlockEnable   bool               `json:"landlock_enable"`
	LandlockRules    []LandlockRule     `json:"landlock_rules,omitempty"`
	Ivshmem          *Ivshmem           `json:"ivshmem,omitempty"`
}

// Payload names what the VM boots: a kernel (a bzImage or an ELF vmlinux
// with a PVH entry) with its command line and initramfs, or a firmware (an
// ELF image with a PVH entry), never both, as in Cloud Hypervisor.
type Payload struct {
	Firmware  string `json:"firmware,omitempty"`
	Kernel    string `json:"kernel,omitempty"`
	Cmdline   string `json:"cmdline,omitempty"`
	Initramfs string `json:"initramfs,omitempty"`
	// IGVM is an IGVM file to boot (Cloud Hypervisor's igvm feature).
	IGVM string `json:"igvm,omitempty"`
	// HostData is the SEV-SNP host data, 64 hex digits.
	HostData string `json:"host_data,omitempty"`
	// FwCfgConfig is what QEMU's fw_cfg device hands the firmware (Cloud
	// Hypervisor's fw_cfg feature).
	FwCfgConfig *FwCfg `json:"fw_cfg_config,omitempty"`
}

// FwCfg says what the fw_cfg device exposes to the firmware.
type FwCfg struct {
	E820       *bool       `json:"e820,omitempty" default:"true"`
	Kernel     *bool       `json:"kernel,omitempty" default:"true"`
	Cmdline    *bool       `json:"cmdline,omitempty" default:"true"`
	Initramfs  *bool       `json:"initramfs,omitempty" default:"true"`
	ACPITables *bool       `json:"acpi_tables,omitempty" default:"true"`
	Items      *FwCfgItems `json:"items,omitempty"`
}

// FwCfgItems lists extra fw_cfg items.
type FwCfgItems struct {
	ItemList []FwCfgItem `json:"item_list,omitempty"`
}

// FwCfgItem is one named fw_cfg item, from a file or a string.
type FwCfgItem struct {
	Name   string `json:"name"`
	File   string `json:"file,omitempty"`
	String string `json:"string,omitempty"`
}

// DefaultRNGSource is where the virtio-rng device reads entropy when no
// source is given.
const DefaultRNGSource = "/dev/urandom"

// Default is the configuration before any flag or vm.create field: one
// vCPU, 512 MiB, the serial port on vmm's terminal, no virtio console;
// every other field is left at its zero value, which SetDefaults turns into
// Cloud Hypervisor's default. Where vmm's default differs from Cloud
// Hypervisor's (serial Tty and console Off where Cloud Hypervisor has Null
// and Tty; no virtio-rng unless asked for), it is vmm's command line's.
func Default() VM {
	return VM{
		CPUs:    CPUs{BootVCPUs: 1, MaxVCPUs: 1},
		Memory:  Memory{Size: 512 * MiB},
		Serial:  Serial{Mode: ModeTty},
		Console: Console{Mode: ModeOff},
	}
}

// IgnoredWithFirmware names the payload fields Validate drops because a
// firmware is the payload ("cmdline", "initramfs"), for a warning; Cloud
// Hypervisor warns the same way.
func (p Payload) IgnoredWithFirmware() []string {
	if p.Firmware == "" || p.Kernel != "" {
		return nil
	}
	var ignored []string
	if p.Cmdline != "" {
		ignored = append(ignored, "cmdline")
	}
	if p.Initramfs != "" {
		ignored = append(ignored, "initramfs")
	}
	return ignored
}
