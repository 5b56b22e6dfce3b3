package vm

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/vmmdev/vmm/vm/config"
	"golang.org/x/sys/unix"
)

// cachedGuest returns the harness's cached guest kernel and initramfs.
func cachedGuest(t *testing.T) (kernel, initramfs string) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", ".cache", "guest")
	kernel, initramfs = filepath.Join(dir, "bzImage"), filepath.Join(dir, "initramfs.cpio.gz")
	if _, err := os.Stat(kernel); err != nil {
		t.Skipf("no cached guest kernel: %v", err)
	}
	return kernel, initramfs
}

func newTestVMM(t *testing.T) *VMM {
	t.Helper()
	v, err := New(Options{Log: nopLogger(), Stdin: strings.NewReader(""), Stdout: io.Discard})
	if err != nil {
		t.Skipf("no usable KVM: %v", err)
	}
	t.Cleanup(func() { v.Stop() })
	return v
}

// The development machine's KVM may not run the guest, but the lifecycle
// (threads, memory, teardown) works the same.
func TestVMMLifecycleFollowsCloudHypervisorStates(t *testing.T) {
	kernel, initramfs := cachedGuest(t)
	v := newTestVMM(t)
	if _, err := v.Info(); !errors.Is(err, ErrNoVM) {
		t.Fatalf("Info before Create: %v, want ErrNoVM", err)
	}
	if err := v.Boot(); !errors.Is(err, ErrNoVM) || err.Error() != "VM is not created" {
		t.Errorf("Boot before Create: %v", err)
	}
	if err := v.Delete(); err != nil {
		t.Errorf("Delete without a VM: %v, want nothing done, as Cloud Hypervisor", err)
	}
	cfg := config.Default()
	cfg.Payload = config.Payload{Kernel: kernel, Initramfs: initramfs, Cmdline: "console=ttyS0"}
	cfg.CPUs = config.CPUs{BootVCPUs: 2, MaxVCPUs: 4}
	cfg.Serial.Mode = config.ModeNull
	if err := v.Create(cfg); err != nil {
		t.Fatal(err)
	}
	if err := v.Create(cfg); !errors.Is(err, ErrState) || err.Error() != "VM is already created" {
		t.Errorf("second Create: %v, want ErrState saying VM is already created", err)
	}
	steps := []struct {
		name string
		op   func() error
		want State
		err  error
		msg  string // the error's text, Cloud Hypervisor's
	}{
		{"pause before boot", v.Pause, StateCreated, ErrState, "VM is not running"},
		{"boot", v.Boot, StateRunning, nil, ""},
		{"boot again", v.Boot, StateRunning, ErrState, "invalid VM state transition: Running to Running"},
		{"pause", v.Pause, StatePaused, nil, ""},
		{"pause again", v.Pause, StatePaused, ErrState, "invalid VM state transition: Paused to Paused"},
		{"resize while paused", func() error { return v.Resize(context.Background(), ResizeRequest{}) }, StatePaused, ErrState, "the VM is paused: resume it to resize it"},
		{"resume", v.Resume, StateRunning, nil, ""},
		{"reboot", v.Reboot, StateRunning, nil, ""},
		{"resize", func() error { return v.Resize(context.Background(), ResizeRequest{}) }, StateRunning, ErrInvalid, ""},
		{"shutdown", v.Shutdown, StateShutdown, nil, ""},
		{"resume after shutdown", v.Resume, StateShutdown, ErrState, "VM is not running"},
		{"boot after shutdown", v.Boot, StateRunning, nil, ""},
	}
	for _, s := range steps {
		err := s.op()
		if s.err == nil && err != nil || s.err != nil && !errors.Is(err, s.err) {
			t.Fatalf("%s: %v, want %v", s.name, err, s.err)
		}
		if s.msg != "" && err.Error() != s.msg {
			t.Errorf("%s: %q, want %q", s.name, err, s.msg)
		}
		info, err := v.Info()
		if err != nil || info.State != s.want {
			t.Fatalf("%s: state %s (%v), want %s", s.name, info.State, err, s.want)
		}
		if s.want == StateRunning && (info.ActiveVCPUs != 2 || info.MemoryActualSize != cfg.Memory.Size) {
			t.Errorf("%s: info %+v", s.name, info)
		}
	}
	if err := v.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Info(); !errors.Is(err, ErrNoVM) {
		t.Errorf("Info after Delete: %v", err)
	}
	if err := v.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := v.Wait(); err != nil {
		t.Errorf("Wait after Stop: %v", err)
	}
}

