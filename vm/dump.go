package vm

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vmmdev/vmm/kvm"
	"github.com/vmmdev/vmm/vm/boot"
	"github.com/vmmdev/vmm/vm/layout"
	"github.com/vmmdev/vmm/vm/memory"
)

// LAPIC register offsets the state dump reads (Intel SDM vol. 3, table
// 11-1): the task and processor priorities, the in-service, trigger-mode
// and request bitmaps (eight 32-bit registers, 16 bytes apart), and the
// timer.
const (
	lapicTPR        = 0x80
	lapicPPR        = 0xa0
	lapicISR        = 0x100
	lapicTMR        = 0x180
	lapicIRR        = 0x200
	lapicLVTTimer   = 0x320
	lapicTimerInit  = 0x380
	lapicTimerCount = 0x390
)

// dumpCallTimeout bounds the wait for one vCPU's thread to answer: a thread
// stuck in KVM_RUN must not stall the dump of the others.
const dumpCallTimeout = 2 * time.Second

// DumpState logs, at WARN level with the message "state dump", where every
// vCPU is and what the interrupt controllers and the UART hold: what it takes
// to tell a hung guest from a lost interrupt. The e2e harness asks for it
// (SIGUSR1 to cmd/vmm) when a guest stops answering. The guest keeps running.
//
// The dump holds the machine it reads (holdMachine): a reset, a reboot or a
// shutdown that comes meanwhile waits for the dump to end before it tears
// the machine down, so the dump never reads unmapped RAM or closed vCPUs.
// It does not hold the VMM's lock, which a stuck request may keep.
func (v *VMM) DumpState() {
	m, release := v.holdMachine()
	if m == nil {
		v.log.Warn("state dump", "vm", "not running")
		return
	}
	defer release()
	m.dumpState()
}

// holdMachine returns the running machine, if any, held against close
// until release is called.
func (v *VMM) holdMachine() (m *machine, release func()) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		return nil, nil
	}
	// v.m is closed only with v.mu held, so it is not closed yet.
	v.m.holdMu.Lock()
	return v.m, v.m.holdMu.Unlock
}

func (m *machine) dumpState() {
	m.log.Warn("state dump", "serial", m.serial.DebugState())
	if io, err := m.vm.IOAPIC(); err != nil {
		m.log.Warn("state dump", "ioapic", err)
	} else {
		m.log.Warn("state dump", "ioapic", formatIOAPIC(io))
	}
	m.devMu.Lock()
	devs := slices.Clone(m.virtio)
	m.devMu.Unlock()
	for _, d := range devs {
		m.log.Warn("state dump", "virtio", d.t.DebugState())
	}
	// Kernel text is mapped alike in every address space, so a vCPU whose
	// own CR3 cannot be walked (the emulated SVM's bug, see README) has
	// its code read through the last CR3 that could.
	// The vCPUs are described in order, so a bad one that comes before
	// every good one is described again at the end.
	var goodCR3, goodCR4 uint64
	var again []int
	code := func(id int) func(cr3, cr4, rip uint64) string {
		return func(cr3, cr4, rip uint64) string {
			s, err := guestCode(m.mem, cr3, cr4, rip)
			switch {
			case err == nil:
				if rip >= kernelSpace {
					goodCR3, goodCR4 = cr3, cr4
				}
				return s
			case rip < kernelSpace:
			case goodCR3 == 0:
				again = append(again, id)
			default:
				if s2, err2 := guestCode(m.mem, goodCR3, goodCR4, rip); err2 == nil {
					return fmt.Sprintf("%s (own CR3: %v; read through CR3 %#x)", s2, err, goodCR3)
				}
			}
			return err.Error()
		}
	}
	for _, id := range m.cpus.ids() {
		m.log.Warn("state dump", "vcpu", id, "state", m.cpus.dumpVCPU(id, m.mem, code(id)))
	}
	if goodCR3 != 0 {
		for _, id := range again {
			m.log.Warn("state dump", "vcpu", id, "state", m.cpus.dumpVCPU(id, m.mem, code(id)))
		}
	}
}

// kernelSpace is where x86_64 Linux's kernel half of the address space
// starts (Documentation/arch/x86/x86_64/mm.rst).
const kernelSpace = 0xffff_8000_0000_0000

// Code bytes the dump shows before and at RIP, within RIP's page.
const (
	dumpCodeBefore = 8
	dumpCodeBytes  = 16
)

// guestCode is the bytes around rip in the guest, in hex, "before|at"
// (within rip's page), or why they cannot be read.
func guestCode(mem *memory.Guest, cr3, cr4, rip uint64) (string, error) {
	if mem == nil {
		return "", errors.New("no guest memory")
	}
	off := rip & (layout.PageSize - 1)
	before := min(dumpCodeBefore, off)
	gpa, err := boot.Translate(mem, cr3, cr4, rip-before)
	if err != nil {
		return "", err
	}
	b := make([]byte, before+min(dumpCodeBytes, layout.PageSize-off))
	if err := mem.ReadAt(b, gpa); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:before]) + "|" + hex.EncodeToString(b[before:]), nil
}

