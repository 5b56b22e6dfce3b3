package vm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vmmdev/vmm/kvm"
	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/events"
	"github.com/vmmdev/vmm/vm/hotplug"
	"github.com/vmmdev/vmm/vm/layout"
	"github.com/vmmdev/vmm/vm/memory"
)

// resizePlan is a validated vm.resize request: what changes, and to what.
type resizePlan struct {
	// vcpus is the new vCPU count; 0 leaves it alone.
	vcpus int
	// ram is the new memory.size, the RAM asked for; 0 leaves it alone.
	ram uint64
	// addRAM is how many bytes to hot-add now; 0 adds none.
	addRAM uint64
	// plugged is the RAM above boot RAM that virtio-mem is to plug
	// (memory.hotplugged_size), when setPlugged.
	plugged    uint64
	setPlugged bool
	// balloon is the balloon's new target size, when setBalloon.
	balloon    uint64
	setBalloon bool
}

// ramState is what a RAM resize is checked against.
type ramState struct {
	// running is set when a guest runs, into which RAM is hot-added.
	running bool
	// current is the RAM the guest has now, boot RAM plus hot-added (when
	// running).
	current uint64
	// limit is the most RAM the running guest may have: its boot RAM plus
	// the whole 128 MiB blocks of its hot plug space.
	limit uint64
	// space is the usable hot plug space of the running guest.
	space uint64
	// freeSlots is how many more hot adds the memory controller takes.
	freeSlots int
}

// planResize checks req as a whole against cfg and says what to change. It
// changes nothing: a request with any invalid part is refused entirely
// (ErrInvalid), so a valid desired_vcpus never lands next to a bad
// desired_ram. The errors carry Cloud Hypervisor's texts.
//
// RAM follows Cloud Hypervisor's ACPI hot plug: memory.size becomes the
// size asked for at once. With a guest running, more RAM than it has is
// hot-added (in 128 MiB blocks, within its hot plug space), and less is
// left for the next boot; without one, the size is simply the next boot's.
func planResize(cfg config.VM, ram ramState, req ResizeRequest) (resizePlan, error) {
	var p resizePlan
	if req.DesiredVCPUs == nil && req.DesiredRAM == nil && req.DesiredBalloon == nil {
		return p, invalidf("the request asks for nothing (desired_vcpus, desired_ram or desired_balloon)")
	}
	if req.DesiredVCPUs != nil {
		n := *req.DesiredVCPUs
		switch {
		case n == 0:
			return p, invalid(chError(textZeroVCPUs, "desired_vcpus=0: at least 1 vCPU is needed"))
		case n < 0:
			return p, invalidf("desired_vcpus=%d: at least 1 vCPU is needed", n)
		case n > int64(cfg.CPUs.MaxVCPUs):
			return p, invalid(chError(textVCPUsAboveMax, "desired_vcpus=%d: must be between 1 and max_vcpus (%d)", n, cfg.CPUs.MaxVCPUs))
		}
		if int(n) != cfg.CPUs.BootVCPUs {
			p.vcpus = int(n)
		}
	}
	if req.DesiredRAM != nil {
		var err error
		switch b := *req.DesiredRAM; {
		case b <= 0:
			err = invalidf("desired_ram=%d: must be a positive byte count", b)
		case cfg.Memory.HotplugMethod == config.HotplugVirtioMem:
			err = planVirtioMem(&p, cfg, uint64(b))
		default:
			err = planRAM(&p, cfg, ram, b)
		}
		if err != nil {
			return p, err
		}
	}
	if req.DesiredBalloon != nil {
		if err := planBalloon(&p, cfg, ram.guestRAM(cfg, p), *req.DesiredBalloon); err != nil {
			return p, err
		}
	}
	return p, nil
}

// planRAM plans desired_ram=b (positive) for ACPI memory hot plug.
func planRAM(p *resizePlan, cfg config.VM, ram ramState, b int64) error {
	n := uint64(b)
	if ram.running && n > ram.current {
		add := n - ram.current
		switch {
		case ram.space == 0:
			return invalid(chError(textNoHotplugSpace, "desired_ram=%d: the VM has no hot plug space (memory.hotplug_size)", b))
		case add%config.HotplugBlock != 0:
			return invalid(chError(textInvalidRAMSize, "desired_ram=%d: the %d bytes to add are not a multiple of 128 MiB (the guest's memory block size)", b, add))
		case n > ram.limit:
			return invalid(chError(textNoHotplugSpace, "desired_ram=%d: above the boot RAM plus the hot plug space (%d bytes)", b, ram.limit))
		case ram.freeSlots < 1:
			return invalid(chError(textNoACPISlot, "desired_ram=%d: every memory hot plug slot is used", b))
		}
		p.addRAM = add
	} else if n != ram.current || !ram.running {
		// The next boot's RAM.
		if n < config.MinMemory || n%4096 != 0 {
			return invalid(chError(textInvalidRAMValue, "desired_ram=%d: the RAM the VM boots with must be at least %d MiB and a multiple of 4 KiB", b, config.MinMemory/config.MiB))
		}
	}
	if n != cfg.Memory.Size {
		p.ram = n
	}
	return nil
}

