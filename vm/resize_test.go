package vm

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vmmdev/vmm/vm/config"
)

func TestPlanResizeWithNoFreeMemorySlotRefusesRAM(t *testing.T) {
	cfg := config.VM{CPUs: config.CPUs{BootVCPUs: 1, MaxVCPUs: 1}, Memory: config.Memory{Size: config.GiB, HotplugSize: config.GiB}}
	n := int64(config.GiB + 128*config.MiB)
	ram := ramState{running: true, current: config.GiB, limit: 2 * config.GiB, space: config.GiB}
	_, err := planResize(cfg, ram, ResizeRequest{DesiredRAM: &n})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), textNoACPISlot) {
		t.Fatalf("err = %v, want ErrInvalid saying %q", err, textNoACPISlot)
	}
}

func TestLayoutRAMKeepsTheLimit(t *testing.T) {
	for _, tc := range []struct {
		name              string
		size, hp, bootRAM uint64
		wantSize, wantHP  uint64
	}{
		{"grown RAM becomes boot RAM", 3 * config.GiB, 8 * config.GiB, config.GiB, 3 * config.GiB, 6 * config.GiB},
		{"shrunk RAM frees the hot plug space", config.GiB, 6 * config.GiB, 3 * config.GiB, config.GiB, 8 * config.GiB},
		{"RAM past the limit leaves no hot plug space", 4 * config.GiB, config.GiB, config.GiB, 4 * config.GiB, 0},
		{"an odd hot plug space keeps its whole blocks", 2 * config.GiB, config.GiB + 64*config.MiB, config.GiB, 2 * config.GiB, 0},
		{"nothing changed changes nothing", config.GiB, config.GiB + 64*config.MiB, config.GiB, config.GiB, config.GiB + 64*config.MiB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := &VMM{cfg: &config.VM{Memory: config.Memory{Size: tc.size, HotplugSize: tc.hp}}, bootRAM: tc.bootRAM}
			v.layoutRAMLocked()
			if got := v.cfg.Memory; got.Size != tc.wantSize || got.HotplugSize != tc.wantHP || v.bootRAM != tc.wantSize {
				t.Errorf("memory = size %d, hotplug_size %d (bootRAM %d), want size %d, hotplug_size %d", got.Size, got.HotplugSize, v.bootRAM, tc.wantSize, tc.wantHP)
			}
		})
	}
}

