package vm

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/vmmdev/vmm/vm/config"
)

func TestPlanResizeOfTheBalloon(t *testing.T) {
	withBalloon := config.VM{CPUs: config.CPUs{BootVCPUs: 1, MaxVCPUs: 1},
		Memory:  config.Memory{Size: config.GiB, HotplugMethod: config.HotplugVirtioMem, HotplugSize: 4 * config.GiB},
		Balloon: &config.Balloon{Size: 256 * config.MiB}}
	running := ramState{running: true, current: config.GiB}
	i := func(n int64) *int64 { return &n }
	for _, tc := range []struct {
		name    string
		cfg     config.VM
		req     ResizeRequest
		balloon uint64
		set     bool
		invalid string
	}{
		{"inflate", withBalloon, ResizeRequest{DesiredBalloon: i(512 << 20)}, 512 << 20, true, ""},
		{"deflate", withBalloon, ResizeRequest{DesiredBalloon: i(0)}, 0, true, ""},
		{"the same size", withBalloon, ResizeRequest{DesiredBalloon: i(256 << 20)}, 256 << 20, false, ""},
		{"as large as RAM", withBalloon, ResizeRequest{DesiredBalloon: i(1 << 30)}, 0, false, textBalloonTooBig},
		{"within the RAM the same request plugs", withBalloon, ResizeRequest{DesiredRAM: i(3 << 30), DesiredBalloon: i(2 << 30)}, 2 << 30, true, ""},
		{"negative", withBalloon, ResizeRequest{DesiredBalloon: i(-1)}, 0, false, "must not be negative"},
		{"no balloon", config.VM{CPUs: withBalloon.CPUs, Memory: withBalloon.Memory}, ResizeRequest{DesiredBalloon: i(0)}, 0, false, textNoBalloon},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := planResize(tc.cfg, running, tc.req)
			if tc.invalid != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.invalid) {
					t.Fatalf("err = %v, want ErrInvalid saying %q", err, tc.invalid)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.setBalloon != tc.set || p.balloon != tc.balloon {
				t.Errorf("plan %+v, want balloon %d (set %v)", p, tc.balloon, tc.set)
			}
		})
	}
}

// A machine with a balloon places it last as __balloon, asking for
// balloon.size from the start.
func TestMachinePlacesTheBalloon(t *testing.T) {
	kernel, _ := cachedGuest(t)
	deps := testMachineDeps(t)
	deps.transport = TransportPCI
	cfg := config.Default()
	cfg.Payload.Kernel = kernel
	cfg.Memory = config.Memory{Size: 512 * config.MiB, HotplugMethod: config.HotplugVirtioMem, HotplugSize: config.GiB}
	cfg.Balloon = &config.Balloon{Size: 128 * config.MiB, FreePageReporting: true}
	m, err := newMachine(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	vd := m.virtio[len(m.virtio)-1]
	if m.balloon == nil || vd.p.id != balloonID || vd.t.Device().Kind() != "virtio-balloon" || m.virtio[len(m.virtio)-2].p.kind != kindMem {
		t.Fatalf("last virtio devices %s, %s %s; want virtio-mem, then the balloon", m.virtio[len(m.virtio)-2].p, vd.t.Device().Kind(), vd.p.id)
	}
	if got := m.balloon.Target(); got != 128*config.MiB {
		t.Errorf("target %d, want balloon.size", got)
	}
	if got := m.balloonActual(); got != 0 {
		t.Errorf("actual %d before the driver inflated anything", got)
	}
}

// Through the VMM, on this host's KVM (whether or not the guest gets far):
// desired_ram and desired_balloon reach the devices of the running
// machine and the configuration, vm.info reports what the drivers reached
// (nothing, without them), and a reboot's machine starts from the
// configuration.
func TestVMMResizesVirtioMemAndTheBalloon(t *testing.T) {
	kernel, initramfs := cachedGuest(t)
	v := newTestVMM(t)
	cfg := config.Default()
	cfg.Payload = config.Payload{Kernel: kernel, Initramfs: initramfs, Cmdline: "console=ttyS0"}
	cfg.Memory = config.Memory{Size: 512 * config.MiB, HotplugMethod: config.HotplugVirtioMem, HotplugSize: 2 * config.GiB}
	cfg.Balloon = &config.Balloon{}
	cfg.Serial.Mode = config.ModeNull
	if err := v.Create(cfg); err != nil {
		t.Fatal(err)
	}
	i := func(n int64) *int64 { return &n }
	ctx := context.Background()
	// Before the boot: the configuration only.
	if err := v.Resize(ctx, ResizeRequest{DesiredRAM: i(config.GiB)}); err != nil {
		t.Fatal(err)
	}
	if info, _ := v.Info(); info.Config.Memory.HotpluggedSize != 512*config.MiB || info.MemoryActualSize != config.GiB {
		t.Errorf("before the boot: hotplugged_size %d, memory_actual_size %d", info.Config.Memory.HotpluggedSize, info.MemoryActualSize)
	}
	if err := v.Boot(); err != nil {
		t.Fatal(err)
	}
	v.mu.Lock()
	requested := v.m.vmem.Requested()
	v.mu.Unlock()
	if requested != 512*config.MiB {
		t.Errorf("the booted device asks for %d, want hotplugged_size", requested)
	}
	if err := v.Resize(ctx, ResizeRequest{DesiredRAM: i(2 * config.GiB), DesiredBalloon: i(256 * config.MiB)}); err != nil {
		t.Fatal(err)
	}
	if err := v.Resize(ctx, ResizeRequest{DesiredRAM: i(256 * config.MiB)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("below the boot RAM: %v, want ErrInvalid", err)
	}
	v.mu.Lock()
	requested, target := v.m.vmem.Requested(), v.m.balloon.Target()
	v.mu.Unlock()
	if requested != 1536*config.MiB || target != 256*config.MiB {
		t.Errorf("virtio-mem asks for %d, the balloon for %d", requested, target)
	}
	info, err := v.Info()
	if err != nil {
		t.Fatal(err)
	}
	// Nothing plugged or inflated yet (the guest may not even run here).
	if info.BalloonActualSize == nil || info.Config.Memory.HotpluggedSize != 1536*config.MiB || info.Config.Balloon.Size != 256*config.MiB {
		t.Errorf("vm.info: balloon_actual_size %v, hotplugged_size %d, balloon.size %d", info.BalloonActualSize, info.Config.Memory.HotpluggedSize, info.Config.Balloon.Size)
	}
	if err := v.Reboot(); err != nil {
		t.Fatal(err)
	}
	v.mu.Lock()
	requested, target = v.m.vmem.Requested(), v.m.balloon.Target()
	v.mu.Unlock()
	if requested != 1536*config.MiB || target != 256*config.MiB {
		t.Errorf("after the reboot virtio-mem asks for %d, the balloon for %d", requested, target)
	}
}
