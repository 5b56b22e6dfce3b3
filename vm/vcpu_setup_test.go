package vm

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/vmmdev/vmm/kvm"
)

// fakeMSRVCPU is a fake vCPU for setMSRs: KVM_SET_MSRS refuses the MSR
// refuse (stopping there, as KVM does) or fails outright with err.
type fakeMSRVCPU struct {
	refuse  uint32
	err     error
	written []uint32
}

func (f *fakeMSRVCPU) ID() int { return 1 }
func (f *fakeMSRVCPU) SetMSRs(msrs []kvm.MSR) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	for i, m := range msrs {
		if m.Index == f.refuse {
			return i, nil
		}
		f.written = append(f.written, m.Index)
	}
	return len(msrs), nil
}

func TestSetMSRsWithFakeVCPUSkipsARefusedMSRAndWritesTheRest(t *testing.T) {
	var log strings.Builder
	m := &cpuManager{log: slog.New(slog.NewTextHandler(&log, nil))}
	kv := &fakeMSRVCPU{refuse: msrLSTAR}
	if err := m.setMSRs(kv, bootMSRs()); err != nil {
		t.Fatal(err)
	}
	if len(kv.written) != len(bootMSRs())-1 {
		t.Errorf("wrote %d MSRs, want all %d but the refused one", len(kv.written), len(bootMSRs())-1)
	}
	if !strings.Contains(log.String(), "refused an MSR") || !strings.Contains(log.String(), "0xc0000082") {
		t.Errorf("the refused MSR is not logged: %q", log.String())
	}
}

func TestSetMSRsWithFakeVCPUReturnsAFailedIoctl(t *testing.T) {
	m := &cpuManager{log: slog.New(slog.DiscardHandler)}
	kv := &fakeMSRVCPU{err: errors.New("KVM_SET_MSRS: bad address")}
	if err := m.setMSRs(kv, bootMSRs()); err == nil || !strings.Contains(err.Error(), "bad address") {
		t.Errorf("err = %v, want the ioctl's error", err)
	}
}

// fakeCaps is a fake KVM_CHECK_EXTENSION: answers by capability, or fail.
type fakeCaps struct {
	answers map[kvm.Cap]int
	fail    kvm.Cap
}

func (f fakeCaps) CheckExtension(c kvm.Cap) (int, error) {
	if c == f.fail {
		return 0, errors.New("KVM_CHECK_EXTENSION: bad file descriptor")
	}
	return f.answers[c], nil
}

func TestHostCapsWithFakeKVMReturnsAFailedCheck(t *testing.T) {
	for _, c := range []kvm.Cap{kvm.CapTSCDeadlineTimer, kvm.CapMaxVCPUs, kvm.CapNrVCPUs} {
		v := &VMM{}
		if err := v.hostCaps(fakeCaps{fail: c}); err == nil {
			t.Errorf("a failing check of %v was dropped", c)
		}
	}
	v := &VMM{}
	if err := v.hostCaps(fakeCaps{answers: map[kvm.Cap]int{kvm.CapNrVCPUs: 16}, fail: -1}); err != nil || v.hostMaxCPUs != 16 || v.tscDeadline {
		t.Errorf("err %v max %d tsc %v; want KVM_CAP_NR_VCPUS's 16 without the TSC deadline timer", err, v.hostMaxCPUs, v.tscDeadline)
	}
}
