package vm

import (
	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/memory"
	"github.com/vmmdev/vmm/vm/virtio"
)

// The virtio-balloon (config.VM.Balloon): the guest gives up balloon.size
// bytes of its RAM, which vm.resize's desired_balloon changes live; pages
// it puts in the balloon, and with free_page_reporting the free pages it
// reports, go back to the host (memory.Guest.Discard: MADV_DONTNEED, or
// MADV_REMOVE on shared memory).

// balloonID is the balloon's device id, fixed as in Cloud Hypervisor
// unless the configuration gives one.
const balloonID = "__balloon"

// newBalloon makes the balloon device the configuration asks for.
func (m *machine) newBalloon() (*virtio.Balloon, error) {
	b := m.cfg.Balloon
	dev, err := virtio.NewBalloon(virtio.BalloonConfig{
		Target: b.Size, DeflateOnOOM: b.DeflateOnOOM, FreePageReporting: b.FreePageReporting,
		ReleasePages: m.mem.Discard,
		ReleaseHost:  memory.DiscardHost,
		Log:          m.log,
	})
	if err != nil {
		return nil, err
	}
	m.balloon = dev
	return dev, nil
}

// planBalloon plans desired_balloon=n: a balloon must exist, and be
// smaller than the RAM the guest has (ram), as Cloud Hypervisor's rule for
// balloon.size says. It applies whether or not the guest runs: a VM that
// does not run inflates it at boot.
func planBalloon(p *resizePlan, cfg config.VM, ram uint64, n int64) error {
	switch {
	case cfg.Balloon == nil:
		return invalid(chError(textNoBalloon, "desired_balloon: the VM has no balloon (--balloon, VmConfig's balloon)"))
	case n < 0:
		return invalidf("desired_balloon=%d: must not be negative", n)
	case uint64(n) >= ram:
		return invalid(chError(textBalloonTooBig, "desired_balloon=%d: not below the guest's RAM (%d bytes)", n, ram))
	}
	p.balloon, p.setBalloon = uint64(n), uint64(n) != cfg.Balloon.Size
	return nil
}

// balloonActual is the balloon's size as the guest last reported it; 0
// without a balloon.
func (m *machine) balloonActual() uint64 {
	if m.balloon == nil {
		return 0
	}
	return m.balloon.Actual()
}
