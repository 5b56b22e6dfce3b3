package vm

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/events"
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
// Each part (RAM, virtio-mem, balloon, vCPUs, in this order) is applied
// whole or not at all, and recorded in the configuration as soon as it is
// applied: a part that fails leaves the parts before it applied and says
// so, and the configuration, the machine and the guest agree.
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
	var done []string
	// partial says which parts were applied before err.
	partial := func(err error) error {
		if len(done) == 0 {
			return err
		}
		return fmt.Errorf("%w (applied before it: %s)", err, strings.Join(done, ", "))
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
		done = append(done, "desired_ram")
	}
	if p.setPlugged {
		if v.m != nil && v.m.vmem != nil {
			if err := v.m.vmem.Resize(p.plugged); err != nil {
				return partial(invalid(err))
			}
		}
		v.cfg.Memory.HotpluggedSize = p.plugged
		if p.ram == 0 {
			done = append(done, "desired_ram")
		}
	}
	if p.setBalloon {
		if v.m != nil && v.m.balloon != nil {
			if err := v.m.balloon.Resize(p.balloon); err != nil {
				return partial(invalid(err))
			}
		}
		v.cfg.Balloon.Size = p.balloon
		done = append(done, "desired_balloon")
	}
	if p.vcpus == 0 {
		return nil
	}
	if v.m != nil {
		if err := v.m.resizeCPUs(p.vcpus); err != nil {
			// What the guest kept: the vCPUs present now.
			v.syncVCPUsLocked()
			return partial(err)
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
