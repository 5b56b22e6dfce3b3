package vm

import (
	"maps"

	"github.com/vmmdev/vmm/vm/pci"
	"github.com/vmmdev/vmm/vm/virtio"
)

// DeviceNode is one entry of vm.info's device_tree, as Cloud Hypervisor
// writes it (vmm/src/device_tree.rs): a virtio device ("_disk0") whose
// parent is its PCI transport ("_virtio-pci-_disk0"), which has the PCI
// address and the BARs. On virtio-mmio a device has no parent; its
// register block and interrupt are its resources.
type DeviceNode struct {
	ID        string           `json:"id"`
	Resources []DeviceResource `json:"resources"`
	Parent    string           `json:"parent,omitempty"`
	Children  []string         `json:"children"`
	// PCIBDF is the PCI address, 0000:00:01.0.
	PCIBDF string `json:"pci_bdf,omitempty"`
}

// DeviceResource is one resource of a device node, in Cloud Hypervisor's
// encoding (vm-device's Resource): exactly one field is set.
type DeviceResource struct {
	PCIBar           *PCIBarResource       `json:"PciBar,omitempty"`
	MMIOAddressRange *AddressRangeResource `json:"MmioAddressRange,omitempty"`
	LegacyIRQ        *uint32               `json:"LegacyIrq,omitempty"`
}

// PCIBarResource is a BAR: where it is now, its size and type ("Mmio32",
// "Mmio64").
type PCIBarResource struct {
	Index        int    `json:"index"`
	Base         uint64 `json:"base"`
	Size         uint64 `json:"size"`
	Type         string `json:"type_"`
	Prefetchable bool   `json:"prefetchable"`
}

// AddressRangeResource is an MMIO range.
type AddressRangeResource struct {
	Base uint64 `json:"base"`
	Size uint64 `json:"size"`
}

// deviceTree describes the machine's virtio devices by id.
func (m *machine) deviceTree() map[string]DeviceNode {
	tree := map[string]DeviceNode{}
	m.devMu.Lock()
	defer m.devMu.Unlock()
	for _, vd := range m.virtio {
		maps.Copy(tree, vd.nodes())
	}
	return tree
}

// nodes are the device's node and, on PCI, its transport's.
func (vd *virtioDevice) nodes() map[string]DeviceNode {
	id := vd.p.id
	dev := DeviceNode{ID: id, Resources: []DeviceResource{}, Children: []string{}}
	if vd.mmio != nil {
		gsi := vd.mmio.GSI()
		dev.Resources = append(dev.Resources,
			DeviceResource{MMIOAddressRange: &AddressRangeResource{Base: vd.mmio.Base(), Size: virtio.MMIOSize}},
			DeviceResource{LegacyIRQ: &gsi})
		return map[string]DeviceNode{id: dev}
	}
	f := vd.pci.Function()
	tid := virtioPCIIDPrefix + id
	dev.Parent = tid
	tr := DeviceNode{ID: tid, Resources: []DeviceResource{}, Children: []string{id}, PCIBDF: f.BDF().String()}
	for i := range pci.NumBARs {
		b := f.BAR(i)
		if b.Size == 0 {
			continue
		}
		typ := "Mmio32"
		if b.Kind == pci.BARMem64 {
			typ = "Mmio64"
		}
		tr.Resources = append(tr.Resources, DeviceResource{PCIBar: &PCIBarResource{
			Index: i, Base: f.Address(i), Size: b.Size, Type: typ, Prefetchable: b.Prefetchable}})
	}
	return map[string]DeviceNode{id: dev, tid: tr}
}
