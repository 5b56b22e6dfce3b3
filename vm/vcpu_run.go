package vm

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/vmmdev/vmm/kvm"
	"github.com/vmmdev/vmm/vm/osthread"
	"github.com/vmmdev/vmm/vm/seccomp"
)

// thread is vCPU c's OS thread: it creates and sets up the vCPU, reports
// on ready, then runs or parks it as told until the VM ends.
func (m *cpuManager) thread(c *vcpu, bootCPU bool, ready chan<- error) {
	// The goroutine keeps the thread to the end; returning without unlocking
	// makes the runtime end the thread too, so no other goroutine inherits
	// its name or its vCPU.
	osthread.LockOffMain()
	defer close(c.done)
	osthread.SetName(VCPUThreadName(c.id))
	c.tid = unix.Gettid()

	// The thread is the vCPU's for good: its filter goes on before the
	// guest can run on it.
	var kv *kvm.VCPU
	err := seccomp.InstallThread(seccomp.VCPU, m.cfg.seccomp)
	if err == nil {
		kv, err = m.vm.CreateVCPU(int(m.cfg.topology().APICID(c.id)))
	}
	if err == nil {
		if err = m.setup(kv, c.id, bootCPU); err != nil {
			kv.Close()
		}
	}
	if err != nil {
		m.mu.Lock()
		c.thread = threadExited
		m.mu.Unlock()
		ready <- err
		return
	}
	c.kv = kv
	ready <- nil

	// A hot-unplugged vCPU's thread is renamed while it is parked, so that
	// exactly the plugged vCPUs have threads named vcpuN.
	name, parkedName := VCPUThreadName(c.id), fmt.Sprintf("cpu%d-parked", c.id)
	named := true
	m.mu.Lock()
	for {
		w := m.want(c)
		for w == wantPark && len(c.calls) == 0 {
			if named && c.plug != plugIn && !m.ending {
				osthread.SetName(parkedName)
				named = false
			}
			m.cond.Wait()
			w = m.want(c)
		}
		if !named && c.plug == plugIn {
			osthread.SetName(name)
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
		c.thread = threadRunning
		c.stop.Store(false)
		kv.SetImmediateExit(false)
		m.mu.Unlock()

		m.run(c)

		m.mu.Lock()
		c.thread = threadWaiting
		m.cond.Broadcast()
		if m.handler.halted() {
			// The machine is going away: wait to be told to exit.
			for !m.ending {
				m.cond.Wait()
			}
		}
	}
	c.thread = threadExited
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
			m.handler.Reset(fmt.Sprintf("triple fault on vCPU %d (KVM_EXIT_SHUTDOWN)", c.id))
		case kvm.ExitSystemEvent:
			typ, data := kv.SystemEvent()
			switch typ {
			case kvm.SystemEventShutdown:
				m.handler.PowerOff(fmt.Sprintf("KVM system event on vCPU %d", c.id))
			case kvm.SystemEventReset:
				m.handler.Reset(fmt.Sprintf("KVM system event on vCPU %d", c.id))
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
