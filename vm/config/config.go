// Package config is a VM's description, Cloud Hypervisor's VmConfig: the
// command line parses into it, vm.create decodes it, vm.info returns it, the
// Lua bindings build it, and a reboot rebuilds the VM from it. Its rules
// live here, once.
package config

import (
	"errors"
	"fmt"
)

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
)

// VM is the whole description of a VM. The command line parses into it,
// vm.create decodes it, vm.info returns it, the Lua bindings build it, and a
// reboot rebuilds the VM from it. JSON names follow Cloud Hypervisor's.
type VM struct {
	Payload Payload `json:"payload"`
	CPUs    CPUs    `json:"cpus"`
	Memory  Memory  `json:"memory"`
	Disks   []Disk  `json:"disks,omitempty"`
	Net     []Net   `json:"net,omitempty"`
	RNG     *RNG    `json:"rng,omitempty"`
	Vsock   *Vsock  `json:"vsock,omitempty"`
	Serial  Console `json:"serial"`
	Console Console `json:"console"`
}

// Payload names what the VM boots: a kernel (a bzImage or an ELF vmlinux
// with a PVH entry) with its command line and initramfs, or a firmware (an
// ELF image with a PVH entry), never both, as in Cloud Hypervisor.
type Payload struct {
	Firmware  string `json:"firmware,omitempty"`
	Kernel    string `json:"kernel,omitempty"`
	Cmdline   string `json:"cmdline,omitempty"`
	Initramfs string `json:"initramfs,omitempty"`
}

// CPUs is the vCPU count at boot and the most the VM may have.
type CPUs struct {
	BootVCPUs int `json:"boot_vcpus"`
	MaxVCPUs  int `json:"max_vcpus"`
}

// Memory is the boot RAM and the guest-physical space reserved for
// memory hot plug, both in bytes.
type Memory struct {
	Size        uint64 `json:"size"`
	HotplugSize uint64 `json:"hotplug_size,omitempty"`
}

// Disk is one virtio-blk disk.
type Disk struct {
	Path     string `json:"path"`
	Readonly bool   `json:"readonly,omitempty"`
}

// Net is one virtio-net device backed by a tap.
type Net struct {
	Tap  string `json:"tap,omitempty"`
	IP   string `json:"ip,omitempty"`
	Mask string `json:"mask,omitempty"`
	MAC  string `json:"mac,omitempty"`
}

// RNG is the virtio-rng device and its entropy source.
type RNG struct {
	Src string `json:"src"`
}

// ConsoleMode says where a console's bytes go.
type ConsoleMode string

// Console modes, spelled as Cloud Hypervisor's.
const (
	ModeOff  ConsoleMode = "Off"
	ModeTty  ConsoleMode = "Tty"
	ModeFile ConsoleMode = "File"
	ModeNull ConsoleMode = "Null"
)

// Console is the serial port's or the virtio console's output.
type Console struct {
	Mode ConsoleMode `json:"mode"`
	File string      `json:"file,omitempty"`
}

// DefaultRNGSource is where --rng reads entropy when no src= is given.
const DefaultRNGSource = "/dev/urandom"

// Default is the configuration before any flag: one vCPU, 512 MiB,
// serial on the terminal, no virtio console.
func Default() VM {
	return VM{
		CPUs:    CPUs{BootVCPUs: 1, MaxVCPUs: 1},
		Memory:  Memory{Size: 512 * MiB},
		Serial:  Console{Mode: ModeTty},
		Console: Console{Mode: ModeOff},
	}
}

// Validate checks the configuration as a whole. hostMaxVCPUs is the host's
// KVM_CAP_MAX_VCPUS, or 0 when unknown. Every rule lives here, once. Like
// Cloud Hypervisor's validation it also edits the payload: a firmware
// boots without a command line or an initramfs, which are dropped (see
// IgnoredWithFirmware).
func (c *VM) Validate(hostMaxVCPUs int) error {
	switch p := &c.Payload; {
	case p.Firmware != "" && p.Kernel != "":
		return errors.New("payload: a kernel and a firmware: give one of --kernel and --firmware, not both")
	case p.Firmware != "":
		p.Cmdline, p.Initramfs = "", ""
	case p.Kernel == "":
		return errors.New("no kernel: --kernel (or --firmware) is required")
	}
	if c.CPUs.BootVCPUs < 1 {
		return fmt.Errorf("cpus: boot=%d: at least 1 vCPU is needed", c.CPUs.BootVCPUs)
	}
	if c.CPUs.MaxVCPUs < c.CPUs.BootVCPUs {
		return fmt.Errorf("cpus: max=%d is below boot=%d", c.CPUs.MaxVCPUs, c.CPUs.BootVCPUs)
	}
	if hostMaxVCPUs > 0 && c.CPUs.MaxVCPUs > hostMaxVCPUs {
		return fmt.Errorf("cpus: max=%d is above the host's limit of %d vCPUs", c.CPUs.MaxVCPUs, hostMaxVCPUs)
	}
	if c.Memory.Size < MinMemory {
		return fmt.Errorf("memory: size=%d is below the minimum of %d MiB", c.Memory.Size, MinMemory/MiB)
	}
	if c.Memory.Size%(4096) != 0 {
		return fmt.Errorf("memory: size=%d is not a multiple of 4 KiB", c.Memory.Size)
	}
	if c.Memory.HotplugSize%HotplugBlock != 0 {
		return fmt.Errorf("memory: hotplug_size=%d is not a multiple of 128 MiB", c.Memory.HotplugSize)
	}
	for i, d := range c.Disks {
		if d.Path == "" {
			return fmt.Errorf("disk %d: path= is required", i)
		}
	}
	if err := c.Vsock.Check(); err != nil {
		return err
	}
	for _, s := range []struct {
		name string
		cc   Console
	}{{"serial", c.Serial}, {"console", c.Console}} {
		switch s.cc.Mode {
		case ModeOff, ModeTty, ModeNull:
		case ModeFile:
			if s.cc.File == "" {
				return fmt.Errorf("%s: file mode needs a path", s.name)
			}
		default:
			return fmt.Errorf("%s: unknown mode %q", s.name, s.cc.Mode)
		}
	}
	return nil
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
