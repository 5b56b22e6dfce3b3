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

// ParseSize reads a size as Cloud Hypervisor does: bytes, or a number with
// a K, M or G suffix (powers of 1024, upper case only).
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	mult := uint64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult, t = 1<<10, t[:n-1]
		case 'M':
			mult, t = 1<<20, t[:n-1]
		case 'G':
			mult, t = 1<<30, t[:n-1]
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

// ParseCPUs reads --cpus with Cloud Hypervisor's keys: boot, max (default
// boot), topology=THREADS:CORES:DIES:PACKAGES, kvm_hyperv, max_phys_bits,
// affinity=[VCPU@[HOST_CPUS],...], features=[amx], nested,
// core_scheduling=vm|vcpu|off and profile=host.
func ParseCPUs(s string) (CPUs, error) {
	c := CPUs{BootVCPUs: 1}
	maxSet := false
	o := newOptions("cpus").
		add("boot", intSetter(&c.BootVCPUs)).
		add("max", func(v string) error { maxSet = true; return intSetter(&c.MaxVCPUs)(v) }).
		add("topology", func(v string) error {
			t, err := parseTopology(v)
			c.Topology = t
			return err
		}).
		add("kvm_hyperv", toggle(&c.KVMHyperV)).
		add("max_phys_bits", integer(&c.MaxPhysBits, 8)).
		add("affinity", func(v string) error {
			a, err := parseAffinity(v)
			c.Affinity = a
			return err
		}).
		add("features", func(v string) error {
			var fs []string
			_ = strList(&fs)(v)
			for _, f := range fs {
				if f != "amx" {
					return fmt.Errorf("unknown feature %q (known: amx)", f)
				}
				c.Features.AMX = true
			}
			return nil
		}).
		add("nested", toggleP(&c.Nested)).
		add("core_scheduling", choice(&c.CoreScheduling, map[string]CoreScheduling{
			"vm": CoreSchedulingVM, "vcpu": CoreSchedulingVCPU, "off": CoreSchedulingOff})).
		add("profile", choice(&c.Profile, map[string]CPUProfile{"host": ProfileHost}))
	if err := o.parse(s); err != nil {
		return c, err
	}
	if !maxSet {
		c.MaxVCPUs = c.BootVCPUs
	}
	return c, nil
}

// intSetter sets an int to a non-negative number.
func intSetter(dst *int) setter {
	return func(v string) error {
		n, err := strconv.ParseUint(v, 10, 31)
		if err != nil {
			return fmt.Errorf("%q is not a number", v)
		}
		*dst = int(n)
		return nil
	}
}

// parseTopology reads THREADS:CORES:DIES:PACKAGES.
func parseTopology(s string) (*CPUTopology, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 4 {
		return nil, errors.New("want threads_per_core:cores_per_die:dies_per_package:packages")
	}
	var n [4]uint16
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", p)
		}
		n[i] = uint16(v)
	}
	return &CPUTopology{ThreadsPerCore: n[0], CoresPerDie: n[1], DiesPerPackage: n[2], Packages: n[3]}, nil
}