// ids lists the vCPUs whose threads live, in order.
func (m *cpuManager) ids() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ids []int
	for id, c := range m.vcpus {
		if c.thread != threadExited {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// dumpVCPU describes vCPU id: its thread (scheduler state and CPU time from
// /proc), KVM_RUN returns so far, and, read on its thread, its registers,
// MP state and local APIC. A CR3 outside the guest's RAM (mem) is marked.
func (m *cpuManager) dumpVCPU(id int, mem *memory.Guest, code func(cr3, cr4, rip uint64) string) string {
	m.mu.Lock()
	c, ok := m.vcpus[id]
	var tid int
	var plugged, running bool
	if ok {
		tid, plugged, running = c.tid, c.plug == plugIn, c.thread == threadRunning
	}
	m.mu.Unlock()
	if !ok {
		return "gone"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "plugged=%v running=%v exits=%d thread=%s", plugged, running, c.exits.Load(), threadStat(tid))
	res := make(chan string, 1)
	go func() {
		var s string
		err := m.onThread(id, func(kv *kvm.VCPU) error {
			s = describeVCPU(kv, mem, code)
			return nil
		})
		if err != nil {
			s = err.Error()
		}
		res <- s
	}()
	select {
	case s := <-res:
		b.WriteString(" ")
		b.WriteString(s)
	case <-time.After(dumpCallTimeout):
		b.WriteString(" (its thread did not answer)")
	}
	return b.String()
}

// threadStat is the state letter and user+system ticks of thread tid.
func threadStat(tid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/stat", tid))
	if err != nil {
		return "?"
	}
	// The fields after the command name, which is in parentheses.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return "?"
	}
	return fmt.Sprintf("%s/utime=%s/stime=%s", f[0], f[11], f[12])
}

// CR3OutsideRAM follows a CR3 in the state dump that points outside guest
// RAM: a vCPU with paging on cannot run from such page tables, so it is
// running someone else's context (under the emulated KVM host, the KVM
// host's own: docs/testing.md).
const CR3OutsideRAM = "(outside guest RAM)"

// describeVCPU reads vCPU kv's state on its thread; code reads the guest's
// bytes at an address (see guestCode).
func describeVCPU(kv *kvm.VCPU, mem *memory.Guest, code func(cr3, cr4, rip uint64) string) string {
	var b strings.Builder
	r, rerr := kv.Regs()
	if rerr == nil {
		fmt.Fprintf(&b, "rip=%#x rflags=%#x", r.RIP, r.RFLAGS)
	}
	if sr, err := kv.Sregs(); err == nil {
		fmt.Fprintf(&b, " cr2=%#x cr3=%#x cr4=%#x", sr.CR2, sr.CR3, sr.CR4)
		if boot.PagingOn(sr.CR0) && mem != nil && !mem.Contains(sr.CR3&^(layout.PageSize-1)) {
			b.WriteString(" " + CR3OutsideRAM)
		}
		if rerr == nil && boot.PagingOn(sr.CR0) {
			fmt.Fprintf(&b, " code=%s", code(sr.CR3, sr.CR4, r.RIP))
		}
	}
	if s, err := kv.MPState(); err == nil {
		fmt.Fprintf(&b, " mp_state=%d", s)
	}
	if e, err := kv.Events(); err == nil {
		fmt.Fprintf(&b, " events=exc:%d/%d/%#x,irq:%d/%#x/shadow=%d,nmi:%d/%d/masked=%d",
			e.Exception.Injected, e.Exception.Pending, e.Exception.Nr,
			e.Interrupt.Injected, e.Interrupt.Nr, e.Interrupt.Shadow,
			e.NMI.Injected, e.NMI.Pending, e.NMI.Masked)
	}
	l, err := kv.LAPIC()
	if err != nil {
		fmt.Fprintf(&b, " lapic: %v", err)
		return b.String()
	}
	fmt.Fprintf(&b, " tpr=%#x ppr=%#x isr=%s irr=%s tmr=%s timer=%#x/%d/%d",
		l.Reg32(lapicTPR), l.Reg32(lapicPPR), vectors(&l, lapicISR), vectors(&l, lapicIRR), vectors(&l, lapicTMR),
		l.Reg32(lapicLVTTimer), l.Reg32(lapicTimerInit), l.Reg32(lapicTimerCount))
	return b.String()
}

// vectors lists the vectors set in the 256-bit LAPIC bitmap at base.
func vectors(l *kvm.LAPICState, base int) string {
	var v []string
	for i := range 8 {
		w := l.Reg32(base + 16*i)
		for bit := range 32 {
			if w&(1<<bit) != 0 {
				v = append(v, fmt.Sprintf("%#x", i*32+bit))
			}
		}
	}
	return "[" + strings.Join(v, ",") + "]"
}

// formatIOAPIC lists the unmasked pins of the I/O APIC and its request bits.
func formatIOAPIC(io kvm.IOAPICState) string {
	var b strings.Builder
	fmt.Fprintf(&b, "irr=%#x", io.IRR)
	for pin, e := range io.Redir {
		if e.Masked() {
			continue
		}
		trig := "edge"
		if e.Level() {
			trig = "level"
		}
		fmt.Fprintf(&b, " pin%d:vec=%#x,%s,mode=%d,dest=%#x,remote_irr=%v", pin, e.Vector(), trig, e.DeliveryMode(), e.Dest(), e.RemoteIRR())
	}
	return b.String()
}