// Resize changes the vCPU count or RAM of the VM. The request is validated
// as a whole first (ErrInvalid, nothing changed); a vCPU change while the
// guest has not finished an earlier eject is refused with ErrBusy. A new
// vCPU count is stored as boot_vcpus, so a reboot keeps it; on a running VM
// it is applied live through ACPI hot plug: added vCPUs come up offline in
// the guest, removed ones are ejected by the guest and parked. A new RAM
// size is stored as memory.size at once, as Cloud Hypervisor does: RAM
// added to a running VM is hot-added now, a lower size waits for the next
// boot, and a VM that does not run just boots with it.
func (v *VMM) Resize(ctx context.Context, req ResizeRequest) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cfg != nil && v.state == StatePaused {
		return stateError("the VM is paused: resume it to resize it")
	}
	if err := v.checkLocked(StateRunning); err != nil {
		return err
	}
	ram := v.ramStateLocked()
	v.syncVCPUsLocked()
	p, err := planResize(*v.cfg, ram, req)
	if err != nil {
		return err
	}
	v.emit(events.SourceVM, events.Resizing)
	if err := v.applyResizeLocked(ram, req, p); err != nil {
		return err
	}
	v.emit(events.SourceVM, events.Resized)
	return nil
}

// applyResizeLocked carries out the plan p of req. Called with v.mu held.
func (v *VMM) applyResizeLocked(ram ramState, req ResizeRequest, p resizePlan) error {
	var err error
	if p.vcpus != 0 && v.m != nil && v.m.cpuHP.PendingEject() {
		waited := time.Since(v.m.removalAsked)
		if err := ejectOverdue(waited, v.opts.EjectTimeout); err != nil {
			return err
		}
		ids := v.m.cpuHP.CancelRemoves()
		v.log.Warn("withdrew vCPU removals the guest never completed; they stay", "vcpus", ids, "waited", waited.Round(time.Millisecond))
		v.syncVCPUsLocked()
		if p, err = planResize(*v.cfg, ram, req); err != nil {
			return err
		}
	}
	// RAM first: it is the part that can fail for want of host memory, and
	// then nothing has changed.
	if p.addRAM > 0 {
		if err := v.m.addRAM(p.addRAM); err != nil {
			return err
		}
	}
	if p.ram > 0 {
		v.cfg.Memory.Size = p.ram
	}
	if p.setPlugged {
		if v.m != nil && v.m.vmem != nil {
			if err := v.m.vmem.Resize(p.plugged); err != nil {
				return invalid(err)
			}
		}
		v.cfg.Memory.HotpluggedSize = p.plugged
	}
	if p.setBalloon {
		if v.m != nil && v.m.balloon != nil {
			if err := v.m.balloon.Resize(p.balloon); err != nil {
				return invalid(err)
			}
		}
		v.cfg.Balloon.Size = p.balloon
	}
	if p.vcpus == 0 {
		return nil
	}
	if v.m != nil {
		if err := v.m.resizeCPUs(p.vcpus); err != nil {
			return err
		}
	}
	v.cfg.CPUs.BootVCPUs = p.vcpus
	return nil
}

// ramStateLocked is what a RAM resize is checked against now. Called with
// v.mu held.
func (v *VMM) ramStateLocked() ramState {
	if v.m == nil {
		return ramState{current: v.cfg.Memory.Size}
	}
	mc := v.m.cfg.Memory
	space := usableHotplug(mc.HotplugSize)
	r := ramState{running: true, current: v.m.ramSize(), limit: mc.Size + space, space: space}
	if v.m.memHP != nil {
		r.freeSlots = v.m.memHP.Slots() - v.m.memHP.Used()
	}
	return r
}

// guestRAM is the RAM a balloon is measured against: what the guest will
// have once the plan p (its RAM part) is applied.
func (r ramState) guestRAM(cfg config.VM, p resizePlan) uint64 {
	switch {
	case p.setPlugged:
		return cfg.Memory.Size + p.plugged
	case p.ram > 0 && (!r.running || p.addRAM > 0):
		return p.ram
	case r.running:
		return r.current
	}
	return cfg.Memory.TotalSize()
}

// usableHotplug is the part of a hot plug space of size bytes that RAM can
// be hot-added into: its whole 128 MiB blocks.
func usableHotplug(size uint64) uint64 { return size &^ (config.HotplugBlock - 1) }

// ejectOverdue decides a vCPU resize that finds removals pending for
// waited: ErrBusy while they are younger than timeout, nil (withdraw them
// and go ahead) after.
func ejectOverdue(waited, timeout time.Duration) error {
	if waited < timeout {
		return ofKind(chError(textPendingRemoval, "the guest has not finished ejecting vCPUs (asked %.1fs ago; a resize after %s withdraws them)",
			waited.Seconds(), timeout), ErrBusy)
	}
	return nil
}

