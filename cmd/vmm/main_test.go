package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/boot/boottest"
	"github.com/vmmdev/vmm/vm/config"
)

func TestParseReadsCloudHypervisorStyleFlags(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want func(config.VM) bool
	}{
		{"double dash", []string{"--kernel", "k", "--cpus", "boot=4", "--memory", "size=1024M", "--serial", "tty"},
			func(c config.VM) bool {
				return c.Payload.Kernel == "k" && c.CPUs.BootVCPUs == 4 && c.CPUs.MaxVCPUs == 4 && c.Memory.Size == 1<<30 && c.Serial.Mode == config.ModeTty
			}},
		{"single dash and =", []string{"-kernel=k", "-cpus=boot=2,max=8", "-serial=file=/tmp/x"},
			func(c config.VM) bool {
				return c.CPUs.MaxVCPUs == 8 && c.Serial == config.Serial{Mode: config.ModeFile, File: "/tmp/x"}
			}},
		{"rng alone", []string{"--kernel", "k", "--rng"}, func(c config.VM) bool { return c.RNG != nil && c.RNG.Src == config.DefaultRNGSource }},
		{"rng with a separate value", []string{"--rng", "src=/dev/hwrng", "--kernel", "k"}, func(c config.VM) bool { return c.RNG != nil && c.RNG.Src == "/dev/hwrng" }},
		{"rng followed by a flag", []string{"--rng", "--kernel", "k"}, func(c config.VM) bool { return c.RNG != nil && c.Payload.Kernel == "k" }},
		{"rng with an empty value", []string{"--kernel", "k", "--rng", ""}, func(c config.VM) bool { return c.RNG != nil }},
		{"api socket alone", []string{"--api-socket", "/tmp/s"}, func(c config.VM) bool { return c.Payload.Kernel == "" }},
		{"virtio-mem and a balloon", []string{"--kernel", "k", "--memory", "size=1G,hotplug_method=virtio-mem,hotplug_size=8G",
			"--balloon", "size=512M,free_page_reporting=on"}, func(c config.VM) bool {
			return c.Memory.HotplugMethod == config.HotplugVirtioMem && c.Memory.HotplugSize == 8<<30 &&
				c.Balloon != nil && *c.Balloon == config.Balloon{Size: 512 << 20, FreePageReporting: true}
		}},
		{"firmware", []string{"--firmware", "fw", "--cpus", "boot=2"}, func(c config.VM) bool {
			return c.Payload.Firmware == "fw" && c.Payload.Kernel == "" && c.CPUs.BootVCPUs == 2
		}},
	} {
		cfg, _, err := parse(c.args, &bytes.Buffer{})
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !c.want(cfg) {
			t.Errorf("%s: parsed %+v", c.name, cfg)
		}
	}
}

func TestRunExitsTwoWithOneLineOnMisuse(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	garbage := write("garbage", bytes.Repeat([]byte("not a kernel "), 10000))
	code := make([]byte, 16)
	noPVH := write("no-pvh.elf", boottest.ELF(boottest.Segment{Type: boottest.PTLoad, Paddr: 0x100_0000, Data: code}))
	b := boottest.PVHELF(0x100_0000, code)
	b[4] = 1 // ELFCLASS32
	elf32 := write("elf32", b)
	cut := write("cut.elf", boottest.PVHELF(0x100_0000, code)[:100])
	high := write("high.elf", boottest.PVHELF(0x8000_0000, code))
	low := write("low.elf", boottest.PVHELF(0x7000, code))
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--bogus"}, "flag provided but not defined"},
		{"unknown transport", []string{"--kernel", "k", "--virtio-transport", "isa"}, "--virtio-transport isa: want pci or mmio"},
		{"no kernel", nil, "--kernel or --firmware is required"},
		{"kernel and firmware", []string{"--kernel", "k", "--firmware", "f"}, "give one, not both"},
		{"bad cpus", []string{"--kernel", "k", "--cpus", "boot=x"}, "--cpus"},
		{"bad balloon", []string{"--kernel", "k", "--balloon", "size=1G,inflate=on"}, "--balloon: unknown option"},
		{"bad hotplug method", []string{"--kernel", "k", "--memory", "size=1G,hotplug_method=dimm"}, "want acpi or virtio-mem"},
		{"stray argument", []string{"--kernel", "k", "extra"}, "unexpected argument"},
		{"missing kernel file", []string{"--kernel", filepath.Join(dir, "nope")}, "no such file"},
		{"garbage kernel", []string{"--kernel", garbage}, "kernel " + garbage + ": not a bzImage or an ELF vmlinux"},
		{"ELF kernel without PVH", []string{"--kernel", noPVH}, "kernel " + noPVH + ": no PVH entry point"},
		{"32-bit ELF kernel", []string{"--kernel", elf32}, "kernel " + elf32 + ": not a bootable ELF image: a 32-bit ELF"},
		{"truncated ELF kernel", []string{"--kernel", cut}, "kernel " + cut + ": not a bootable ELF image: truncated"},
		{"garbage firmware", []string{"--firmware", garbage}, "firmware " + garbage + ": not a bzImage or an ELF vmlinux"},
		{"ELF firmware without PVH", []string{"--firmware", noPVH, "--serial", "off"}, "firmware " + noPVH + ": no PVH entry point"},
		{"missing firmware", []string{"--firmware", filepath.Join(dir, "nope")}, "firmware: open"},
		{"ELF segment outside RAM", []string{"--kernel", high, "--memory", "size=512M"},
			"kernel " + high + ": ELF segment 0 at 0x80000000-0x80000010 is outside guest RAM (0x0-0x20000000)"},
		{"ELF segment on the zero page", []string{"--firmware", low}, "firmware " + low + ": ELF segment 0 at 0x7000-0x7010 overlaps the first MiB"},
	} {
		var stderr bytes.Buffer
		code := run(c.args, time.Now(), strings.NewReader(""), &bytes.Buffer{}, &stderr)
		if code == exitFailure && strings.Contains(stderr.String(), "KVM") {
			t.Skipf("%s: no usable KVM here: %s", c.name, stderr.String())
		}
		if code != exitUsage {
			t.Errorf("%s: exit %d, want %d; stderr:\n%s", c.name, code, exitUsage, stderr.String())
		}
		if !strings.Contains(stderr.String(), c.want) || strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
			t.Errorf("%s: stderr %q, want one line with %q", c.name, stderr.String(), c.want)
		}
	}
}

func TestParseTakesTheVirtioTransportPCIByDefault(t *testing.T) {
	for _, c := range []struct {
		args []string
		want vm.VirtioTransport
	}{
		{[]string{"--kernel", "k"}, vm.TransportPCI},
		{[]string{"--kernel", "k", "--virtio-transport", "mmio"}, vm.TransportMMIO},
		{[]string{"--kernel", "k", "--virtio-transport=pci"}, vm.TransportPCI},
	} {
		_, o, err := parse(c.args, &bytes.Buffer{})
		if err != nil || o.transport != c.want {
			t.Errorf("%v: transport %q, %v; want %q", c.args, o.transport, err, c.want)
		}
	}
}
