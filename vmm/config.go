// Package vmm is the virtual machine: its configuration, memory layout, boot
// loader, vCPU and memory managers, devices, hot plug and lifecycle.
package vmm

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
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

// VmConfig is the whole description of a VM. The command line parses into it,
// vm.create decodes it, vm.info returns it, the Lua bindings build it, and a
// reboot rebuilds the VM from it. JSON names follow Cloud Hypervisor's.
type VmConfig struct {
	Payload PayloadConfig `json:"payload"`
	Cpus    CpusConfig    `json:"cpus"`
	Memory  MemoryConfig  `json:"memory"`
	Disks   []DiskConfig  `json:"disks,omitempty"`
	Net     []NetConfig   `json:"net,omitempty"`
	Rng     *RngConfig    `json:"rng,omitempty"`
	Serial  ConsoleConfig `json:"serial"`
	Console ConsoleConfig `json:"console"`
}

// PayloadConfig names what the VM boots.
type PayloadConfig struct {
	Kernel    string `json:"kernel,omitempty"`
	Cmdline   string `json:"cmdline,omitempty"`
	Initramfs string `json:"initramfs,omitempty"`
}

// CpusConfig is the vCPU count at boot and the most the VM may have.
type CpusConfig struct {
	BootVcpus int `json:"boot_vcpus"`
	MaxVcpus  int `json:"max_vcpus"`
}

// MemoryConfig is the boot RAM and the guest-physical space reserved for
// memory hot plug, both in bytes.
type MemoryConfig struct {
	Size        uint64 `json:"size"`
	HotplugSize uint64 `json:"hotplug_size,omitempty"`
}

// DiskConfig is one virtio-blk disk.
type DiskConfig struct {
	Path     string `json:"path"`
	Readonly bool   `json:"readonly,omitempty"`
}

// NetConfig is one virtio-net device backed by a tap.
type NetConfig struct {
	Tap  string `json:"tap,omitempty"`
	IP   string `json:"ip,omitempty"`
	Mask string `json:"mask,omitempty"`
	Mac  string `json:"mac,omitempty"`
}

// RngConfig is the virtio-rng device and its entropy source.
type RngConfig struct {
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

// ConsoleConfig is the serial port's or the virtio console's output.
type ConsoleConfig struct {
	Mode ConsoleMode `json:"mode"`
	File string      `json:"file,omitempty"`
}

// DefaultRngSource is where --rng reads entropy when no src= is given.
const DefaultRngSource = "/dev/urandom"

// DefaultConfig is the configuration before any flag: one vCPU, 512 MiB,
// serial on the terminal, no virtio console.
func DefaultConfig() VmConfig {
	return VmConfig{
		Cpus:    CpusConfig{BootVcpus: 1, MaxVcpus: 1},
		Memory:  MemoryConfig{Size: 512 * MiB},
		Serial:  ConsoleConfig{Mode: ModeTty},
		Console: ConsoleConfig{Mode: ModeOff},
	}
}

// Validate checks the configuration as a whole. hostMaxVcpus is the host's
// KVM_CAP_MAX_VCPUS, or 0 when unknown. Every rule lives here, once.
func (c *VmConfig) Validate(hostMaxVcpus int) error {
	if c.Payload.Kernel == "" {
		return errors.New("no kernel: --kernel is required")
	}
	if c.Cpus.BootVcpus < 1 {
		return fmt.Errorf("cpus: boot=%d: at least 1 vCPU is needed", c.Cpus.BootVcpus)
	}
	if c.Cpus.MaxVcpus < c.Cpus.BootVcpus {
		return fmt.Errorf("cpus: max=%d is below boot=%d", c.Cpus.MaxVcpus, c.Cpus.BootVcpus)
	}
	if hostMaxVcpus > 0 && c.Cpus.MaxVcpus > hostMaxVcpus {
		return fmt.Errorf("cpus: max=%d is above the host's limit of %d vCPUs", c.Cpus.MaxVcpus, hostMaxVcpus)
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
	for _, s := range []struct {
		name string
		cc   ConsoleConfig
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

// ParseSize reads a size in bytes, or with a K, M or G (binary) suffix.
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	mult := uint64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K', 'k':
			mult, t = 1<<10, t[:n-1]
		case 'M', 'm':
			mult, t = 1<<20, t[:n-1]
		case 'G', 'g':
			mult, t = 1<<30, t[:n-1]
		case 'T', 't':
			mult, t = 1<<40, t[:n-1]
		}
	}
	v, err := strconv.ParseUint(t, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: want bytes or a number with K, M or G", s)
	}
	if v > (^uint64(0))/mult {
		return 0, fmt.Errorf("size %q overflows", s)
	}
	return v * mult, nil
}

// options splits "a=1,b=2" into an ordered key/value list and rejects keys
// outside allowed.
func options(flag, s string, allowed ...string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("--%s: %q is not key=value", flag, part)
		}
		known := false
		for _, a := range allowed {
			known = known || a == k
		}
		if !known {
			return nil, fmt.Errorf("--%s: unknown option %q (known: %s)", flag, k, strings.Join(allowed, ", "))
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("--%s: option %q given twice", flag, k)
		}
		out[k] = v
	}
	return out, nil
}

