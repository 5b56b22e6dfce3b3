package vm

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vmmdev/vmm/kvm"
	"github.com/vmmdev/vmm/vm/boot"
)

// kickSignal interrupts a vCPU thread in KVM_RUN. Go's runtime already
// handles SIGURG (it preempts goroutines with it) and ignores stray ones,
// so it needs no handler of ours and KVM_RUN sees it as EINTR.
const kickSignal = unix.SIGURG

// MSRs set on every vCPU before it first runs (Intel SDM vol. 4).
const (
	msrIA32SysenterCS  = 0x174
	msrIA32SysenterESP = 0x175
	msrIA32SysenterEIP = 0x176
	msrIA32MiscEnable  = 0x1a0
	msrMTRRDefType     = 0x2ff
	msrSTAR            = 0xc000_0081
	msrLSTAR           = 0xc000_0082
	msrCSTAR           = 0xc000_0083
	msrSyscallMask     = 0xc000_0084
	msrKernelGSBase    = 0xc000_0102

	miscEnableFastString = 1 << 0
	// mtrrDefTypeWB enables the MTRRs with write-back as the default type.
	mtrrDefTypeWB = 1<<11 | 6
)

// bootMSRs are the MSR values of a CPU fresh out of firmware: syscall MSRs
// clear, fast strings on, MTRRs on with all memory write-back.
func bootMSRs() []kvm.MSR {
	return []kvm.MSR{
		{Index: msrIA32SysenterCS}, {Index: msrIA32SysenterESP}, {Index: msrIA32SysenterEIP},
		{Index: msrSTAR}, {Index: msrLSTAR}, {Index: msrCSTAR}, {Index: msrSyscallMask},
		{Index: msrKernelGSBase},
		{Index: msrIA32MiscEnable, Data: miscEnableFastString},
		{Index: msrMTRRDefType, Data: mtrrDefTypeWB},
	}
}

// LAPIC local vector table delivery modes (Intel SDM vol. 3, 11.5.1).
const (
	lvtDeliveryModeMask = 7 << 8
	lvtDeliveryNMI      = 4 << 8
	lvtDeliveryExtINT   = 7 << 8
	lvtMasked           = 1 << 16
)

// exitHandler is what a vCPU loop needs from its machine.
type exitHandler interface {
	// pio and mmio handle one access each.
	pio(port uint16, data []byte, write bool)
	mmio(addr uint64, data []byte, write bool)
	// halted says the machine is going away: vCPUs stop running it.
	halted() bool
	// reset, powerOff and fail end the machine.
	reset(source string)
	powerOff(source string)
	fail(err error)
}

// vcpuWant is what a vCPU thread should be doing.
type vcpuWant int

const (
	wantPark vcpuWant = iota
	wantRun
	wantExit
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
	calls   []vcpuCall // functions to run on the thread
	plugged bool       // the guest should have this vCPU (not hot-unplugged)
	// unplugged: hot-unplugged since it last ran, so it must be reset to
	// a fresh AP's state before it runs again.
	unplugged bool
	running   bool // the thread is in its run loop
	exited    bool // the thread is gone
	done      chan struct{}
}

// vcpuCall is a function to run on a vCPU's thread, and where its result
// goes.
type vcpuCall struct {
	fn   func(*kvm.VCPU) error
	done chan error
}

