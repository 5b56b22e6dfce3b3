package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/api"
	"github.com/vmmdev/vmm/vm/boot/boottest"
	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/seccomp"
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
		{"vsock", []string{"--kernel", "k", "--vsock", "cid=3,socket=/tmp/v.sock"}, func(c config.VM) bool {
			return c.Vsock != nil && *c.Vsock == config.Vsock{CID: 3, Socket: "/tmp/v.sock"}
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
		{"bad balloon", []string{"--kernel", "k", "--balloon", "size=1G,inflate=on"}, "--balloon: Unknown option: inflate"},
		{"bad hotplug method", []string{"--kernel", "k", "--memory", "size=1G,hotplug_method=dimm"}, "unknown value (known: acpi, virtio-mem)"},
		{"special vsock cid", []string{"--kernel", "k", "--vsock", "cid=2,socket=/tmp/v.sock"}, "2 is a special VSOCK CID"},
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
		// The test process stays unfiltered: a case that gets past the
		// command line would install the filters in it.
		code := run(append(c.args, "--seccomp", "false"), time.Now(), strings.NewReader(""), &bytes.Buffer{}, &stderr)
		if code == exitFailure && strings.Contains(stderr.String(), "KVM") {
			t.Skipf("%s: no usable KVM here: %s", c.name, stderr.String())
		}
		if code != exitUsage {
			t.Errorf("%s: exit %d, want %d; stderr:\n%s", c.name, code, exitUsage, stderr.String())
		}
		first, usage, _ := strings.Cut(stderr.String(), "\n")
		if c.name == "unknown flag" && !strings.Contains(usage, "Usage: vmm") {
			t.Errorf("%s: no usage after the message: %q", c.name, stderr.String())
		}
		if c.name == "unknown flag" {
			continue
		}
		if !strings.Contains(first, c.want) || strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
			t.Errorf("%s: stderr %q, want one line with %q", c.name, stderr.String(), c.want)
		}
	}
}

