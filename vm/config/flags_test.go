package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestArgsFollowTheCommandLineSyntax(t *testing.T) {
	cfg := Default()
	cfg.Payload = Payload{Kernel: "/k", Initramfs: "/i", Cmdline: "console=ttyS0"}
	cfg.CPUs = CPUs{BootVCPUs: 4, MaxVCPUs: 8}
	cfg.Memory = Memory{Size: 1536 << 20, HotplugSize: 8 << 30}
	cfg.Disks = []Disk{{Path: "/d.img", Readonly: true}}
	cfg.RNG = &RNG{Src: "/dev/urandom"}
	got := strings.Join(append(cfg.Args(), "--api-socket", "/s.sock"), " ")
	want := "--kernel /k --initramfs /i --cmdline console=ttyS0 --cpus boot=4,max=8 --memory size=1536M,hotplug_size=8G " +
		"--disk path=/d.img,readonly=on --rng src=/dev/urandom --serial tty --api-socket /s.sock"
	if got != want {
		t.Errorf("Args =\n%s\nwant\n%s", got, want)
	}
}

func TestFormatSizeRoundTripsThroughParseSize(t *testing.T) {
	for _, n := range []uint64{0, 1, 4096, 1 << 20, 1536 << 20, 1 << 30, 3 << 30, 1<<30 + 1} {
		s := FormatSize(n)
		back, err := ParseSize(s)
		if err != nil || back != n {
			t.Errorf("ParseSize(FormatSize(%d) = %q) = %d, %v", n, s, back, err)
		}
	}
}

func TestEachArgParsesBackIntoTheSameValue(t *testing.T) {
	for _, tc := range []struct {
		name  string
		parse func() (any, error)
		want  any
	}{
		{"cpus", func() (any, error) { return ParseCPUs(CPUs{BootVCPUs: 2, MaxVCPUs: 6}.Arg()) }, CPUs{BootVCPUs: 2, MaxVCPUs: 6}},
		{"memory", func() (any, error) { return ParseMemory(Memory{Size: 3 * GiB, HotplugSize: 512 * MiB}.Arg()) }, Memory{Size: 3 * GiB, HotplugSize: 512 * MiB}},
		{"memory without hot plug", func() (any, error) { return ParseMemory(Memory{Size: 640 * MiB}.Arg()) }, Memory{Size: 640 * MiB}},
		{"memory through virtio-mem", func() (any, error) {
			return ParseMemory(Memory{Size: GiB, HotplugMethod: HotplugVirtioMem, HotplugSize: 8 * GiB, HotpluggedSize: 2 * GiB}.Arg())
		}, Memory{Size: GiB, HotplugMethod: HotplugVirtioMem, HotplugSize: 8 * GiB, HotpluggedSize: 2 * GiB}},
		{"balloon", func() (any, error) { return ParseBalloon(Balloon{Size: 512 * MiB, FreePageReporting: true}.Arg()) },
			Balloon{Size: 512 * MiB, FreePageReporting: true}},
		{"disk", func() (any, error) { return ParseDisk(Disk{Path: "/a.img", Readonly: true}.Arg()) }, Disk{Path: "/a.img", Readonly: true}},
		{"net", func() (any, error) {
			return ParseNet(Net{Tap: "t0", MAC: "52:54:00:00:00:01", IP: "10.0.0.1", Mask: "255.255.255.0"}.Arg())
		}, Net{Tap: "t0", MAC: "52:54:00:00:00:01", IP: "10.0.0.1", Mask: "255.255.255.0"}},
		{"serial to a file", func() (any, error) { return ParseSerial(Serial{Mode: ModeFile, File: "/s.log"}.Arg()) }, Serial{Mode: ModeFile, File: "/s.log"}},
		{"console off", func() (any, error) { return ParseConsole(Console{Mode: ModeOff}.Arg()) }, Console{Mode: ModeOff}},
	} {
		got, err := tc.parse()
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: parsed back %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
}

func TestParseMemoryAndBalloonTakeCloudHypervisorsSpellings(t *testing.T) {
	for _, c := range []struct {
		arg  string
		want Memory
		err  string
	}{
		{"size=1G,hotplug_method=virtio-mem,hotplug_size=8G", Memory{Size: GiB, HotplugMethod: HotplugVirtioMem, HotplugSize: 8 * GiB}, ""},
		{"size=1G,hotplug_method=virtio-mem,hotplug_size=8G,hotplugged_size=1G",
			Memory{Size: GiB, HotplugMethod: HotplugVirtioMem, HotplugSize: 8 * GiB, HotpluggedSize: GiB}, ""},
		{"size=1G,hotplug_method=acpi", Memory{Size: GiB, HotplugMethod: HotplugACPI}, ""},
		{"size=1G,hotplug_method=dimm", Memory{}, "hotplug_method=dimm: unknown value (known: acpi, virtio-mem)"},
		{"size=1G,hotplugged_size=lots", Memory{}, "hotplugged_size"},
	} {
		got, err := ParseMemory(c.arg)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: %v, want an error saying %q", c.arg, err, c.err)
		case c.err == "" && (err != nil || !reflect.DeepEqual(got, c.want)):
			t.Errorf("%s: %+v, %v; want %+v", c.arg, got, err, c.want)
		}
	}
	for _, c := range []struct {
		arg  string
		want Balloon
		err  string
	}{
		{"size=512M", Balloon{Size: 512 * MiB}, ""},
		{"size=0,deflate_on_oom=on,free_page_reporting=on", Balloon{DeflateOnOOM: true, FreePageReporting: true}, ""},
		{"size=1G,deflate_on_oom=maybe", Balloon{}, "deflate_on_oom"},
		{"size=1G,free_page_hinting=on", Balloon{}, "Unknown option: free_page_hinting"},
	} {
		got, err := ParseBalloon(c.arg)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: %v, want an error saying %q", c.arg, err, c.err)
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("%s: %+v, %v; want %+v", c.arg, got, err, c.want)
		}
	}
}
