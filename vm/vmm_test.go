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
	if err := v.Boot(); !errors.Is(err, ErrNoVM) {
		t.Errorf("Boot before Create: %v", err)
	}
	cfg := config.Default()
	cfg.Payload = config.Payload{Kernel: kernel, Initramfs: initramfs, Cmdline: "console=ttyS0"}
	cfg.CPUs = config.CPUs{BootVCPUs: 2, MaxVCPUs: 4}
	cfg.Serial.Mode = config.ModeNull
	if err := v.Create(cfg); err != nil {
		t.Fatal(err)
	}
	if err := v.Create(cfg); !errors.Is(err, ErrState) {
		t.Errorf("second Create: %v, want ErrState", err)
	}
	steps := []struct {
		name string
		op   func() error
		want State
		err  error
	}{
		{"pause before boot", v.Pause, StateCreated, ErrState},
		{"boot", v.Boot, StateRunning, nil},
		{"boot again", v.Boot, StateRunning, ErrState},
		{"pause", v.Pause, StatePaused, nil},
		{"pause again", v.Pause, StatePaused, ErrState},
		{"resume", v.Resume, StateRunning, nil},
		{"reboot", v.Reboot, StateRunning, nil},
		{"resize", func() error { return v.Resize(context.Background(), ResizeRequest{}) }, StateRunning, ErrInvalid},
		{"shutdown", v.Shutdown, StateShutdown, nil},
		{"resume after shutdown", v.Resume, StateShutdown, ErrState},
		{"boot after shutdown", v.Boot, StateRunning, nil},
	}
	for _, s := range steps {
		err := s.op()
		if s.err == nil && err != nil || s.err != nil && !errors.Is(err, s.err) {
			t.Fatalf("%s: %v, want %v", s.name, err, s.err)
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
