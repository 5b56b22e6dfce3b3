package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The command line's syntax, both ways: the Parse functions read the values
// of vmm's flags (Cloud Hypervisor's syntax) and Args writes a VM back as
// the flags that parse into it.

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

// ParseCPUs reads --cpus boot=N,max=M; max defaults to boot.
func ParseCPUs(s string) (CPUs, error) {
	o, err := options("cpus", s, "boot", "max")
	if err != nil {
		return CPUs{}, err
	}
	c := CPUs{BootVCPUs: 1}
	if v, ok := o["boot"]; ok {
		if c.BootVCPUs, err = strconv.Atoi(v); err != nil {
			return c, fmt.Errorf("--cpus: boot=%q is not a number", v)
		}
	}
	c.MaxVCPUs = c.BootVCPUs
	if v, ok := o["max"]; ok {
		if c.MaxVCPUs, err = strconv.Atoi(v); err != nil {
			return c, fmt.Errorf("--cpus: max=%q is not a number", v)
		}
	}
	return c, nil
}

// ParseMemory reads --memory size=S,hotplug_size=H,hotplug_method=M,
// hotplugged_size=P (M: acpi or virtio-mem, as Cloud Hypervisor spells
// them; see parseHotplugMethod).
func ParseMemory(s string) (Memory, error) {
	o, err := options("memory", s, "size", "hotplug_size", "hotplug_method", "hotplugged_size")
	if err != nil {
		return Memory{}, err
	}
	m := Memory{Size: 512 * MiB}
	for _, f := range []struct {
		key string
		dst *uint64
	}{{"size", &m.Size}, {"hotplug_size", &m.HotplugSize}, {"hotplugged_size", &m.HotpluggedSize}} {
		if v, ok := o[f.key]; ok {
			if *f.dst, err = ParseSize(v); err != nil {
				return m, fmt.Errorf("--memory: %s: %w", f.key, err)
			}
		}
	}
	if v, ok := o["hotplug_method"]; ok {
		if m.HotplugMethod, err = parseHotplugMethod(v); err != nil {
			return m, fmt.Errorf("--memory: %w", err)
		}
	}
	return m, nil
}

// parseMode reads the mode of --serial or --console: tty, off, null or
// file=PATH.
func parseMode(flag, s string) (ConsoleMode, string, error) {
	switch strings.ToLower(s) {
	case "tty":
		return ModeTty, "", nil
	case "off":
		return ModeOff, "", nil
	case "null":
		return ModeNull, "", nil
	}
	if p, ok := strings.CutPrefix(s, "file="); ok && p != "" {
		return ModeFile, p, nil
	}
	return "", "", fmt.Errorf("--%s: %q: want tty, off, null or file=PATH", flag, s)
}

// ParseSerial reads --serial: tty, off, null or file=PATH.
func ParseSerial(s string) (Serial, error) {
	mode, file, err := parseMode("serial", s)
	return Serial{Mode: mode, File: file}, err
}

// ParseConsole reads --console: tty, off, null or file=PATH.
func ParseConsole(s string) (Console, error) {
	mode, file, err := parseMode("console", s)
	return Console{Mode: mode, File: file}, err
}

// ParseDisk reads --disk path=FILE[,readonly=on].
func ParseDisk(s string) (Disk, error) {
	o, err := options("disk", s, "path", "readonly")
	if err != nil {
		return Disk{}, err
	}
	d := Disk{Path: o["path"]}
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
func ParseNet(s string) (Net, error) {
	o, err := options("net", s, "tap", "mac", "ip", "mask")
	if err != nil {
		return Net{}, err
	}
	return Net{Tap: o["tap"], MAC: o["mac"], IP: o["ip"], Mask: o["mask"]}, nil
}

// ParseRNG reads --rng [src=PATH].
func ParseRNG(s string) (RNG, error) {
	o, err := options("rng", s, "src")
	if err != nil {
		return RNG{}, err
	}
	r := RNG{Src: o["src"]}
	if r.Src == "" {
		r.Src = DefaultRNGSource
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

// FormatSize writes a byte count the way ParseSize reads it: with the
// largest of the G, M and K suffixes that divides it exactly, else in bytes.
func FormatSize(n uint64) string {
	for _, u := range []struct {
		suffix string
		size   uint64
	}{{"G", GiB}, {"M", MiB}, {"K", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatUint(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatUint(n, 10)
}

// Arg is c as the value of --cpus.
func (c CPUs) Arg() string { return fmt.Sprintf("boot=%d,max=%d", c.BootVCPUs, c.MaxVCPUs) }

// Arg is m as the value of --memory, sizes written with FormatSize.
func (m Memory) Arg() string {
	s := "size=" + FormatSize(m.Size)
	if m.HotplugSize > 0 {
		s += ",hotplug_size=" + FormatSize(m.HotplugSize)
	}
	if m.HotplugMethod == HotplugVirtioMem {
		s += ",hotplug_method=virtio-mem"
	}
	if m.HotpluggedSize > 0 {
		s += ",hotplugged_size=" + FormatSize(m.HotpluggedSize)
	}
	return s
}

// Arg is d as the value of --disk.
func (d Disk) Arg() string {
	s := "path=" + d.Path
	if d.Readonly {
		s += ",readonly=on"
	}
	return s
}

// Arg is n as the value of --net.
func (n Net) Arg() string {
	return fmt.Sprintf("tap=%s,mac=%s,ip=%s,mask=%s", n.Tap, n.MAC, n.IP, n.Mask)
}

// modeArg is a console mode as the value of --serial or --console.
func modeArg(mode ConsoleMode, file string) string {
	if mode == ModeFile {
		return "file=" + file
	}
	return strings.ToLower(string(mode))
}

// Arg is s as the value of --serial.
func (s Serial) Arg() string { return modeArg(s.Mode, s.File) }

// Arg is c as the value of --console.
func (c Console) Arg() string { return modeArg(c.Mode, c.File) }

// Args is the vmm command line that parses into c, without the API socket.
// The serial port is left out when its mode is empty (the default, tty,
// then applies) and the virtio console when it is off.
func (c VM) Args() []string {
	args := []string{"--kernel", c.Payload.Kernel}
	if c.Payload.Initramfs != "" {
		args = append(args, "--initramfs", c.Payload.Initramfs)
	}
	if c.Payload.Cmdline != "" {
		args = append(args, "--cmdline", c.Payload.Cmdline)
	}
	args = append(args, "--cpus", c.CPUs.Arg(), "--memory", c.Memory.Arg())
	for _, d := range c.Disks {
		args = append(args, "--disk", d.Arg())
	}
	for _, n := range c.Net {
		args = append(args, "--net", n.Arg())
	}
	if c.Balloon != nil {
		args = append(args, "--balloon", c.Balloon.Arg())
	}
	if c.RNG != nil {
		args = append(args, "--rng")
		if c.RNG.Src != "" {
			args = append(args, "src="+c.RNG.Src)
		}
	}
	if c.Serial.Mode != "" {
		args = append(args, "--serial", c.Serial.Arg())
	}
	if c.Console.Mode != "" && c.Console.Mode != ModeOff {
		args = append(args, "--console", c.Console.Arg())
	}
	return args
}
