package vm

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/vmmdev/vmm/kvm"
	"github.com/vmmdev/vmm/vm/boot"
	"github.com/vmmdev/vmm/vm/devices"
	"github.com/vmmdev/vmm/vm/seccomp"
)

// exitHandler is what a vCPU loop needs from its machine.
type exitHandler interface {
	// pio and mmio handle one access each.
	pio(port uint16, data []byte, write bool)
	mmio(addr uint64, data []byte, write bool)
	// halted says the machine is going away: vCPUs stop running it.
	halted() bool
	// Reset, PowerOff and fail end the machine.
	devices.Power
	fail(err error)
}

// vcpuWant is what a vCPU thread should be doing.
type vcpuWant int

const (
	wantPark vcpuWant = iota
	wantRun
	wantExit
)

// plugState is whether the guest should have a vCPU.
type plugState int

const (
	// plugNew: created, never plugged; parked until plugged.
	plugNew plugState = iota
	// plugIn: plugged; the guest has the vCPU, which runs unless the VM is
	// paused.
	plugIn
	// plugOut: hot-unplugged since it last ran; parked, and reset to a
	// fresh AP's state before it runs again.
	plugOut
)

// threadState is where a vCPU's thread is.
type threadState int

const (
	// threadWaiting: parked, paused, or between two stints in the run loop.
	threadWaiting threadState = iota
	// threadRunning: in the run loop (KVM_RUN and the exits it returns).
	threadRunning
	// threadExited: the thread has left for good (it closes the vCPU fd
	// on its way out), or never got its vCPU.
	threadExited
)

// vcpu is one vCPU and its OS thread.
type vcpu struct {
	id   int
	kv   *kvm.VCPU // owned by the thread
	tid  int
	stop atomic.Bool // leave the run loop at the next chance
	// exits counts KVM_RUN returns, for the state dump (dump.go).
	exits atomic.Uint64

	// Guarded by cpuManager.mu.
	calls  []vcpuCall // functions to run on the thread
	plug   plugState
	thread threadState
	done   chan struct{}
}

// vcpuCall is a function to run on a vCPU's thread, and where its result
// goes.
type vcpuCall struct {
	fn   func(*kvm.VCPU) error
	done chan error
}

// cpuConfig is how vCPUs are set up.
type cpuConfig struct {
	maxVCPUs int
	// topo groups the vCPUs and gives their APIC ids; the zero value is
	// flatTopology(maxVCPUs).
	topo        Topology
	cpuid       []kvm.CPUIDEntry // KVM_GET_SUPPORTED_CPUID
	tscDeadline bool
	entry       boot.Entry // the boot vCPU's start, from boot.Load
	// seccomp is the mode of the filter each vCPU thread installs on
	// itself before it makes its vCPU (seccomp.Off or empty: none).
	seccomp seccomp.Mode
}

// cpuManager owns a VM's vCPU threads: it creates vCPUs on demand (up to
// max), runs, parks and stops them. A vCPU's thread lives until the VM goes
// away; parking it stops it from running the guest without destroying it,
// since KVM cannot destroy a vCPU.
type cpuManager struct {
	vm      *kvm.VM
	cfg     cpuConfig
	handler exitHandler
	log     *slog.Logger
	// firstRun is called once, just before the first KVM_RUN of vCPU 0.
	firstRun func()

	mu     sync.Mutex
	cond   *sync.Cond
	vcpus  map[int]*vcpu
	paused bool
	ending bool

	unknownMu   sync.Mutex
	unknownExit map[kvm.ExitReason]bool
}

func newCPUManager(vm *kvm.VM, cfg cpuConfig, h exitHandler, log *slog.Logger, firstRun func()) *cpuManager {
	m := &cpuManager{vm: vm, cfg: cfg, handler: h, log: log, firstRun: firstRun,
		vcpus: map[int]*vcpu{}, unknownExit: map[kvm.ExitReason]bool{}}
	m.cond = sync.NewCond(&m.mu)
	return m
}

// topology is the VM's topology.
func (c cpuConfig) topology() Topology {
	if c.topo.Threads == 0 {
		return flatTopology(c.maxVCPUs)
	}
	return c.topo
}

// want is what vCPU c should do now. Called with m.mu held.
func (m *cpuManager) want(c *vcpu) vcpuWant {
	switch {
	case m.ending:
		return wantExit
	case m.paused || c.plug != plugIn:
		return wantPark
	}
	return wantRun
}

