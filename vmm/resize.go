package vmm

import (
	"context"
	"errors"
	"fmt"

	"vmm/vmm/hotplug"
)

// resizePlan is a validated vm.resize request: what changes, and to what.
type resizePlan struct {
	// vcpus is the new vCPU count; 0 leaves it alone.
	vcpus int
}

// planResize checks req as a whole against cfg and says what to change. It
// changes nothing: a request with any invalid part is refused entirely
// (ErrInvalid), so a valid desired_vcpus never lands next to a bad
// desired_ram.
func planResize(cfg VmConfig, req ResizeRequest) (resizePlan, error) {
	var p resizePlan
	if req.DesiredVcpus == nil && req.DesiredRam == nil && req.DesiredBalloon == nil {
		return p, invalidf("resize: the request asks for nothing (desired_vcpus, desired_ram or desired_balloon)")
	}
	if req.DesiredVcpus != nil {
		n := *req.DesiredVcpus
		if n < 1 || n > int64(cfg.Cpus.MaxVcpus) {
			return p, invalidf("resize: desired_vcpus=%d: must be between 1 and max_vcpus (%d)", n, cfg.Cpus.MaxVcpus)
		}
		if int(n) != cfg.Cpus.BootVcpus {
			p.vcpus = int(n)
		}
	}
	if req.DesiredRam != nil {
		b := *req.DesiredRam
		if b <= 0 {
			return p, invalidf("resize: desired_ram=%d: must be a positive byte count", b)
		}
		if uint64(b) != cfg.Memory.Size {
			return p, notSupported("resize: desired_ram")
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
	if v.cfg == nil {
		return fmt.Errorf("resize: %w", ErrNoVM)
	}
	if v.state == StatePaused {
		return fmt.Errorf("resize: the VM is %s: %w", v.state, ErrState)
	}
	p, err := planResize(*v.cfg, req)
	if err != nil {
		return err
	}
	if v.m != nil && v.m.cpuHP.PendingEject() {
		return fmt.Errorf("resize: the guest has not finished ejecting a vCPU: %w", ErrBusy)
	}
	if p.vcpus == 0 {
		return nil
	}
	if v.m != nil {
		if err := v.m.resizeCPUs(p.vcpus); err != nil {
			return fmt.Errorf("resize: %w", err)
		}
	}
	v.cfg.Cpus.BootVcpus = p.vcpus
	return nil
}

// resizeCPUs makes n vCPUs present in the guest. Growing creates the
// missing vCPUs (or plugs parked ones back), starts them, marks them
// inserting and signals the guest; they come up offline. Shrinking asks the
// guest to eject the highest ones; ejectCPU parks each when the guest's
// _EJ0 arrives. The caller checked 1 <= n <= max and no pending eject.
func (m *machine) resizeCPUs(n int) error {
	present := 0
	for id := range m.cfg.Cpus.MaxVcpus {
		if m.cpuHP.Present(id) {
			present = id + 1
		}
	}
	switch {
	case n > present:
		for id := present; id < n; id++ {
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
		}
	case n < present:
		var errs []error
		for id := present - 1; id >= n; id-- {
			if err := m.cpuHP.SetRemoving(id); err != nil {
				errs = append(errs, fmt.Errorf("remove vCPU %d: %w", id, err))
			}
		}
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
