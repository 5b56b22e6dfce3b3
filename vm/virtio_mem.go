package vm

import (
	"fmt"

	"github.com/vmmdev/vmm/kvm"
	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/layout"
	"github.com/vmmdev/vmm/vm/memory"
	"github.com/vmmdev/vmm/vm/virtio"
)

// RAM through virtio-mem (memory.hotplug_method VirtioMem): the hot plug
// space after boot RAM is one region, mapped sparse on the host and
// registered with KVM as a memslot of its own from the start; the
// virtio-mem device tells the guest about it, and the guest's driver plugs
// and unplugs 2 MiB blocks of it as the device's requested size asks.
// Unplugged blocks go back to the host (memory.Guest.Discard).

// hasVirtioMem says whether a VM with memory m gets a virtio-mem device:
// hotplug_method VirtioMem and at least one whole 128 MiB block of hot
// plug space.
func hasVirtioMem(m config.Memory) bool {
	return m.HotplugMethod == config.HotplugVirtioMem && usableHotplug(m.HotplugSize) > 0
}

// virtioMemRegion is where the virtio-mem device's region lies for memory
// m: the hot plug space, from layout.HotplugRAMStart, in whole 128 MiB
// blocks.
func virtioMemRegion(m config.Memory) memory.Range {
	return memory.Range{Start: layout.HotplugRAMStart(m.Size), Size: usableHotplug(m.HotplugSize)}
}

// mapVirtioMemRegion maps the virtio-mem region, sparse, and gives it a
// memslot. The guest sees nothing there until its driver plugs blocks.
func (m *machine) mapVirtioMemRegion() error {
	if !hasVirtioMem(m.cfg.Memory) {
		return nil
	}
	rg := virtioMemRegion(m.cfg.Memory)
	slot := uint32(len(m.mem.Regions()))
	r, err := m.mem.AddSparse(rg, slot)
	if err != nil {
		return invalidf("memory: the virtio-mem region of %d MiB: %w", rg.Size>>20, err)
	}
	if err := m.vm.SetUserMemoryRegion(kvm.MemoryRegion(slot, rg.Start, r.Host())); err != nil {
		return fmt.Errorf("virtio-mem region at %#x: memslot %d: %w", rg.Start, slot, err)
	}
	return nil
}

// newVirtioMem makes the virtio-mem device over the region
// mapVirtioMemRegion mapped: it starts asking for hotplugged_size, and
// gives the blocks the guest unplugs back to the host.
func (m *machine) newVirtioMem() (*virtio.Mem, error) {
	rg := virtioMemRegion(m.cfg.Memory)
	dev, err := virtio.NewMem(virtio.MemConfig{
		Addr: rg.Start, Size: rg.Size, Requested: m.cfg.Memory.HotpluggedSize,
		Release: func(offset, size uint64) error { return m.mem.Discard(rg.Start+offset, size) },
		Log:     m.log,
	})
	if err != nil {
		return nil, err
	}
	m.vmem = dev
	return dev, nil
}

// ramSize is the RAM the guest has now: its boot RAM, what ACPI hot plug
// added, and what its virtio-mem driver has plugged.
func (m *machine) ramSize() uint64 {
	n := m.mem.Size()
	if m.vmem != nil {
		_, size := m.vmem.Region()
		n = n - size + m.vmem.Plugged()
	}
	return n
}

// planVirtioMem plans desired_ram=n for a VM whose RAM changes through
// virtio-mem: the device is to have n minus the boot RAM plugged, in whole
// blocks, within the hot plug space. The boot RAM itself stays. It applies
// whether or not the guest runs: a VM that does not run plugs it at boot.
func planVirtioMem(p *resizePlan, cfg config.VM, n uint64) error {
	mc := cfg.Memory
	space := usableHotplug(mc.HotplugSize)
	switch {
	case n < mc.Size:
		return invalid(chError(textInvalidRAMValue, "desired_ram=%d: below the boot RAM (memory.size, %d bytes): virtio-mem takes back only what it plugged (desired_size = %d below boot size = %d)", n, mc.Size, n, mc.Size))
	case space == 0:
		return invalid(chError(textNoHotplugSpace, "desired_ram=%d: the VM has no hot plug space (memory.hotplug_size) for virtio-mem", n))
	case (n-mc.Size)%config.VirtioMemBlock != 0:
		return invalid(chError(textInvalidRAMSize, "desired_ram=%d: the %d bytes above the boot RAM are not a multiple of the virtio-mem block size (%d MiB)", n, n-mc.Size, config.VirtioMemBlock/config.MiB))
	case n-mc.Size > space:
		return invalid(chError(textNoHotplugSpace, "desired_ram=%d: above the boot RAM plus the hot plug space (%d bytes)", n, mc.Size+space))
	}
	p.plugged = n - mc.Size
	p.setPlugged = p.plugged != mc.HotpluggedSize
	return nil
}