// create makes vCPU id and its thread, parked; the thread sets the vCPU up
// (CPUID, MSRs, LAPIC, and for the boot vCPU the payload's entry state).
func (m *cpuManager) create(id int, bootCPU bool) error {
	if id < 0 || id >= m.cfg.maxVCPUs {
		return fmt.Errorf("vCPU %d: outside 0..%d", id, m.cfg.maxVCPUs-1)
	}
	m.mu.Lock()
	if _, ok := m.vcpus[id]; ok {
		m.mu.Unlock()
		return fmt.Errorf("vCPU %d exists", id)
	}
	if m.ending {
		m.mu.Unlock()
		return errors.New("the VM is stopping")
	}
	c := &vcpu{id: id, plug: plugNew, thread: threadWaiting, done: make(chan struct{})}
	m.vcpus[id] = c
	m.mu.Unlock()

	ready := make(chan error, 1)
	go m.thread(c, bootCPU, ready)
	if err := <-ready; err != nil {
		<-c.done
		m.mu.Lock()
		delete(m.vcpus, id)
		m.mu.Unlock()
		return err
	}
	return nil
}

// plug marks vCPUs as wanted by the guest and lets their threads run (unless
// the VM is paused). Each must have been created.
func (m *cpuManager) plug(ids ...int) error {
	// A vCPU plugged again is reset first, on its parked thread: the guest
	// starts it with INIT and SIPI like a CPU just inserted, so it must
	// not resume the old CPU's halt loop with that CPU's MSRs and LAPIC.
	m.mu.Lock()
	var again []int
	for _, id := range ids {
		if c, ok := m.vcpus[id]; ok && c.plug == plugOut {
			again = append(again, id)
		}
	}
	m.mu.Unlock()
	for _, id := range again {
		if err := m.onThread(id, m.resetAP); err != nil {
			return fmt.Errorf("reset vCPU %d: %w", id, err)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		c, ok := m.vcpus[id]
		if !ok || c.thread == threadExited {
			return fmt.Errorf("vCPU %d does not exist", id)
		}
		c.plug = plugIn
	}
	m.cond.Broadcast()
	return nil
}

// park stops vCPU id from running the guest and waits until its thread is
// out of KVM_RUN; the vCPU stays for a later plug.
func (m *cpuManager) park(id int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.vcpus[id]
	if !ok {
		return fmt.Errorf("vCPU %d does not exist", id)
	}
	c.plug = plugOut
	m.kickLocked(c)
	for c.thread == threadRunning {
		m.cond.Wait()
	}
	return nil
}

// parkAsync is park without the wait, for a caller that runs on a vCPU
// thread (possibly vCPU id's own).
func (m *cpuManager) parkAsync(id int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.vcpus[id]; ok {
		c.plug = plugOut
		m.kickLocked(c)
	}
}

// pause parks every vCPU and waits until none runs; resume undoes it.
func (m *cpuManager) pause() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.paused = true
	for _, c := range m.vcpus {
		m.kickLocked(c)
	}
	for _, c := range m.vcpus {
		for c.thread == threadRunning {
			m.cond.Wait()
		}
	}
}

func (m *cpuManager) resume() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.paused = false
	m.cond.Broadcast()
}

// kickAll interrupts every running vCPU so that it rechecks what it should
// do (used when the machine halts).
func (m *cpuManager) kickAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.vcpus {
		m.kickLocked(c)
	}
}

// stopAll ends every vCPU thread and waits for them; the vCPU fds are
// closed. The manager is unusable afterwards.
func (m *cpuManager) stopAll() {
	m.mu.Lock()
	m.ending = true
	var done []chan struct{}
	for _, c := range m.vcpus {
		m.kickLocked(c)
		done = append(done, c.done)
	}
	m.cond.Broadcast()
	m.mu.Unlock()
	for _, d := range done {
		<-d
	}
}

// onThread runs fn on vCPU id's thread, between two KVM_RUNs, and returns
// its error: vCPU ioctls belong on the thread that runs the vCPU.
func (m *cpuManager) onThread(id int, fn func(*kvm.VCPU) error) error {
	m.mu.Lock()
	c, ok := m.vcpus[id]
	if !ok || c.thread == threadExited {
		m.mu.Unlock()
		return fmt.Errorf("vCPU %d does not exist", id)
	}
	call := vcpuCall{fn: fn, done: make(chan error, 1)}
	c.calls = append(c.calls, call)
	m.kickLocked(c)
	m.cond.Broadcast()
	m.mu.Unlock()
	return <-call.done
}

// exists reports whether vCPU id has been created and its thread lives.
func (m *cpuManager) exists(id int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.vcpus[id]
	return ok && c.thread != threadExited
}

// active is the number of plugged vCPUs.
func (m *cpuManager) active() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, c := range m.vcpus {
		if c.plug == plugIn && c.thread != threadExited {
			n++
		}
	}
	return n
}

// kickLocked makes c leave KVM_RUN: immediate_exit covers a thread about to
// enter it, the signal one inside it. Called with m.mu held, so the thread
// (which exits only under m.mu) is alive while signalled.
func (m *cpuManager) kickLocked(c *vcpu) {
	c.stop.Store(true)
	if c.thread != threadRunning {
		return
	}
	c.kv.SetImmediateExit(true)
	if err := unix.Tgkill(os.Getpid(), c.tid, kickSignal); err != nil {
		m.log.Warn("kick vCPU", "vcpu", c.id, "err", err)
	}
}
