package config

import (
	"errors"
	"fmt"
)

// The RAM that changes while the guest runs: the hot plug method
// (memory.hotplug_method, memory.hotplugged_size) and the balloon, with
// Cloud Hypervisor's command line spellings and its rules.

// VirtioMemBlock is the block size of vmm's virtio-mem device (2 MiB, as
// Cloud Hypervisor's): hotplugged_size and a RAM size asked of a
// virtio-mem VM are whole blocks of it.
const VirtioMemBlock = 2 * MiB

// ParseBalloon reads --balloon size=S,deflate_on_oom=on|off,
// free_page_reporting=on|off, and the common id, iommu, pci_segment and
// pci_device_id, as Cloud Hypervisor's.
func ParseBalloon(s string) (Balloon, error) {
	var b Balloon
	o := newOptions("balloon").
		add("size", size(&b.Size)).
		add("deflate_on_oom", toggle(&b.DeflateOnOOM)).
		add("free_page_reporting", toggle(&b.FreePageReporting))
	return b, pciOptions(o, &b.PCIDevice).parse(s)
}

// Arg is b as the value of --balloon.
func (b Balloon) Arg() string {
	onOff := func(v bool) string {
		if v {
			return "on"
		}
		return "off"
	}
	return fmt.Sprintf("size=%s,deflate_on_oom=%s,free_page_reporting=%s", FormatSize(b.Size), onOff(b.DeflateOnOOM), onOff(b.FreePageReporting))
}

// TotalSize is the RAM the guest boots with: boot RAM plus what a
// virtio-mem device plugs at boot (Cloud Hypervisor's total_size).
func (m Memory) TotalSize() uint64 { return m.Size + m.HotpluggedSize }

// validateHotplug applies Cloud Hypervisor's rules to hotplugged_size
// (MemoryManager::new's, with its wording) and vmm's virtio-mem block size.
func (m Memory) validateHotplug() error {
	if m.Hugepages && m.HotplugMethod == HotplugVirtioMem && m.HotplugSize > 0 {
		// Cloud Hypervisor takes both; vmm's sparse region would reserve
		// every huge page of the hot plug space at boot, and a 2 MiB
		// block cannot give back part of a larger page.
		return errors.New("memory: hugepages=on with hotplug_method=virtio-mem is not supported by vmm (the virtio-mem region would take its huge pages at boot): use hotplug_method=acpi with huge pages, or virtio-mem without them")
	}
	if m.HotpluggedSize == 0 {
		return nil
	}
	switch {
	case m.HotplugSize == 0:
		return fmt.Errorf("memory: Invalid to define 'hotplugged_size' when there is no 'hotplug_size'")
	case m.HotplugMethod != HotplugVirtioMem:
		return fmt.Errorf("memory: Invalid to define 'hotplugged_size' with hotplug method 'acpi'")
	case m.HotpluggedSize > m.HotplugSize&^(HotplugBlock-1):
		return fmt.Errorf("memory: 'hotplugged_size' %d can't be bigger than 'hotplug_size' %d (its whole 128 MiB blocks)", m.HotpluggedSize, m.HotplugSize)
	case m.HotpluggedSize%VirtioMemBlock != 0:
		return fmt.Errorf("memory: 'hotplugged_size' %d is not a multiple of the virtio-mem block size (%d MiB)", m.HotpluggedSize, VirtioMemBlock/MiB)
	}
	return nil
}

// validateBalloon applies Cloud Hypervisor's rule: the balloon is smaller
// than the RAM the guest boots with.
func (c *VM) validateBalloon() error {
	b := c.Balloon
	if b == nil {
		return nil
	}
	if ram := c.Memory.TotalSize(); b.Size >= ram {
		return fmt.Errorf("balloon: Balloon size (%d) greater than RAM (%d)", b.Size, ram)
	}
	return nil
}
