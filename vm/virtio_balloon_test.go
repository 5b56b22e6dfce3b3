package vm

import (
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