// syncVCPUsLocked makes boot_vcpus the number of vCPUs present in the
// guest when no removal is pending: the guest may have ejected a vCPU on
// its own (through sysfs) or refused an eject, and the count it has is the
// one a reboot keeps. While a removal is pending, boot_vcpus is the
// resize's target already. Called with v.mu held.
func (v *VMM) syncVCPUsLocked() {
	if v.cfg == nil || v.m == nil || v.m.cpuHP.PendingEject() {
		return
	}
	v.cfg.CPUs.BootVCPUs = v.m.cpuHP.PresentCount()
}

// layoutRAMLocked makes memory.size the boot RAM of the machine about to
// be built, as a boot after a RAM resize does, keeping the most RAM the VM
// may have: hotplug_size shrinks or grows by what the boot RAM grew or
// shrank since it was laid out (bootRAM), in whole 128 MiB blocks and down
// to 0, so that size + hotplug_size stays. Called with v.mu held, with no
// machine running.
func (v *VMM) layoutRAMLocked() {
	mc := &v.cfg.Memory
	if v.bootRAM == 0 || mc.Size == v.bootRAM {
		return
	}
	limit := v.bootRAM + mc.HotplugSize
	mc.HotplugSize = 0
	if limit > mc.Size {
		mc.HotplugSize = usableHotplug(limit - mc.Size)
	}
	v.bootRAM = mc.Size
}

// addRAM hot-adds n bytes (a multiple of 128 MiB) at the end of what was
// hot-added so far: a new host mapping (backed lazily, as the guest touches
// it), its own KVM memslot, and a memory hot plug slot the guest is told
// about through the GED. On failure nothing is left behind.
func (m *machine) addRAM(n uint64) error {
	if m.memHP == nil {
		return invalid(chError(textNoHotplugSpace, "the VM has no hot plug space"))
	}
	boot := m.cfg.Memory.Size
	base := layout.HotplugRAMStart(boot) + (m.mem.Size() - boot)
	slot := uint32(len(m.mem.Regions()))
	r, err := m.mem.Add(memory.Range{Start: base, Size: n}, slot)
	if err != nil {
		return fmt.Errorf("add RAM at %#x: %w", base, err)
	}
	region := kvm.MemoryRegion(slot, base, r.Host())
	if err := m.vm.SetUserMemoryRegion(region); err != nil {
		_ = m.mem.Remove(base)
		return fmt.Errorf("add RAM at %#x: memslot %d: %w", base, slot, err)
	}
	if _, err := m.memHP.AddSlot(base, n); err != nil {
		region.MemorySize = 0
		_ = m.vm.SetUserMemoryRegion(region)
		_ = m.mem.Remove(base)
		return fmt.Errorf("add RAM at %#x: %w", base, err)
	}
	m.log.Info("hot-added RAM", "base", fmt.Sprintf("%#x", base), "mib", n>>20, "slot", slot)
	if err := m.ged.Trigger(hotplug.EventMemory); err != nil {
		return fmt.Errorf("signal the guest: %w", err)
	}
	return nil
}

// resizeCPUs makes n vCPUs present in the guest. Growing creates the
// missing vCPUs, lowest ids first (or plugs parked ones back), starts them,
// marks them inserting and signals the guest; they come up offline.
// Shrinking asks the guest to eject the highest present ones; EjectCPU
// parks each when the guest's _EJ0 arrives. The present vCPUs need not be
// 0 to count-1: the guest may have ejected one in the middle itself. The
// caller checked 1 <= n <= max and no pending eject.
func (m *machine) resizeCPUs(n int) error {
	max := m.cfg.CPUs.MaxVCPUs
	present := m.cpuHP.PresentCount()
	switch {
	case n > present:
		for id := 0; id < max && present < n; id++ {
			if m.cpuHP.Present(id) {
				continue
			}
			if !m.cpus.exists(id) {
				if err := m.cpus.create(id, false); err != nil {
					return fmt.Errorf("add vCPU %d: %w", id, err)
				}
			}
			if err := m.cpus.plug(id); err != nil {
				return fmt.Errorf("add vCPU %d: %w", id, err)
			}
			if err := m.cpuHP.SetInserting(id); err != nil {
				return fmt.Errorf("add vCPU %d: %w", id, err)
			}
			present++
		}
	case n < present:
		var errs []error
		for id := max - 1; id >= 0 && present > n; id-- {
			if !m.cpuHP.Present(id) {
				continue
			}
			if err := m.cpuHP.SetRemoving(id); err != nil {
				errs = append(errs, fmt.Errorf("remove vCPU %d: %w", id, err))
			}
			present--
		}
		m.removalAsked = time.Now()
		if err := errors.Join(errs...); err != nil {
			return err
		}
	default:
		return nil
	}
	if err := m.ged.Trigger(hotplug.EventCPU); err != nil {
		return fmt.Errorf("signal the guest: %w", err)
	}
	return nil
}