func TestPlanResizeValidatesTheWholeRequest(t *testing.T) {
	cfg := config.VM{CPUs: config.CPUs{BootVCPUs: 4, MaxVCPUs: 8}, Memory: config.Memory{Size: config.GiB, HotplugSize: 8 * config.GiB}}
	running := ramState{running: true, current: config.GiB, limit: 9 * config.GiB, space: 8 * config.GiB, freeSlots: 64}
	stopped := ramState{current: config.GiB}
	i := func(n int64) *int64 { return &n }
	for _, tc := range []struct {
		name    string
		ram     ramState
		req     ResizeRequest
		vcpus   int
		newRAM  uint64
		addRAM  uint64
		invalid string // a part of the error, "" for none
	}{
		{"grow to max", running, ResizeRequest{DesiredVCPUs: i(8)}, 8, 0, 0, ""},
		{"shrink to one", running, ResizeRequest{DesiredVCPUs: i(1)}, 1, 0, 0, ""},
		{"same count is a no-op", running, ResizeRequest{DesiredVCPUs: i(4)}, 0, 0, 0, ""},
		{"zero vCPUs refused", running, ResizeRequest{DesiredVCPUs: i(0)}, 0, 0, 0, textZeroVCPUs},
		{"negative vCPUs refused", running, ResizeRequest{DesiredVCPUs: i(-1)}, 0, 0, 0, "desired_vcpus=-1"},
		{"above max refused", running, ResizeRequest{DesiredVCPUs: i(9)}, 0, 0, 0, textVCPUsAboveMax},
		{"empty request refused", running, ResizeRequest{}, 0, 0, 0, "asks for nothing"},
		{"same RAM is a no-op", running, ResizeRequest{DesiredRAM: i(config.GiB)}, 0, 0, 0, ""},
		{"zero RAM refused", running, ResizeRequest{DesiredRAM: i(0)}, 0, 0, 0, "desired_ram=0"},
		{"grow RAM hot-adds the difference", running, ResizeRequest{DesiredRAM: i(3 * config.GiB)}, 0, 3 * config.GiB, 2 * config.GiB, ""},
		{"grow RAM by one block", running, ResizeRequest{DesiredRAM: i(config.GiB + 128*config.MiB)}, 0, config.GiB + 128*config.MiB, 128 * config.MiB, ""},
		{"grow RAM to exactly size+hotplug_size", running, ResizeRequest{DesiredRAM: i(9 * config.GiB)}, 0, 9 * config.GiB, 8 * config.GiB, ""},
		{"grow RAM one block past the limit refused", running, ResizeRequest{DesiredRAM: i(9*config.GiB + 128*config.MiB)}, 0, 0, 0, textNoHotplugSpace},
		{"grow RAM not by 128 MiB blocks refused", running, ResizeRequest{DesiredRAM: i(config.GiB + 64*config.MiB)}, 0, 0, 0, textInvalidRAMSize},
		{"grow RAM without hot plug space refused", ramState{running: true, current: config.GiB, limit: config.GiB}, ResizeRequest{DesiredRAM: i(2 * config.GiB)}, 0, 0, 0, "no hot plug space"},
		{"shrink RAM sets the size for the next boot", running, ResizeRequest{DesiredRAM: i(512 * config.MiB)}, 0, 512 * config.MiB, 0, ""},
		{"shrink RAM below the minimum refused", running, ResizeRequest{DesiredRAM: i(config.MiB)}, 0, 0, 0, "at least 64 MiB"},
		{"vCPUs and RAM together", running, ResizeRequest{DesiredVCPUs: i(8), DesiredRAM: i(2 * config.GiB)}, 8, 2 * config.GiB, config.GiB, ""},
		{"valid vCPUs with negative RAM refused whole", running, ResizeRequest{DesiredVCPUs: i(6), DesiredRAM: i(-5)}, 0, 0, 0, "desired_ram=-5"},
		{"valid vCPUs with too much RAM refused whole", running, ResizeRequest{DesiredVCPUs: i(6), DesiredRAM: i(10 * config.GiB)}, 0, 0, 0, textNoHotplugSpace},
		{"balloon refused", running, ResizeRequest{DesiredBalloon: i(0)}, 0, 0, 0, textNoBalloon},
		// Without a running guest a resize changes the configuration only:
		// no hot plug checks, as Cloud Hypervisor.
		{"stopped: more RAM is the next boot's", stopped, ResizeRequest{DesiredRAM: i(3 * config.GiB)}, 0, 3 * config.GiB, 0, ""},
		{"stopped: RAM beyond the hot plug space too", stopped, ResizeRequest{DesiredRAM: i(20 * config.GiB)}, 0, 20 * config.GiB, 0, ""},
		{"stopped: RAM not in 128 MiB blocks too", stopped, ResizeRequest{DesiredRAM: i(config.GiB + 4096)}, 0, config.GiB + 4096, 0, ""},
		{"stopped: less RAM", stopped, ResizeRequest{DesiredRAM: i(512 * config.MiB)}, 0, 512 * config.MiB, 0, ""},
		{"stopped: RAM below the minimum refused", stopped, ResizeRequest{DesiredRAM: i(32 * config.MiB)}, 0, 0, 0, "at least 64 MiB"},
		{"stopped: vCPUs", stopped, ResizeRequest{DesiredVCPUs: i(6)}, 6, 0, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := planResize(cfg, tc.ram, tc.req)
			if tc.invalid != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.invalid) {
					t.Fatalf("err = %v, want ErrInvalid saying %q", err, tc.invalid)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if p.vcpus != tc.vcpus || p.ram != tc.newRAM || p.addRAM != tc.addRAM {
				t.Errorf("plan = %+v, want vcpus %d, ram %d, addRAM %d", p, tc.vcpus, tc.newRAM, tc.addRAM)
			}
		})
	}
}

// A lowered RAM size is cancelled by asking for the RAM the guest has:
// memory.size goes back to it.
func TestPlanResizeCancelsALoweredSizeWithTheCurrentOne(t *testing.T) {
	cfg := config.VM{CPUs: config.CPUs{BootVCPUs: 1, MaxVCPUs: 1}, Memory: config.Memory{Size: 512 * config.MiB, HotplugSize: 8 * config.GiB}}
	ram := ramState{running: true, current: 2 * config.GiB, limit: 9 * config.GiB, space: 8 * config.GiB, freeSlots: 8}
	n := int64(2 * config.GiB)
	p, err := planResize(cfg, ram, ResizeRequest{DesiredRAM: &n})
	if err != nil || p.ram != 2*config.GiB || p.addRAM != 0 {
		t.Errorf("plan = %+v, %v; want memory.size back to 2 GiB and nothing hot-added", p, err)
	}
}

func TestEjectOverdueIsBusyUntilTheTimeoutThenLetsTheResizeWithdraw(t *testing.T) {
	for _, tc := range []struct {
		waited time.Duration
		busy   bool
	}{
		{0, true},
		{DefaultEjectTimeout - time.Millisecond, true},
		{DefaultEjectTimeout, false},
		{time.Hour, false},
	} {
		err := ejectOverdue(tc.waited, DefaultEjectTimeout)
		if got := errors.Is(err, ErrBusy); got != tc.busy {
			t.Errorf("waited %s: err %v, want busy=%v", tc.waited, err, tc.busy)
		}
	}
}
