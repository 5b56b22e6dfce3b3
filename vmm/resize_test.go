package vmm

import (
	"errors"
	"testing"
	"time"
)

func TestPlanResizeWithNoFreeMemorySlotRefusesRAM(t *testing.T) {
	cfg := VmConfig{Cpus: CpusConfig{BootVcpus: 1, MaxVcpus: 1}, Memory: MemoryConfig{Size: GiB, HotplugSize: GiB}}
	n := int64(GiB + 128*MiB)
	if _, err := planResize(cfg, ramState{current: GiB, limit: 2 * GiB}, ResizeRequest{DesiredRam: &n}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
}

func TestApplyNextRAMKeepsTheLimit(t *testing.T) {
	for _, tc := range []struct {
		name             string
		size, hp, next   uint64
		wantSize, wantHP uint64
	}{
		{"grown RAM becomes boot RAM", GiB, 8 * GiB, 3 * GiB, 3 * GiB, 6 * GiB},
		{"shrunk RAM frees the hot plug space", 3 * GiB, 6 * GiB, GiB, GiB, 8 * GiB},
		{"nothing stored changes nothing", GiB, GiB, 0, GiB, GiB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := &VMM{cfg: &VmConfig{Memory: MemoryConfig{Size: tc.size, HotplugSize: tc.hp}}, nextRAM: tc.next}
			v.applyNextRAMLocked()
			if got := v.cfg.Memory; got.Size != tc.wantSize || got.HotplugSize != tc.wantHP || v.nextRAM != 0 {
				t.Errorf("memory = %+v (next %d), want size %d, hotplug_size %d", got, v.nextRAM, tc.wantSize, tc.wantHP)
			}
		})
	}
}

func TestPlanResizeValidatesTheWholeRequest(t *testing.T) {
	cfg := VmConfig{Cpus: CpusConfig{BootVcpus: 4, MaxVcpus: 8}, Memory: MemoryConfig{Size: GiB, HotplugSize: 8 * GiB}}
	ram := ramState{current: GiB, limit: 9 * GiB, freeSlots: 64}
	i := func(n int64) *int64 { return &n }
	for _, tc := range []struct {
		name    string
		req     ResizeRequest
		vcpus   int
		addRAM  uint64
		nextRAM uint64
		invalid bool
	}{
		{"grow to max", ResizeRequest{DesiredVcpus: i(8)}, 8, 0, 0, false},
		{"shrink to one", ResizeRequest{DesiredVcpus: i(1)}, 1, 0, 0, false},
		{"same count is a no-op", ResizeRequest{DesiredVcpus: i(4)}, 0, 0, 0, false},
		{"zero vCPUs refused", ResizeRequest{DesiredVcpus: i(0)}, 0, 0, 0, true},
		{"negative vCPUs refused", ResizeRequest{DesiredVcpus: i(-1)}, 0, 0, 0, true},
		{"above max refused", ResizeRequest{DesiredVcpus: i(9)}, 0, 0, 0, true},
		{"empty request refused", ResizeRequest{}, 0, 0, 0, true},
		{"same RAM is a no-op", ResizeRequest{DesiredRam: i(GiB)}, 0, 0, 0, false},
		{"zero RAM refused", ResizeRequest{DesiredRam: i(0)}, 0, 0, 0, true},
		{"grow RAM hot-adds the difference", ResizeRequest{DesiredRam: i(3 * GiB)}, 0, 2 * GiB, 0, false},
		{"grow RAM by one block", ResizeRequest{DesiredRam: i(GiB + 128*MiB)}, 0, 128 * MiB, 0, false},
		{"grow RAM to exactly size+hotplug_size", ResizeRequest{DesiredRam: i(9 * GiB)}, 0, 8 * GiB, 0, false},
		{"grow RAM one block past the limit refused", ResizeRequest{DesiredRam: i(9*GiB + 128*MiB)}, 0, 0, 0, true},
		{"grow RAM not by 128 MiB blocks refused", ResizeRequest{DesiredRam: i(GiB + 64*MiB)}, 0, 0, 0, true},
		{"shrink RAM waits for the reboot", ResizeRequest{DesiredRam: i(512 * MiB)}, 0, 0, 512 * MiB, false},
		{"shrink RAM below the minimum refused", ResizeRequest{DesiredRam: i(MiB)}, 0, 0, 0, true},
		{"vCPUs and RAM together", ResizeRequest{DesiredVcpus: i(8), DesiredRam: i(2 * GiB)}, 8, GiB, 0, false},
		{"valid vCPUs with negative RAM refused whole", ResizeRequest{DesiredVcpus: i(6), DesiredRam: i(-5)}, 0, 0, 0, true},
		{"valid vCPUs with too much RAM refused whole", ResizeRequest{DesiredVcpus: i(6), DesiredRam: i(10 * GiB)}, 0, 0, 0, true},
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