// parseAffinity reads [VCPU@[HOST_CPUS],...].
func parseAffinity(s string) ([]CPUAffinity, error) {
	ts, err := parseTuples(s)
	if err != nil {
		return nil, err
	}
	var out []CPUAffinity
	for _, t := range ts {
		v, err := strconv.ParseUint(t.key, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("vCPU %q is not a number", t.key)
		}
		a := CPUAffinity{VCPU: uint32(v)}
		if err := intList(&a.HostCPUs)(t.value); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// ParseMemory reads --memory with Cloud Hypervisor's keys: size,
// mergeable, hotplug_method=acpi|virtio-mem, hotplug_size,
// hotplugged_size, shared, hugepages, hugepage_size, prefault, thp,
// reserve, and file (which Cloud Hypervisor accepts and ignores, as vmm
// does).
func ParseMemory(s string) (Memory, error) {
	m := Memory{Size: 512 * MiB}
	var file string
	o := newOptions("memory").
		add("size", size(&m.Size)).
		add("file", str(&file)).
		add("mergeable", toggle(&m.Mergeable)).
		add("hotplug_method", choice(&m.HotplugMethod, map[string]HotplugMethod{"acpi": HotplugACPI, "virtio-mem": HotplugVirtioMem})).
		add("hotplug_size", size(&m.HotplugSize)).
		add("hotplugged_size", size(&m.HotpluggedSize)).
		add("shared", toggle(&m.Shared)).
		add("hugepages", toggle(&m.Hugepages)).
		add("hugepage_size", size(&m.HugepageSize)).
		add("prefault", toggle(&m.Prefault)).
		add("thp", toggleP(&m.THP)).
		add("reserve", toggle(&m.Reserve))
	return m, o.parse(s)
}

// consoleModes are the bare modes of --serial and --console.
var consoleModes = map[string]ConsoleMode{"off": ModeOff, "null": ModeNull, "pty": ModePty, "tty": ModeTty}

// parseMode reads the mode part of --serial, --console or
// --debug-console: off, null, pty, tty, file=PATH or socket=PATH, and
// hands the other keys to rest.
func parseMode(flag, s string, rest *optionSet) (mode ConsoleMode, file, socket string, err error) {
	var others []string
	for _, part := range splitOptions(s) {
		if m, ok := consoleModes[strings.ToLower(part)]; ok {
			if mode != "" {
				return "", "", "", fmt.Errorf("--%s: two modes in %q", flag, s)
			}
			mode = m
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "file", "socket":
			if mode != "" {
				return "", "", "", fmt.Errorf("--%s: two modes in %q", flag, s)
			}
			v = unquote(v)
			switch {
			case v == "" && k == "file":
				return "", "", "", fmt.Errorf("--%s: Path missing when using file console mode", flag)
			case v == "":
				return "", "", "", fmt.Errorf("--%s: Path missing when using socket console mode", flag)
			case k == "file":
				mode, file = ModeFile, v
			default:
				mode, socket = ModeSocket, v
			}
		default:
			others = append(others, part)
		}
	}
	if mode == "" {
		return "", "", "", fmt.Errorf("--%s: %q: want off, null, pty, tty, file=PATH or socket=PATH", flag, s)
	}
	if err := rest.parse(strings.Join(others, ",")); err != nil {
		return "", "", "", err
	}
	return mode, file, socket, nil
}

// ParseSerial reads --serial: off, null, pty, tty, file=PATH or
// socket=PATH, and iommu=on|off (Cloud Hypervisor v51's).
func ParseSerial(s string) (Serial, error) {
	var c Serial
	var err error
	c.Mode, c.File, c.Socket, err = parseMode("serial", s, newOptions("serial").add("iommu", toggle(&c.IOMMU)))
	return c, err
}

// ParseConsole reads --console: off, null, pty, tty, file=PATH or
// socket=PATH (refused when the VM is created, as Cloud Hypervisor does),
// and iommu, id, pci_segment and pci_device_id.
func ParseConsole(s string) (Console, error) {
	var c Console
	var err error
	c.Mode, c.File, c.Socket, err = parseMode("console", s, pciOptions(newOptions("console"), &c.PCIDevice))
	return c, err
}

// ParseDebugConsole reads --debug-console: off, null, pty, tty or
// file=PATH, and iobase=0xNN.
func ParseDebugConsole(s string) (DebugConsole, error) {
	var c DebugConsole
	var err error
	var socket string
	c.Mode, c.File, socket, err = parseMode("debug-console", s, newOptions("debug-console").add("iobase", func(v string) error {
		if !strings.HasPrefix(v, "0x") {
			return fmt.Errorf("--debug-console: The IO port was not properly provided in hex or a `0x` prefix is missing: %s", v)
		}
		return integer(&c.IOBase, 16)(v)
	}))
	if err == nil && socket != "" {
		err = errors.New("--debug-console: socket= is not a debug console mode")
	}
	return c, err
}

// pciOptions adds the keys of Cloud Hypervisor's common device block.
func pciOptions(o *optionSet, d *PCIDevice) *optionSet {
	return o.add("id", str(&d.ID)).
		add("iommu", toggle(&d.IOMMU)).
		add("pci_segment", integer(&d.PCISegment, 16)).
		add("pci_device_id", integerP(&d.PCIDeviceID, 8))
}

// rateLimiterOptions adds the bw_* and ops_* keys; the function it returns
// builds *dst's token buckets, each when both its size and its refill
// time are set, as Cloud Hypervisor does.
func rateLimiterOptions(o *optionSet, dst **RateLimiter) (*optionSet, func()) {
	var bw, ops TokenBucket
	o.add("bw_size", integer(&bw.Size, 64)).add("bw_one_time_burst", integer(&bw.OneTimeBurst, 64)).
		add("bw_refill_time", integer(&bw.RefillTime, 64)).
		add("ops_size", integer(&ops.Size, 64)).add("ops_one_time_burst", integer(&ops.OneTimeBurst, 64)).
		add("ops_refill_time", integer(&ops.RefillTime, 64))
	return o, func() {
		var rl RateLimiter
		if bw.Size != 0 && bw.RefillTime != 0 {
			rl.Bandwidth = &bw
		}
		if ops.Size != 0 && ops.RefillTime != 0 {
			rl.Ops = &ops
		}
		if rl.Bandwidth != nil || rl.Ops != nil {
			*dst = &rl
		}
	}
}

// imageTypes are --disk image_type's values.
var imageTypes = map[string]ImageType{"raw": ImageRaw, "qcow2": "Qcow2", "vhd": "FixedVhd", "vhdx": "Vhdx", "vmdk": "FlatVmdk"}

// ParseDisk reads --disk with Cloud Hypervisor's keys; path is required.
func ParseDisk(s string) (Disk, error) {
	var d Disk
	o := newOptions("disk").
		add("path", str(&d.Path)).
		add("readonly", toggle(&d.Readonly)).
		add("direct", toggle(&d.Direct)).
		add("queue_size", integer(&d.QueueSize, 16)).
		add("num_queues", intSetter(&d.NumQueues)).
		add("vhost_user", toggle(&d.VhostUser)).
		add("socket", str(&d.VhostSocket)).
		add("_disable_io_uring", toggle(&d.DisableIOUring)).
		add("_disable_aio", toggle(&d.DisableAIO)).
		add("serial", str(&d.Serial)).
		add("rate_limit_group", str(&d.RateLimitGroup)).
		add("queue_affinity", func(v string) error {
			ts, err := parseTuples(v)
			if err != nil {
				return err
			}
			for _, t := range ts {
				q, err := strconv.ParseUint(t.key, 10, 16)
				if err != nil {
					return fmt.Errorf("queue %q is not a number", t.key)
				}
				a := VirtQueueAffinity{QueueIndex: uint16(q)}
				if err := intList(&a.HostCPUs)(t.value); err != nil {
					return err
				}
				d.QueueAffinity = append(d.QueueAffinity, a)
			}
			return nil
		}).
		add("backing_files", toggle(&d.BackingFiles)).
		add("sparse", toggleP(&d.Sparse)).
		add("image_type", choice(&d.ImageType, imageTypes)).
		add("lock_granularity", choice(&d.LockGranularity, map[string]LockGranularity{"byte-range": "ByteRange", "full": "Full"}))
	o = pciOptions(o, &d.PCIDevice)
	o, limiter := rateLimiterOptions(o, &d.RateLimiterConfig)
	if err := o.parse(s); err != nil {
		return d, err
	}
	limiter()
	if d.Path == "" && !d.VhostUser {
		return d, errors.New("--disk: path= is required")
	}
	return d, nil
}

// ParseNet reads --net with Cloud Hypervisor's keys; every one may be
// empty (an empty tap= lets the kernel name the tap, an empty mac= gets a
// generated MAC).
func ParseNet(s string) (Net, error) {
	var n Net
	o := newOptions("net").
		add("tap", str(&n.Tap)).
		add("ip", str(&n.IP)).
		add("mask", str(&n.Mask)).
		add("mac", str(&n.MAC)).
		add("host_mac", str(&n.HostMAC)).
		add("offload_tso", toggleP(&n.OffloadTSO)).
		add("offload_ufo", toggleP(&n.OffloadUFO)).
		add("offload_csum", toggleP(&n.OffloadCSUM)).
		add("mtu", integer(&n.MTU, 16)).
		add("queue_size", integer(&n.QueueSize, 16)).
		add("num_queues", intSetter(&n.NumQueues)).
		add("vhost_user", toggle(&n.VhostUser)).
		add("socket", str(&n.VhostSocket)).
		add("vhost_mode", choice(&n.VhostMode, map[string]VhostMode{"client": "Client", "server": "Server"})).
		add("fd", intList(&n.FDs))
	o = pciOptions(o, &n.PCIDevice)
	o, limiter := rateLimiterOptions(o, &n.RateLimiterConfig)
	if err := o.parse(s); err != nil {
		return n, err
	}
	limiter()
	return n, nil
}

// ParseRNG reads --rng [src=PATH][,iommu=..,id=..,pci_segment=..,pci_device_id=..].
func ParseRNG(s string) (RNG, error) {
	var r RNG
	o := pciOptions(newOptions("rng").add("src", str(&r.Src)), &r.PCIDevice)
	if err := o.parse(s); err != nil {
		return r, err
	}
	if r.Src == "" {
		r.Src = DefaultRNGSource
	}
	return r, nil
}

// ParsePlatform reads --platform with Cloud Hypervisor's keys.
func ParsePlatform(s string) (Platform, error) {
	var p Platform
	o := newOptions("platform").
		add("num_pci_segments", integer(&p.NumPCISegments, 16)).
		add("iommu_segments", intList(&p.IOMMUSegments)).
		add("iommu_address_width", integer(&p.IOMMUAddressWidthBits, 8)).
		add("serial_number", str(&p.SerialNumber)).
		add("uuid", str(&p.UUID)).
		add("oem_strings", strList(&p.OEMStrings)).
		add("tdx", toggle(&p.TDX)).
		add("sev_snp", toggle(&p.SEVSNP)).
		add("system_manufacturer", str(&p.SystemManufacturer)).
		add("system_product_name", str(&p.SystemProductName)).
		add("system_version", str(&p.SystemVersion)).
		add("system_serial_number", str(&p.SystemSerialNumber)).
		add("system_uuid", str(&p.SystemUUID)).
		add("system_sku_number", str(&p.SystemSKUNumber)).
		add("system_family", str(&p.SystemFamily)).
		add("chassis_asset_tag", str(&p.ChassisAssetTag)).
		add("iommufd", toggle(&p.IOMMUFD)).
		add("iommufd_fd", func(v string) error {
			n, err := strconv.ParseUint(v, 10, 31)
			if err != nil {
				return fmt.Errorf("%q is not a number", v)
			}
			fd := int(n)
			p.IOMMUFDFD, p.IOMMUFD = &fd, true
			return nil
		}).
		add("vfio_p2p_dma", toggleP(&p.VFIOP2PDMA))
	return p, o.parse(s)
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
func (c CPUs) Arg() string {
	s := fmt.Sprintf("boot=%d,max=%d", c.BootVCPUs, c.MaxVCPUs)
	if t := c.Topology; t != nil {
		s += fmt.Sprintf(",topology=%d:%d:%d:%d", t.ThreadsPerCore, t.CoresPerDie, t.DiesPerPackage, t.Packages)
	}
	if !c.NestedEnabled() {
		s += ",nested=off"
	}
	return s
}

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
	for _, o := range []struct {
		on   bool
		text string
	}{{m.Mergeable, "mergeable=on"}, {m.Shared, "shared=on"}, {m.Hugepages, "hugepages=on"},
		{m.HugepageSize > 0, "hugepage_size=" + FormatSize(m.HugepageSize)},
		{m.Prefault, "prefault=on"}, {!m.THPEnabled(), "thp=off"}} {
		if o.on {
			s += "," + o.text
		}
	}
	return s
}

// Arg is d as the value of --disk.
func (d Disk) Arg() string {
	s := "path=" + quoteOption(d.Path)
	if d.Readonly {
		s += ",readonly=on"
	}
	if d.Direct {
		s += ",direct=on"
	}
	if d.ID != "" {
		s += ",id=" + quoteOption(d.ID)
	}
	if d.ImageType != "" && d.ImageType != ImageUnknown {
		for k, v := range imageTypes {
			if v == d.ImageType {
				s += ",image_type=" + k
			}
		}
	}
	return s
}

// Arg is n as the value of --net.
func (n Net) Arg() string {
	return fmt.Sprintf("tap=%s,mac=%s,ip=%s,mask=%s", quoteOption(n.Tap), quoteOption(n.MAC), quoteOption(n.IP), quoteOption(n.Mask))
}

// modeArg is a console mode as the value of --serial or --console.
func modeArg(mode ConsoleMode, file, socket string) string {
	switch mode {
	case ModeFile:
		return "file=" + quoteOption(file)
	case ModeSocket:
		return "socket=" + quoteOption(socket)
	}
	return strings.ToLower(string(mode))
}

// Arg is s as the value of --serial.
func (s Serial) Arg() string { return modeArg(s.Mode, s.File, s.Socket) }

// Arg is c as the value of --console.
func (c Console) Arg() string { return modeArg(c.Mode, c.File, c.Socket) }

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
	if c.Vsock != nil {
		args = append(args, "--vsock", c.Vsock.Arg())
	}
	if c.Serial.Mode != "" {
		args = append(args, "--serial", c.Serial.Arg())
	}
	if c.Console.Mode != "" && c.Console.Mode != ModeOff {
		args = append(args, "--console", c.Console.Arg())
	}
	if c.LandlockEnable {
		args = append(args, "--landlock")
	}
	for _, r := range c.LandlockRules {
		args = append(args, "--landlock-rules", r.Arg())
	}
	return args
}
