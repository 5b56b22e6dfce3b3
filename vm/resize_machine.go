package vm

import (
	"errors"
	"fmt"
	"time"

	"github.com/vmmdev/vmm/kvm"
	"github.com/vmmdev/vmm/vm/hotplug"
	"github.com/vmmdev/vmm/vm/layout"
	"github.com/vmmdev/vmm/vm/memory"
)

// The hot plug steps of a resize, on a running machine. Each either
// completes or undoes what it did that the guest has not seen yet, so that
// vm.info, the guest and the next boot agree; what the guest has seen
// already (it acknowledged an insertion during the step) stays and is
// counted.

// memslots is the part of a KVM VM that RAM hot plug uses.
type memslots interface {
	SetUserMemoryRegion(kvm.UserspaceMemoryRegion) error
}

// vcpuPlugger is the part of the cpuManager that vCPU hot plug uses.
type vcpuPlugger interface {
	exists(id int) bool
	create(id int, bootCPU bool) error
	plug(ids ...int) error
	park(id int) error
}

// addRAM hot-adds n bytes (a multiple of 128 MiB) at the end of what was
// hot-added so far: a new host mapping (backed lazily, as the guest touches
// it), its own KVM memslot, and a memory hot plug slot the guest is told
// about through the GED. On failure nothing is left behind, unless the
// guest took the slot meanwhile (then the RAM stays and is counted).
func (m *machine) addRAM(n uint64) error {
	if m.memHP == nil {
		return invalid(chError(textNoHotplugSpace, "the VM has no hot plug space"))
	}
	return hotAddRAM(m.mem, m.vm, m.memHP, m.ged, m.cfg.Memory.Size, n, m.log.Info)
}

// hotAddRAM is addRAM on its parts: guest memory mem of boot RAM boot, the
// VM's memslots, the memory controller hp and the GED. logf logs the
// success.
func hotAddRAM(mem *memory.Guest, vm memslots, hp *hotplug.MemoryHotplug, ged *hotplug.GED, boot, n uint64, logf func(string, ...any)) error {
	base := layout.HotplugRAMStart(boot) + (mem.Size() - boot)
	slot := uint32(len(mem.Regions()))
	r, err := mem.Add(memory.Range{Start: base, Size: n}, slot)
	if err != nil {
		return fmt.Errorf("add RAM at %#x: %w", base, err)
	}
	region := kvm.MemoryRegion(slot, base, r.Host())
	// undo takes the RAM away again: the memslot, then the mapping (which
	// stays while KVM may still map it).
	undo := func(cause error) error {
		region.MemorySize = 0
		if err := vm.SetUserMemoryRegion(region); err != nil {
			return fmt.Errorf("add RAM at %#x: %w (and removing its memslot %d failed, so its mapping stays: %w)", base, cause, slot, err)
		}
		if err := mem.Remove(base); err != nil {
			return fmt.Errorf("add RAM at %#x: %w (and unmapping it failed: %w)", base, cause, err)
		}
		return fmt.Errorf("add RAM at %#x: %w", base, cause)
	}
	if err := vm.SetUserMemoryRegion(region); err != nil {
		if rerr := mem.Remove(base); rerr != nil {
			return fmt.Errorf("add RAM at %#x: memslot %d: %w (and unmapping it failed: %w)", base, slot, err, rerr)
		}
		return fmt.Errorf("add RAM at %#x: memslot %d: %w", base, slot, err)
	}
	idx, err := hp.AddSlot(base, n)
	if err != nil {
		return undo(err)
	}
	if err := ged.Trigger(hotplug.EventMemory); err != nil {
		if hp.CancelInsert(idx) {
			return undo(fmt.Errorf("signal the guest: %w", err))
		}
		// The guest found the slot on its own (a scan for another
		// event): the RAM is the guest's.
		logf("hot-added RAM; the guest took it before its signal failed", "base", fmt.Sprintf("%#x", base), "mib", n>>20, "slot", slot, "err", err)
		return nil
	}
	logf("hot-added RAM", "base", fmt.Sprintf("%#x", base), "mib", n>>20, "slot", slot)
	return nil
}

// resizeCPUs makes n vCPUs present in the guest. Growing creates the
// missing vCPUs, lowest ids first (or plugs parked ones back), starts them,
// marks them inserting and signals the guest; they come up offline.
// Shrinking asks the guest to eject the highest present ones; EjectCPU
// parks each when the guest's _EJ0 arrives. The present vCPUs need not be
// 0 to count-1: the guest may have ejected one in the middle itself. The
// caller checked 1 <= n <= max and no pending eject. On failure (a vCPU
// that cannot be created, the GED's interrupt) the vCPUs the guest has not
// seen are taken back: the guest and the controller keep the count they
// had, but for vCPUs the guest acknowledged meanwhile.
func (m *machine) resizeCPUs(n int) error {
	asked, err := resizeVCPUs(m.cpus, m.cpuHP, m.ged, m.cfg.CPUs.MaxVCPUs, n)
	if asked {
		m.removalAsked = time.Now()
	}
	return err
}

// resizeVCPUs is resizeCPUs on its parts: the vCPUs, the CPU controller
// hp and the GED, for max possible vCPUs. It reports whether it left
// removals pending.
func resizeVCPUs(cpus vcpuPlugger, hp *hotplug.CPUHotplug, ged *hotplug.GED, max, n int) (removing bool, err error) {
	present := hp.PresentCount()
	var added []int
	// undo takes back the vCPUs added so far that the guest has not seen.
	undo := func(cause error) error {
		errs := []error{cause}
		for _, id := range added {
			if !hp.CancelInsert(id) {
				continue // the guest has it: it stays
			}
			if err := cpus.park(id); err != nil {
				errs = append(errs, fmt.Errorf("park vCPU %d again: %w", id, err))
			}
		}
		return errors.Join(errs...)
	}
	switch {
	case n > present:
		for id := 0; id < max && present < n; id++ {
			if hp.Present(id) {
				continue
			}
			if !cpus.exists(id) {
				if err := cpus.create(id, false); err != nil {
					return false, undo(fmt.Errorf("add vCPU %d: %w", id, err))
				}
			}
			if err := cpus.plug(id); err != nil {
				return false, undo(fmt.Errorf("add vCPU %d: %w", id, err))
			}
			if err := hp.SetInserting(id); err != nil {
				added = append(added, id) // plugged: park it again
				return false, undo(fmt.Errorf("add vCPU %d: %w", id, err))
			}
			added = append(added, id)
			present++
		}
	case n < present:
		var errs []error
		for id := max - 1; id >= 0 && present > n; id-- {
			if !hp.Present(id) {
				continue
			}
			if err := hp.SetRemoving(id); err != nil {
				errs = append(errs, fmt.Errorf("remove vCPU %d: %w", id, err))
			}
			present--
		}
		if err := errors.Join(errs...); err != nil {
			hp.CancelRemoves()
			return false, err
		}
		removing = true
	default:
		return false, nil
	}
	if err := ged.Trigger(hotplug.EventCPU); err != nil {
		err = fmt.Errorf("signal the guest: %w", err)
		if removing {
			// The guest was not asked: nothing to wait for.
			hp.CancelRemoves()
			return false, err
		}
		return false, undo(err)
	}
	return removing, nil
}
