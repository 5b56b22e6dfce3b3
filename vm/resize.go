package vm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vmmdev/vmm/kvm"
	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/hotplug"
	"github.com/vmmdev/vmm/vm/layout"
	"github.com/vmmdev/vmm/vm/memory"
)

// resizePlan is a validated vm.resize request: what changes, and to what.
type resizePlan struct {
	// vcpus is the new vCPU count; 0 leaves it alone.
	vcpus int
	// addRAM is how many bytes to hot-add now; 0 adds none.
	addRAM uint64
	// nextRAM is the RAM the VM boots with at its next reboot; 0 leaves it
	// alone.
	nextRAM uint64
}

// ramState is what a RAM resize is checked against.
type ramState struct {
	// current is the RAM the guest has now: boot RAM plus hot-added.
	current uint64
	// limit is the most RAM the VM may have: boot RAM plus hotplug_size.
	limit uint64
	// freeSlots is how many more hot adds the memory controller takes.
	freeSlots int
}

// planResize checks req as a whole against cfg and says what to change. It
// changes nothing: a request with any invalid part is refused entirely
// (ErrInvalid), so a valid desired_vcpus never lands next to a bad
// desired_ram.
func planResize(cfg config.VM, ram ramState, req ResizeRequest) (resizePlan, error) {
	var p resizePlan
	if req.DesiredVCPUs == nil && req.DesiredRAM == nil && req.DesiredBalloon == nil {
		return p, invalidf("resize: the request asks for nothing (desired_vcpus, desired_ram or desired_balloon)")
	}
	if req.DesiredVCPUs != nil {
		n := *req.DesiredVCPUs
		if n < 1 || n > int64(cfg.CPUs.MaxVCPUs) {
			return p, invalidf("resize: desired_vcpus=%d: must be between 1 and max_vcpus (%d)", n, cfg.CPUs.MaxVCPUs)
		}
		if int(n) != cfg.CPUs.BootVCPUs {
			p.vcpus = int(n)
		}
	}
	if req.DesiredRAM != nil {
		b := *req.DesiredRAM
		if b <= 0 {
			return p, invalidf("resize: desired_ram=%d: must be a positive byte count", b)
		}
		switch n := uint64(b); {
		case n > ram.current:
			add := n - ram.current
			switch {
			case cfg.Memory.HotplugSize == 0:
				return p, invalidf("resize: desired_ram=%d: the VM has no hot plug space (--memory hotplug_size=)", b)
			case add%config.HotplugBlock != 0:
				return p, invalidf("resize: desired_ram=%d: the %d bytes to add are not a multiple of 128 MiB (the guest's memory block size)", b, add)
			case n > ram.limit:
				return p, invalidf("resize: desired_ram=%d: above size + hotplug_size (%d bytes)", b, ram.limit)
			case ram.freeSlots < 1:
				return p, invalidf("resize: desired_ram=%d: every memory hot plug slot is used", b)
			}
			p.addRAM = add
		case n < ram.current:
			// Applied at the next reboot, as boot RAM.
			if n < config.MinMemory || n%4096 != 0 {
				return p, invalidf("resize: desired_ram=%d: boot RAM must be at least %d MiB and a multiple of 4 KiB", b, config.MinMemory/config.MiB)
			}
			p.nextRAM = n
		}
	}
	if req.DesiredBalloon != nil {
		return p, notSupported("resize: desired_balloon (no balloon device)")
	}
	return p, nil
}

// Resize changes the vCPU count or RAM of the VM. The request is validated
// as a whole first (ErrInvalid, nothing changed); a vCPU change while the
// guest has not finished an earlier eject is refused with ErrBusy. A new
// vCPU count is stored as boot_vcpus, so a reboot keeps it; on a running VM
// it is applied live through ACPI hot plug: added vCPUs come up offline in
// the guest, removed ones are ejected by the guest and parked.
func (v *VMM) Resize(ctx context.Context, req ResizeRequest) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.checkLocked(StateRunning, StateCreated, StateRunning, StateShutdown); err != nil {
		return err
	}
	ram := ramState{current: v.cfg.Memory.Size, limit: v.cfg.Memory.Size + v.cfg.Memory.HotplugSize}
	if v.m != nil {
		ram.current = v.m.mem.Size()
		if v.m.memHP != nil {
			ram.freeSlots = v.m.memHP.Slots() - v.m.memHP.Used()
		}
	}
	v.syncVCPUsLocked()
	p, err := planResize(*v.cfg, ram, req)
	if err != nil {
		return err
	}
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
	if p.addRAM > 0 && v.m == nil {
		// No guest to hot plug into: the VM boots with it instead.
		p.nextRAM, p.addRAM = ram.current+p.addRAM, 0
	}
	// RAM first: it is the part that can fail for want of host memory, and
	// then nothing has changed.
	if p.addRAM > 0 {
		if err := v.m.addRAM(p.addRAM); err != nil {
			return fmt.Errorf("resize: %w", err)
		}
		// The added RAM stays after a reboot, as boot RAM.
		v.nextRAM = ram.current + p.addRAM
	}
	if p.nextRAM > 0 {
		v.nextRAM = p.nextRAM
		if v.m == nil {
			v.applyNextRAMLocked()
		}
	}
	if p.vcpus == 0 {
		return nil
	}
	if v.m != nil {
		if err := v.m.resizeCPUs(p.vcpus); err != nil {
			return fmt.Errorf("resize: %w", err)
		}
	}
	v.cfg.CPUs.BootVCPUs = p.vcpus
	return nil
}

// ejectOverdue decides a vCPU resize that finds removals pending for
// waited: ErrBusy while they are younger than timeout, nil (withdraw them
// and go ahead) after.
func ejectOverdue(waited, timeout time.Duration) error {
	if waited < timeout {
		return fmt.Errorf("resize: the guest has not finished ejecting vCPUs (asked %.1fs ago; a resize after %s withdraws them): %w",
			waited.Seconds(), timeout, ErrBusy)
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

// applyNextRAMLocked makes the RAM size a resize asked for the boot RAM, as
// a reboot does: hotplug_size shrinks or grows so that size + hotplug_size,
// the most RAM the VM may have, stays, and the whole hot plug space is free
// again. Called with v.mu held, with no machine running.
func (v *VMM) applyNextRAMLocked() {
	if v.cfg == nil || v.nextRAM == 0 {
		return
	}
	mc := &v.cfg.Memory
	limit := mc.Size + mc.HotplugSize
	mc.Size, v.nextRAM = v.nextRAM, 0
	mc.HotplugSize = 0
	if limit > mc.Size {
		mc.HotplugSize = (limit - mc.Size) &^ (config.HotplugBlock - 1)
	}
}

// addRAM hot-adds n bytes (a multiple of 128 MiB) at the end of what was
// hot-added so far: a new host mapping (backed lazily, as the guest touches
// it), its own KVM memslot, and a memory hot plug slot the guest is told
// about through the GED. On failure nothing is left behind.
func (m *machine) addRAM(n uint64) error {
	if m.memHP == nil {
		return invalidf("add RAM: the VM has no hot plug space")
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