// cpuConfig is how vCPUs are set up.
type cpuConfig struct {
	maxVCPUs    int
	cpuid       []kvm.CPUIDEntry // KVM_GET_SUPPORTED_CPUID
	tscDeadline bool
	entry       boot.Entry // the boot vCPU's start, from boot.Load
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

// want is what vCPU c should do now. Called with m.mu held.
func (m *cpuManager) want(c *vcpu) vcpuWant {
	switch {
	case m.ending:
		return wantExit
	case m.paused || !c.plugged:
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
	c := &vcpu{id: id, done: make(chan struct{})}
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
		if c, ok := m.vcpus[id]; ok && c.unplugged {
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
		if !ok || c.exited {
			return fmt.Errorf("vCPU %d does not exist", id)
		}
		c.plugged, c.unplugged = true, false
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
	c.plugged, c.unplugged = false, true
	m.kickLocked(c)
	for c.running {
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
		c.plugged, c.unplugged = false, true
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
		for c.running {
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
	if !ok || c.exited {
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
	return ok && !c.exited
}

// active is the number of plugged vCPUs.
func (m *cpuManager) active() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, c := range m.vcpus {
		if c.plugged && !c.exited {
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
	if !c.running || c.exited {
		return
	}
	c.kv.SetImmediateExit(true)
	if err := unix.Tgkill(os.Getpid(), c.tid, kickSignal); err != nil {
		m.log.Warn("kick vCPU", "vcpu", c.id, "err", err)
	}
}

// thread is vCPU c's OS thread: it creates and sets up the vCPU, reports
// on ready, then runs or parks it as told until the VM ends.
func (m *cpuManager) thread(c *vcpu, bootCPU bool, ready chan<- error) {
	// The goroutine keeps the thread to the end; returning without unlocking
	// makes the runtime end the thread too, so no other goroutine inherits
	// its name or its vCPU.
	lockOffMainThread()
	defer close(c.done)
	setThreadName(fmt.Sprintf("vcpu%d", c.id))
	c.tid = unix.Gettid()

	kv, err := m.vm.CreateVCPU(c.id)
	if err == nil {
		if err = m.setup(kv, bootCPU); err != nil {
			kv.Close()
		}
	}
	if err != nil {
		m.mu.Lock()
		c.exited = true
		m.mu.Unlock()
		ready <- err
		return
	}
	c.kv = kv
	ready <- nil

	// A hot-unplugged vCPU's thread is renamed while it is parked, so that
	// exactly the plugged vCPUs have threads named vcpuN.
	name, parkedName := fmt.Sprintf("vcpu%d", c.id), fmt.Sprintf("cpu%d-parked", c.id)
	named := true
	m.mu.Lock()
	for {
		w := m.want(c)
		for w == wantPark && len(c.calls) == 0 {
			if named && !c.plugged && !m.ending {
				setThreadName(parkedName)
				named = false
			}
			m.cond.Wait()
			w = m.want(c)
		}
		if !named && c.plugged {
			setThreadName(name)
			named = true
		}
		if w != wantExit && len(c.calls) > 0 {
			calls := c.calls
			c.calls = nil
			m.mu.Unlock()
			for _, call := range calls {
				call.done <- call.fn(kv)
			}
			m.mu.Lock()
			continue
		}
		if w == wantExit {
			break
		}
		c.running = true
		c.stop.Store(false)
		kv.SetImmediateExit(false)
		m.mu.Unlock()

		m.run(c)

		m.mu.Lock()
		c.running = false
		m.cond.Broadcast()
		if m.handler.halted() {
			// The machine is going away: wait to be told to exit.
			for !m.ending {
				m.cond.Wait()
			}
		}
	}
	c.exited = true
	c.running = false
	for _, call := range c.calls {
		call.done <- errors.New("the vCPU has stopped")
	}
	c.calls = nil
	m.cond.Broadcast()
	m.mu.Unlock()
	if err := kv.Close(); err != nil {
		m.log.Warn("close vCPU", "vcpu", c.id, "err", err)
	}
}

// lockOffMainThread locks the calling goroutine to an OS thread other than
// the process's main thread. A goroutine that ends while locked to the main
// thread does not end the thread (the runtime parks it for good), and the
// main thread's name is the process's name: neither may become a vCPU's.
// Programs keep the main goroutine on the main thread (cmd/vmm locks it in
// init), so the retry is for embedders that do not.
func lockOffMainThread() {
	for range 1000 {
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			return
		}
		runtime.UnlockOSThread()
		time.Sleep(time.Millisecond) // wake up on whichever thread is free
	}
	runtime.LockOSThread()
}

// setThreadName names the calling OS thread (at most 15 bytes), as ps -T
// and /proc/PID/task/TID/comm show it.
func setThreadName(name string) {
	b := append([]byte(name), 0)
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&b[0])), 0, 0, 0)
	runtime.KeepAlive(b)
}

// setup gives a new vCPU its CPUID, MSRs and LAPIC wiring; the boot vCPU
// also gets the registers of the payload's entry (the bzImage's 64-bit
// entry or a PVH entry). Other vCPUs wait for the guest's INIT and SIPI, as
// KVM starts them.
func (m *cpuManager) setup(kv *kvm.VCPU, bootCPU bool) error {
	id := kv.ID()
	if err := kv.SetCPUID(CPUIDFor(m.cfg.cpuid, id, m.cfg.maxVCPUs, m.cfg.tscDeadline)); err != nil {
		return err
	}
	m.setMSRs(kv, bootMSRs())
	if err := m.setLAPIC(kv); err != nil {
		return err
	}
	if err := kv.SetFPU(boot.FPU()); err != nil {
		return err
	}
	if !bootCPU {
		return nil
	}
	s, err := kv.Sregs()
	if err != nil {
		return err
	}
	if err := kv.SetSregs(m.cfg.entry.Sregs(s)); err != nil {
		return err
	}
	return kv.SetRegs(m.cfg.entry.Regs())
}

// KVM's paravirtual MSRs (Documentation/virt/kvm/x86/msr.rst) and their
// values in a CPU fresh from reset: everything off, host polling allowed.
const (
	msrKVMSystemTime    = 0x12
	msrKVMSystemTimeNew = 0x4b56_4d01
	msrKVMAsyncPFEn     = 0x4b56_4d02
	msrKVMStealTime     = 0x4b56_4d03
	msrKVMPVEOIEn       = 0x4b56_4d04
	msrKVMPollControl   = 0x4b56_4d05
	msrKVMAsyncPFInt    = 0x4b56_4d06
)

// resetAP puts a vCPU that ran before and was hot-unplugged back into the
// state of an AP fresh from power-on: boot MSRs, KVM's paravirtual MSRs
// off, LAPIC and FPU as set up, and waiting for INIT and SIPI
// (KVM_MP_STATE_UNINITIALIZED), which reset its registers when the guest
// sends them. QEMU resets a re-added CPU the same way.
func (m *cpuManager) resetAP(kv *kvm.VCPU) error {
	m.setMSRs(kv, append(bootMSRs(),
		kvm.MSR{Index: msrKVMSystemTime}, kvm.MSR{Index: msrKVMSystemTimeNew},
		kvm.MSR{Index: msrKVMAsyncPFEn}, kvm.MSR{Index: msrKVMStealTime},
		kvm.MSR{Index: msrKVMPVEOIEn}, kvm.MSR{Index: msrKVMPollControl, Data: 1},
		kvm.MSR{Index: msrKVMAsyncPFInt}))
	if err := m.setLAPIC(kv); err != nil {
		return fmt.Errorf("LAPIC: %w", err)
	}
	if err := kv.SetFPU(boot.FPU()); err != nil {
		return fmt.Errorf("FPU: %w", err)
	}
	if err := kv.SetMPState(kvm.MPStateUninitialized); err != nil {
		return fmt.Errorf("MP state: %w", err)
	}
	return nil
}

// setLAPIC wires the vCPU's LAPIC as firmware leaves it on a PC: LINT0
// takes the legacy PIC's ExtINT, LINT1 NMI.
func (m *cpuManager) setLAPIC(kv *kvm.VCPU) error {
	l, err := kv.LAPIC()
	if err != nil {
		return err
	}
	l.SetReg32(kvm.LAPICRegLVT0, l.Reg32(kvm.LAPICRegLVT0)&^(lvtDeliveryModeMask|lvtMasked)|lvtDeliveryExtINT)
	l.SetReg32(kvm.LAPICRegLVT1, l.Reg32(kvm.LAPICRegLVT1)&^(lvtDeliveryModeMask|lvtMasked)|lvtDeliveryNMI)
	return kv.SetLAPIC(l)
}

// setMSRs writes msrs, skipping any this KVM refuses (KVM_SET_MSRS stops
// at the first one it refuses).
func (m *cpuManager) setMSRs(kv *kvm.VCPU, msrs []kvm.MSR) {
	for len(msrs) > 0 {
		n, err := kv.SetMSRs(msrs)
		if err != nil {
			m.log.Debug("set MSRs", "vcpu", kv.ID(), "err", err)
			return
		}
		if n < len(msrs) {
			m.log.Debug("KVM refused an MSR; skipped", "vcpu", kv.ID(), "msr", fmt.Sprintf("%#x", msrs[n].Index))
			n++
		}
		msrs = msrs[n:]
	}
}

// run loops on KVM_RUN for c until it is told to stop or the machine halts.
func (m *cpuManager) run(c *vcpu) {
	kv := c.kv
	first := c.id == 0 && m.firstRun != nil
	for !c.stop.Load() && !m.handler.halted() {
		if first {
			m.firstRun()
			first = false
		}
		err := kv.Run()
		c.exits.Add(1)
		if errors.Is(err, kvm.ErrInterrupted) {
			continue // a kick, or the Go runtime's own SIGURG
		}
		if err != nil {
			m.handler.fail(err)
			return
		}
		switch r := kv.ExitReason(); r {
		case kvm.ExitIO:
			e, ok := kv.IO()
			if !ok {
				m.handler.fail(fmt.Errorf("vCPU %d: KVM_EXIT_IO data outside kvm_run", c.id))
				return
			}
			for i := range e.Count {
				m.handler.pio(e.Port, e.Data[i*e.Size:(i+1)*e.Size], e.Out)
			}
		case kvm.ExitMMIO:
			e := kv.MMIO()
			m.handler.mmio(e.Addr, e.Data, e.Write)
		case kvm.ExitIntr:
		case kvm.ExitShutdown:
			m.logTripleFault(c.id, kv)
			m.handler.reset(fmt.Sprintf("triple fault on vCPU %d (KVM_EXIT_SHUTDOWN)", c.id))
		case kvm.ExitSystemEvent:
			typ, data := kv.SystemEvent()
			switch typ {
			case kvm.SystemEventShutdown:
				m.handler.powerOff(fmt.Sprintf("KVM system event on vCPU %d", c.id))
			case kvm.SystemEventReset:
				m.handler.reset(fmt.Sprintf("KVM system event on vCPU %d", c.id))
			default:
				m.handler.fail(fmt.Errorf("vCPU %d: KVM system event %d %x", c.id, typ, data))
			}
		case kvm.ExitFailEntry:
			reason, cpu := kv.FailEntry()
			// The count tells a first entry refused for the state this
			// VMM set up from a running vCPU's entry failing (docs/testing.md).
			m.handler.fail(fmt.Errorf("vCPU %d: KVM_EXIT_FAIL_ENTRY: hardware entry failure reason %#x on host CPU %d after %d exits",
				c.id, reason, cpu, c.exits.Load()-1))
			return
		case kvm.ExitInternalError:
			sub, data := kv.InternalError()
			m.handler.fail(fmt.Errorf("vCPU %d: KVM_EXIT_INTERNAL_ERROR suberror %d data %x", c.id, sub, data))
			return
		default:
			m.logUnknownExit(c.id, r)
		}
	}
}

// logTripleFault logs where vCPU id was when it triple-faulted: a guest
// reset without a word from the guest is otherwise hard to place.
func (m *cpuManager) logTripleFault(id int, kv *kvm.VCPU) {
	r, err := kv.Regs()
	if err != nil {
		m.log.Warn("triple fault", "vcpu", id, "regs", err)
		return
	}
	s, err := kv.Sregs()
	if err != nil {
		m.log.Warn("triple fault", "vcpu", id, "sregs", err)
		return
	}
	m.log.Warn("triple fault", "vcpu", id,
		"rip", fmt.Sprintf("%#x", r.RIP), "rsp", fmt.Sprintf("%#x", r.RSP), "rflags", fmt.Sprintf("%#x", r.RFLAGS),
		"cs", fmt.Sprintf("%#x", s.CS.Selector), "cr0", fmt.Sprintf("%#x", s.CR0), "cr2", fmt.Sprintf("%#x", s.CR2),
		"cr3", fmt.Sprintf("%#x", s.CR3), "cr4", fmt.Sprintf("%#x", s.CR4), "efer", fmt.Sprintf("%#x", s.EFER),
		"idt", fmt.Sprintf("%#x/%#x", s.IDT.Base, s.IDT.Limit), "gdt", fmt.Sprintf("%#x/%#x", s.GDT.Base, s.GDT.Limit),
		"gs_base", fmt.Sprintf("%#x", s.GS.Base))
}

func (m *cpuManager) logUnknownExit(id int, r kvm.ExitReason) {
	m.unknownMu.Lock()
	seen := m.unknownExit[r]
	m.unknownExit[r] = true
	m.unknownMu.Unlock()
	if !seen {
		m.log.Warn("unhandled vCPU exit, ignored (logged once)", "vcpu", id, "reason", r.String())
	}
}
