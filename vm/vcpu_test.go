package vm

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmmdev/vmm/kvm"
	"github.com/vmmdev/vmm/vm/memory"
)

// countingHandler is an exitHandler that counts port writes to 0x10 and
// records the others.
type countingHandler struct {
	writes  atomic.Int64
	halt    atomic.Bool
	mu      sync.Mutex
	failure error
	other   []string
}

func (h *countingHandler) pio(port uint16, data []byte, write bool) {
	if write && port == 0x10 {
		h.writes.Add(1)
		return
	}
	if write {
		h.mu.Lock()
		h.other = append(h.other, fmt.Sprintf("out %#x %x", port, data))
		h.mu.Unlock()
	}
}
func (h *countingHandler) mmio(uint64, []byte, bool) {}
func (h *countingHandler) halted() bool              { return h.halt.Load() }
func (h *countingHandler) Reset(string)              { h.halt.Store(true) }
func (h *countingHandler) PowerOff(string)           { h.halt.Store(true) }
func (h *countingHandler) fail(err error) {
	h.mu.Lock()
	h.failure = err
	h.mu.Unlock()
	h.halt.Store(true)
}

// realModeLoop is "out 0x10, al; jmp $-4": a vCPU exits on every iteration.
var realModeLoop = []byte{0xe6, 0x10, 0xeb, 0xfc}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func threadNames(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/comm", os.Getpid()))
	var names []string
	for _, f := range files {
		b, _ := os.ReadFile(f)
		names = append(names, strings.TrimSpace(string(b)))
	}
	return names
}

// This test needs a KVM that runs real-mode code; the development
// machine's PVM KVM may not, and then it is skipped.
func TestCPUManagerRunsParksAndStopsVCPUThreadsOnRealKVM(t *testing.T) {
	sys, vm, mem := newTestVM(t, 1<<20)
	supported, err := sys.SupportedCPUID()
	if err != nil {
		t.Skip(err)
	}
	host := mem.Regions()[0].Host()
	copy(host[0x1000:], realModeLoop)

	h := &countingHandler{}
	m := newCPUManager(vm, cpuConfig{maxVCPUs: 2, cpuid: supported}, h, nopLogger(), nil)
	if err := m.create(0, false); err != nil {
		t.Fatal(err)
	}
	// Point vCPU 0 at the loop in real mode, from its own thread.
	if err := m.onThread(0, func(kv *kvm.VCPU) error {
		s, err := kv.Sregs()
		if err != nil {
			return err
		}
		s.CS.Base, s.CS.Selector = 0, 0
		if err := kv.SetSregs(s); err != nil {
			return err
		}
		return kv.SetRegs(kvm.Regs{RIP: 0x1000, RFLAGS: 2})
	}); err != nil {
		t.Fatal(err)
	}
	if err := m.create(1, false); err != nil { // waits for a SIPI in KVM_RUN
		t.Fatal(err)
	}
	if err := m.create(1, false); err == nil {
		t.Error("vCPU 1 created twice")
	}
	if err := m.plug(0, 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if h.writes.Load() == 0 {
		m.stopAll()
		t.Skipf("this KVM did not run the real-mode loop (failure: %v)", h.failure)
	}
	names := threadNames(t)
	for _, want := range []string{"vcpu0", "vcpu1"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("no thread named %s in %v", want, names)
		}
	}

	m.pause()
	n := h.writes.Load()
	time.Sleep(50 * time.Millisecond)
	if h.writes.Load() != n {
		t.Error("vCPU 0 ran while paused")
	}
	m.resume()
	waitFor(t, "vCPU 0 to run again", func() bool { return h.writes.Load() > n })

	if err := m.park(1); err != nil { // kicks vCPU 1 out of its wait for SIPI
		t.Fatal(err)
	}
	if got := m.active(); got != 1 {
		t.Errorf("active = %d after parking vCPU 1", got)
	}
	// What the old CPU left behind: a running state and steal time on.
	if err := m.onThread(1, func(kv *kvm.VCPU) error {
		if _, err := kv.SetMSRs([]kvm.MSR{{Index: msrKVMStealTime, Data: 0x2000 | 1}}); err != nil {
			return err
		}
		return kv.SetMPState(kvm.MPStateRunnable)
	}); err != nil {
		t.Fatal(err)
	}
	if err := m.plug(1); err != nil {
		t.Fatal(err)
	}
	// Plugged again, it is a fresh AP: waiting for INIT, steal time off.
	if err := m.onThread(1, func(kv *kvm.VCPU) error {
		st, err := kv.MPState()
		if err != nil {
			return err
		}
		if st != kvm.MPStateUninitialized {
			t.Errorf("re-plugged vCPU 1: MP state %d, want %d (waiting for INIT)", st, kvm.MPStateUninitialized)
		}
		msrs, err := kv.MSRs(msrKVMStealTime)
		if err == nil && len(msrs) == 1 && msrs[0].Data != 0 {
			t.Errorf("re-plugged vCPU 1: steal time MSR %#x, want 0", msrs[0].Data)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	m.stopAll()
	if got := m.active(); got != 0 {
		t.Errorf("active = %d after stopAll", got)
	}
	// The runtime ends a locked thread just after its goroutine returns.
	waitFor(t, "the vCPU threads to end", func() bool {
		for _, n := range threadNames(t) {
			if strings.HasPrefix(n, "vcpu") {
				return false
			}
		}
		return true
	})
}

// The main goroutine keeps the main thread, as cmd/vmm's does, so that no
// vCPU goroutine lands there.
func init() { runtime.LockOSThread() }

func nopLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newTestVM opens KVM and makes a VM with an in-kernel irqchip and size
// bytes of RAM at guest address 0, or skips the test where KVM cannot. All
// of it is closed when the test ends.
func newTestVM(t *testing.T, size uint64) (*kvm.System, *kvm.VM, *memory.Guest) {
	t.Helper()
	sys, err := kvm.Open(kvm.DevicePath)
	if err != nil {
		t.Skipf("no KVM: %v", err)
	}
	t.Cleanup(func() { sys.Close() })
	vm, err := sys.CreateVM()
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { vm.Close() })
	if err := vm.CreateIRQChip(); err != nil {
		t.Skip(err)
	}
	mem, err := memory.Map([]memory.Range{{Start: 0, Size: size}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	if err := vm.SetUserMemoryRegion(kvm.MemoryRegion(0, 0, mem.Regions()[0].Host())); err != nil {
		t.Fatal(err)
	}
	return sys, vm, mem
}

func TestIsVCPUThreadAcceptsExactlyTheNamesOfPluggedVCPUs(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{VCPUThreadName(0), true},
		{VCPUThreadName(17), true},
		{"vcpu", false},
		{"vcpu1x", false},
		{"cpu1-parked", false},
		{"xvcpu1", false},
		{"vmm", false},
	} {
		if got := IsVCPUThread(tc.name); got != tc.want {
			t.Errorf("IsVCPUThread(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}