func TestVMMCreateRefusesWhatItCannotBuild(t *testing.T) {
	kernel, _ := cachedGuest(t)
	v := newTestVMM(t)
	garbage := filepath.Join(t.TempDir(), "garbage")
	if err := os.WriteFile(garbage, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	// Opened, a named pipe without a writer would block the check.
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	base := config.Default()
	base.Payload.Kernel = kernel
	for _, c := range []struct {
		name string
		edit func(*config.VM)
		want string
	}{
		{"no kernel", func(c *config.VM) { c.Payload.Kernel = "" }, "no kernel"},
		{"missing kernel", func(c *config.VM) { c.Payload.Kernel = garbage + ".nope" }, "no such file"},
		{"garbage kernel", func(c *config.VM) { c.Payload.Kernel = garbage }, "not a bzImage"},
		{"a directory as kernel", func(c *config.VM) { c.Payload.Kernel = filepath.Dir(garbage) }, "not a regular file"},
		{"a named pipe as initramfs", func(c *config.VM) { c.Payload.Initramfs = fifo }, "not a regular file"},
		{"a kernel and a firmware", func(c *config.VM) { c.Payload.Firmware = kernel }, "not both"},
		{"a bzImage as firmware", func(c *config.VM) { c.Payload.Kernel, c.Payload.Firmware = "", kernel }, "a bzImage, not a PVH ELF firmware"},
		{"missing initramfs", func(c *config.VM) { c.Payload.Initramfs = garbage + ".nope" }, "initramfs"},
		{"too many vCPUs for the MADT", func(c *config.VM) { c.CPUs = config.CPUs{BootVCPUs: 1, MaxVCPUs: 300} }, "max=300"},
		{"a missing disk", func(c *config.VM) { c.Disks = []config.Disk{{Path: garbage + ".nope"}} }, "disk " + garbage + ".nope: no such file"},
		{"more virtio devices than a PCI bus takes", func(c *config.VM) {
			c.Disks = slices.Repeat([]config.Disk{{Path: garbage}}, 31)
			c.RNG = &config.RNG{}
		}, "PCI segment 0 is full: at most 31 devices fit"},
	} {
		cfg := base
		c.edit(&cfg)
		err := v.Create(cfg)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "invalid request") {
			t.Errorf("%s: %v, want ErrInvalid saying %q", c.name, err, c.want)
		}
	}
}

// RAM resizes follow Cloud Hypervisor's ACPI hot plug: memory.size is the
// size asked for at once (more is hot-added, less waits for the next boot,
// the current size cancels a lower one), and without a running guest a
// resize only changes the configuration, whatever the hot plug slots.
func TestVMMResizeRAMSetsMemorySizeAtOnce(t *testing.T) {
	kernel, initramfs := cachedGuest(t)
	v := newTestVMM(t)
	cfg := config.Default()
	cfg.Payload = config.Payload{Kernel: kernel, Initramfs: initramfs, Cmdline: "console=ttyS0"}
	cfg.Memory = config.Memory{Size: config.GiB, HotplugSize: 4*config.GiB + 64*config.MiB}
	cfg.Serial.Mode = config.ModeNull
	if err := v.Create(cfg); err != nil {
		t.Fatal(err)
	}
	ram := func(n uint64) ResizeRequest { b := int64(n); return ResizeRequest{DesiredRAM: &b} }
	expect := func(step string, size, hotplug, actual uint64) {
		t.Helper()
		info, err := v.Info()
		if err != nil {
			t.Fatal(err)
		}
		if m := info.Config.Memory; m.Size != size || m.HotplugSize != hotplug || info.MemoryActualSize != actual {
			t.Errorf("%s: memory.size %d, hotplug_size %d, actual %d; want %d, %d, %d", step, m.Size, m.HotplugSize, info.MemoryActualSize, size, hotplug, actual)
		}
	}
	resize := func(step string, n uint64) {
		t.Helper()
		if err := v.Resize(context.Background(), ram(n)); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	resize("more RAM before the first boot", 2*config.GiB)
	expect("before the first boot", 2*config.GiB, 4*config.GiB+64*config.MiB, 2*config.GiB)
	if err := v.Boot(); err != nil {
		t.Fatal(err)
	}
	// The limit, 1 GiB + 4 GiB, stays: the boot took 1 GiB of the space.
	expect("booted", 2*config.GiB, 3*config.GiB, 2*config.GiB)
	resize("hot add", 3*config.GiB)
	expect("after a hot add", 3*config.GiB, 3*config.GiB, 3*config.GiB)
	resize("less RAM", 2*config.GiB)
	expect("after a decrease", 2*config.GiB, 3*config.GiB, 3*config.GiB)
	resize("the current RAM", 3*config.GiB)
	expect("after the decrease was cancelled", 3*config.GiB, 3*config.GiB, 3*config.GiB)
	if err := v.Resize(context.Background(), ram(6*config.GiB)); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "Not enough space in the hotplug RAM region") {
		t.Errorf("past the hot plug space: %v", err)
	}
	if err := v.Shutdown(); err != nil {
		t.Fatal(err)
	}
	resize("more RAM after a shutdown", 4*config.GiB)
	expect("shut down", 4*config.GiB, 3*config.GiB, 4*config.GiB)
	if err := v.Boot(); err != nil {
		t.Fatal(err)
	}
	expect("booted again", 4*config.GiB, config.GiB, 4*config.GiB)
}

// The body Kata Containers' Cloud Hypervisor driver sends is taken as it
// is (but for its files), and the VM boots from it.
func TestVMMTakesKataContainersBody(t *testing.T) {
	kernel, initramfs := cachedGuest(t)
	v := newTestVMM(t)
	data, err := os.ReadFile("../e2e/testdata/kata-vm-create.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Payload.Kernel, cfg.Payload.Initramfs = kernel, initramfs
	if err := v.Create(cfg); err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := v.Boot(); err != nil {
		t.Fatalf("boot: %v", err)
	}
	info, err := v.Info()
	if err != nil {
		t.Fatal(err)
	}
	c := info.Config
	if c.CPUs.BootVCPUs != 4 || c.CPUs.MaxVCPUs != 8 || c.CPUs.Topology == nil || c.CPUs.Topology.CoresPerDie != 8 ||
		c.Platform == nil || c.Platform.NumPCISegments != 2 || c.RNG == nil || info.ActiveVCPUs != 4 || info.State != StateRunning {
		t.Errorf("info %+v", info)
	}
}
