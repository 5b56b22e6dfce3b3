package vm

import (
	"errors"
	"testing"
	"time"

	"github.com/vmmdev/vmm/vm/config"
)

func TestPlanResizeWithNoFreeMemorySlotRefusesRAM(t *testing.T) {
	cfg := config.VM{CPUs: config.CPUs{BootVCPUs: 1, MaxVCPUs: 1}, Memory: config.Memory{Size: config.GiB, HotplugSize: config.GiB}}
	n := int64(config.GiB + 128*config.MiB)
	if _, err := planResize(cfg, ramState{current: config.GiB, limit: 2 * config.GiB}, ResizeRequest{DesiredRAM: &n}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
}

func TestApplyNextRAMKeepsTheLimit(t *testing.T) {
	for _, tc := range []struct {
		name             string
		size, hp, next   uint64
		wantSize, wantHP uint64
	}{
		{"grown RAM becomes boot RAM", config.GiB, 8 * config.GiB, 3 * config.GiB, 3 * config.GiB, 6 * config.GiB},
		{"shrunk RAM frees the hot plug space", 3 * config.GiB, 6 * config.GiB, config.GiB, config.GiB, 8 * config.GiB},
		{"nothing stored changes nothing", config.GiB, config.GiB, 0, config.GiB, config.GiB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := &VMM{cfg: &config.VM{Memory: config.Memory{Size: tc.size, HotplugSize: tc.hp}}, nextRAM: tc.next}
			v.applyNextRAMLocked()
			if got := v.cfg.Memory; got.Size != tc.wantSize || got.HotplugSize != tc.wantHP || v.nextRAM != 0 {
				t.Errorf("memory = %+v (next %d), want size %d, hotplug_size %d", got, v.nextRAM, tc.wantSize, tc.wantHP)
			}
		})
	}
}

func TestPlanResizeValidatesTheWholeRequest(t *testing.T) {
	cfg := config.VM{CPUs: config.CPUs{BootVCPUs: 4, MaxVCPUs: 8}, Memory: config.Memory{Size: config.GiB, HotplugSize: 8 * config.GiB}}
	ram := ramState{current: config.GiB, limit: 9 * config.GiB, freeSlots: 64}
	i := func(n int64) *int64 { return &n }
	for _, tc := range []struct {
		name    string
		req     ResizeRequest
		vcpus   int
		addRAM  uint64
		nextRAM uint64
		invalid bool
	}{
		{"grow to max", ResizeRequest{DesiredVCPUs: i(8)}, 8, 0, 0, false},
		{"shrink to one", ResizeRequest{DesiredVCPUs: i(1)}, 1, 0, 0, false},
		{"same count is a no-op", ResizeRequest{DesiredVCPUs: i(4)}, 0, 0, 0, false},
		{"zero vCPUs refused", ResizeRequest{DesiredVCPUs: i(0)}, 0, 0, 0, true},
		{"negative vCPUs refused", ResizeRequest{DesiredVCPUs: i(-1)}, 0, 0, 0, true},
		{"above max refused", ResizeRequest{DesiredVCPUs: i(9)}, 0, 0, 0, true},
		{"empty request refused", ResizeRequest{}, 0, 0, 0, true},
		{"same RAM is a no-op", ResizeRequest{DesiredRAM: i(config.GiB)}, 0, 0, 0, false},
		{"zero RAM refused", ResizeRequest{DesiredRAM: i(0)}, 0, 0, 0, true},
		{"grow RAM hot-adds the difference", ResizeRequest{DesiredRAM: i(3 * config.GiB)}, 0, 2 * config.GiB, 0, false},
		{"grow RAM by one block", ResizeRequest{DesiredRAM: i(config.GiB + 128*config.MiB)}, 0, 128 * config.MiB, 0, false},
		{"grow RAM to exactly size+hotplug_size", ResizeRequest{DesiredRAM: i(9 * config.GiB)}, 0, 8 * config.GiB, 0, false},
		{"grow RAM one block past the limit refused", ResizeRequest{DesiredRAM: i(9*config.GiB + 128*config.MiB)}, 0, 0, 0, true},
		{"grow RAM not by 128 MiB blocks refused", ResizeRequest{DesiredRAM: i(config.GiB + 64*config.MiB)}, 0, 0, 0, true},
		{"shrink RAM waits for the reboot", ResizeRequest{DesiredRAM: i(512 * config.MiB)}, 0, 0, 512 * config.MiB, false},
		{"shrink RAM below the minimum refused", ResizeRequest{DesiredRAM: i(config.MiB)}, 0, 0, 0, true},
		{"vCPUs and RAM together", ResizeRequest{DesiredVCPUs: i(8), DesiredRAM: i(2 * config.GiB)}, 8, config.GiB, 0, false},
		{"valid vCPUs with negative RAM refused whole", ResizeRequest{DesiredVCPUs: i(6), DesiredRAM: i(-5)}, 0, 0, 0, true},
		{"valid vCPUs with too much RAM refused whole", ResizeRequest{DesiredVCPUs: i(6), DesiredRAM: i(10 * config.GiB)}, 0, 0, 0, true},
		{"balloon refused", ResizeRequest{DesiredBalloon: i(0)}, 0, 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := planResize(cfg, ram, tc.req)
			if tc.invalid {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if p.vcpus != tc.vcpus || p.addRAM != tc.addRAM || p.nextRAM != tc.nextRAM {
				t.Errorf("plan = %+v, want vcpus %d, addRAM %d, nextRAM %d", p, tc.vcpus, tc.addRAM, tc.nextRAM)
			}
		})
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