// ParseCpus reads --cpus boot=N,max=M; max defaults to boot.
func ParseCpus(s string) (CpusConfig, error) {
	o, err := options("cpus", s, "boot", "max")
	if err != nil {
		return CpusConfig{}, err
	}
	c := CpusConfig{BootVcpus: 1}
	if v, ok := o["boot"]; ok {
		if c.BootVcpus, err = strconv.Atoi(v); err != nil {
			return c, fmt.Errorf("--cpus: boot=%q is not a number", v)
		}
	}
	c.MaxVcpus = c.BootVcpus
	if v, ok := o["max"]; ok {
		if c.MaxVcpus, err = strconv.Atoi(v); err != nil {
			return c, fmt.Errorf("--cpus: max=%q is not a number", v)
		}
	}
	return c, nil
}

// ParseMemory reads --memory size=S,hotplug_size=H.
func ParseMemory(s string) (MemoryConfig, error) {
	o, err := options("memory", s, "size", "hotplug_size")
	if err != nil {
		return MemoryConfig{}, err
	}
	m := MemoryConfig{Size: 512 * MiB}
	if v, ok := o["size"]; ok {
		if m.Size, err = ParseSize(v); err != nil {
			return m, fmt.Errorf("--memory: size: %w", err)
		}
	}
	if v, ok := o["hotplug_size"]; ok {
		if m.HotplugSize, err = ParseSize(v); err != nil {
			return m, fmt.Errorf("--memory: hotplug_size: %w", err)
		}
	}
	return m, nil
}

// ParseConsole reads --serial or --console: tty, off, null or file=PATH.
func ParseConsole(flag, s string) (ConsoleConfig, error) {
	switch strings.ToLower(s) {
	case "tty":
		return ConsoleConfig{Mode: ModeTty}, nil
	case "off":
		return ConsoleConfig{Mode: ModeOff}, nil
	case "null":
		return ConsoleConfig{Mode: ModeNull}, nil
	}
	if p, ok := strings.CutPrefix(s, "file="); ok && p != "" {
		return ConsoleConfig{Mode: ModeFile, File: p}, nil
	}
	return ConsoleConfig{}, fmt.Errorf("--%s: %q: want tty, off, null or file=PATH", flag, s)
}

// ParseDisk reads --disk path=FILE[,readonly=on].
func ParseDisk(s string) (DiskConfig, error) {
	o, err := options("disk", s, "path", "readonly")
	if err != nil {
		return DiskConfig{}, err
	}
	d := DiskConfig{Path: o["path"]}
	if d.Path == "" {
		return d, errors.New("--disk: path= is required")
	}
	if v, ok := o["readonly"]; ok {
		if d.Readonly, err = parseBool(v); err != nil {
			return d, fmt.Errorf("--disk: readonly: %w", err)
		}
	}
	return d, nil
}

// ParseNet reads --net tap=,mac=,ip=,mask=; every field may be empty.
func ParseNet(s string) (NetConfig, error) {
	o, err := options("net", s, "tap", "mac", "ip", "mask")
	if err != nil {
		return NetConfig{}, err
	}
	return NetConfig{Tap: o["tap"], Mac: o["mac"], IP: o["ip"], Mask: o["mask"]}, nil
}

// ParseRng reads --rng [src=PATH].
func ParseRng(s string) (RngConfig, error) {
	o, err := options("rng", s, "src")
	if err != nil {
		return RngConfig{}, err
	}
	r := RngConfig{Src: o["src"]}
	if r.Src == "" {
		r.Src = DefaultRngSource
	}
	return r, nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "on", "true", "yes", "1":
		return true, nil
	case "off", "false", "no", "0", "":
		return false, nil
	}
	return false, fmt.Errorf("%q is not on or off", s)
}