func TestParseTakesCloudHypervisorsLauncherFlags(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want func(config.VM, options) bool
		err  string
	}{
		{"-v", []string{"--api-socket", "/s", "-v"}, func(_ config.VM, o options) bool { return o.verbosity == 1 }, ""},
		{"-vv", []string{"--api-socket", "/s", "-vv"}, func(_ config.VM, o options) bool { return o.verbosity == 2 }, ""},
		{"-v -v -v", []string{"--api-socket", "/s", "-v", "-v", "-v"}, func(_ config.VM, o options) bool { return o.verbosity == 3 }, ""},
		{"-vvv", []string{"--api-socket", "/s", "-vvv"}, func(_ config.VM, o options) bool { return o.verbosity == 3 }, ""},
		{"log file", []string{"--api-socket", "/s", "--log-file", "/l"}, func(_ config.VM, o options) bool { return o.logFile == "/l" }, ""},
		{"seccomp false", []string{"--api-socket", "/s", "--seccomp", "false"}, func(_ config.VM, o options) bool { return o.seccomp == seccomp.Off }, ""},
		{"seccomp default", []string{"--api-socket", "/s"}, func(_ config.VM, o options) bool { return o.seccomp == seccomp.Kill }, ""},
		{"seccomp true", []string{"--api-socket", "/s", "--seccomp", "true"}, func(_ config.VM, o options) bool { return o.seccomp == seccomp.Kill }, ""},
		{"seccomp log", []string{"--api-socket", "/s", "--seccomp=log"}, func(_ config.VM, o options) bool { return o.seccomp == seccomp.Log }, ""},
		{"seccomp errno", []string{"--api-socket", "/s", "--seccomp=errno"}, nil, `--seccomp "errno"`},
		{"landlock", []string{"--kernel", "k", "--landlock"}, func(c config.VM, _ options) bool { return c.LandlockEnable && len(c.LandlockRules) == 0 }, ""},
		{"landlock rules", []string{"--kernel", "k", "--landlock", "--landlock-rules", "path=/a,access=rw", "path=/b,access=r", "--cpus", "boot=1"},
			func(c config.VM, _ options) bool {
				return len(c.LandlockRules) == 2 && c.LandlockRules[0] == config.LandlockRule{Path: "/a", Access: "rw"} &&
					c.LandlockRules[1] == config.LandlockRule{Path: "/b", Access: "r"}
			}, ""},
		{"landlock rules repeated", []string{"--kernel", "k", "--landlock-rules", "path=/a,access=w", "--landlock-rules=path=/b,access=rw"},
			func(c config.VM, _ options) bool { return len(c.LandlockRules) == 2 && c.LandlockRules[1].Path == "/b" }, ""},
		{"landlock rule without access", []string{"--kernel", "k", "--landlock-rules", "path=/a"}, nil, "path/access field missing"},
		{"seccomp nonsense", []string{"--api-socket", "/s", "--seccomp=maybe"}, nil, `--seccomp "maybe"`},
		{"api socket path=", []string{"--api-socket", "path=/run/a.sock"}, func(_ config.VM, o options) bool { return o.apiSocket == "/run/a.sock" }, ""},
		{"api socket fd=", []string{"--api-socket", "fd=3"}, func(_ config.VM, o options) bool { return o.apiSocketFD == 3 && o.apiSocket == "" }, ""},
		{"api socket bad fd", []string{"--api-socket", "fd=x"}, nil, "--api-socket fd=x"},
		{"event monitor path=", []string{"--api-socket", "/s", "--event-monitor", "path=/e.json"},
			func(_ config.VM, o options) bool { return o.eventMonitor == "/e.json" }, ""},
		{"event monitor fd=", []string{"--api-socket", "/s", "--event-monitor", "fd=4"}, func(_ config.VM, o options) bool { return o.eventFD == 4 }, ""},
		{"event monitor bare", []string{"--api-socket", "/s", "--event-monitor", "/e.json"}, nil, "Error parsing --event-monitor: path or fd required"},
		{"topology", []string{"--kernel", "k", "--cpus", "boot=4,max=8,topology=2:2:1:2"},
			func(c config.VM, _ options) bool { return c.CPUs.Topology != nil && c.CPUs.Topology.Packages == 2 }, ""},
		{"memory keys", []string{"--kernel", "k", "--memory", "size=1G,shared=on,prefault=on,mergeable=on"},
			func(c config.VM, _ options) bool { return c.Memory.Shared && c.Memory.Prefault && c.Memory.Mergeable }, ""},
		{"serial pty", []string{"--kernel", "k", "--serial", "pty"}, func(c config.VM, _ options) bool { return c.Serial.Mode == config.ModePty }, ""},
		{"serial socket", []string{"--kernel", "k", "--serial", "socket=/s.sock"},
			func(c config.VM, _ options) bool {
				return c.Serial.Mode == config.ModeSocket && c.Serial.Socket == "/s.sock"
			}, ""},
		{"console file", []string{"--kernel", "k", "--console", "file=/c.log"},
			func(c config.VM, _ options) bool {
				return c.Console.Mode == config.ModeFile && c.Console.File == "/c.log"
			}, ""},
		{"platform", []string{"--kernel", "k", "--platform", "num_pci_segments=2"},
			func(c config.VM, _ options) bool { return c.Platform != nil && c.Platform.NumPCISegments == 2 }, ""},
		{"disk keys", []string{"--kernel", "k", "--disk", "path=/d,direct=on,id=root,image_type=raw"},
			func(c config.VM, _ options) bool {
				return len(c.Disks) == 1 && c.Disks[0].Direct && c.Disks[0].ID == "root"
			}, ""},
		{"rng keys", []string{"--kernel", "k", "--rng", "src=/dev/hwrng,id=r0"},
			func(c config.VM, _ options) bool { return c.RNG != nil && c.RNG.ID == "r0" }, ""},
		{"unknown cpus key", []string{"--kernel", "k", "--cpus", "boot=1,threads=2"}, nil, "--cpus: Unknown option: threads"},
		{"balloon keys", []string{"--kernel", "k", "--balloon", "size=1G,deflate_on_oom=on,id=b0,pci_segment=0"},
			func(c config.VM, _ options) bool {
				return c.Balloon != nil && c.Balloon.Size == 1<<30 && c.Balloon.DeflateOnOOM && c.Balloon.ID == "b0"
			}, ""},
		{"a pmem", []string{"--kernel", "k", "--pmem", "file=/p"}, nil, "--pmem: not supported by vmm yet"},
		{"a watchdog", []string{"--kernel", "k", "--watchdog"}, nil, "--watchdog: not supported by vmm yet"},
	} {
		cfg, o, err := parse(c.args, &bytes.Buffer{})
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v, want %q", c.name, err, c.err)
			}
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		case !c.want(cfg, o):
			t.Errorf("%s: parsed %+v, %+v", c.name, cfg, o)
		}
	}
}

// TestEventMonitorWritesTheVMMsLifecycle starts vmm with only an API socket
// and --event-monitor, creates a VM through the API, deletes it and stops
// the VMM, and reads Cloud Hypervisor's events back.
func TestEventMonitorWritesTheVMMsLifecycle(t *testing.T) {
	dir, err := os.MkdirTemp("", "vmm-ev")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock, evPath := filepath.Join(dir, "api.sock"), filepath.Join(dir, "events.json")
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"--api-socket", "path=" + sock, "--event-monitor", "path=" + evPath, "--seccomp", "false"},
			time.Now(), strings.NewReader(""), &bytes.Buffer{}, &stderr)
	}()
	c := api.NewClient(sock)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if _, err := c.Ping(ctx); err == nil {
			break
		}
		select {
		case code := <-done:
			t.Skipf("vmm exited %d before serving (no usable KVM here?): %s", code, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	kernel := filepath.Join(dir, "k")
	if err := os.WriteFile(kernel, boottest.PVHELF(0x100_0000, make([]byte, 16)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Payload.Kernel = kernel
	cfg.Serial.Mode = config.ModeNull
	if err := c.Create(ctx, cfg); err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := c.Delete(ctx); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := c.ShutdownVMM(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if code := <-done; code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	data, err := os.ReadFile(evPath)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, part := range strings.Split(strings.TrimSpace(string(data)), "\n\n") {
		var ev struct{ Source, Event string }
		if err := json.Unmarshal([]byte(part), &ev); err != nil {
			t.Fatalf("event %q: %v", part, err)
		}
		got = append(got, ev.Source+" "+ev.Event)
	}
	want := []string{"vmm starting", "vm deleted", "vmm shutdown"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("events %q, want %q", got, want)
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
