package config

// Platform is Cloud Hypervisor's PlatformConfig: PCI segments, IOMMU,
// SMBIOS strings and confidential computing.
type Platform struct {
	// NumPCISegments is how many PCI segments (domains) the VM has.
	NumPCISegments uint16 `json:"num_pci_segments" default:"1"`
	// IOMMUSegments are the segments placed behind the virtual IOMMU.
	IOMMUSegments         []uint16 `json:"iommu_segments,omitempty"`
	IOMMUAddressWidthBits uint8    `json:"iommu_address_width_bits" default:"64"`
	// IOMMUAddressWidth is the name Cloud Hypervisor v51's OpenAPI document
	// gives iommu_address_width_bits (which its code ignores).
	IOMMUAddressWidth uint8 `json:"iommu_address_width,omitempty"`
	// SystemSerialNumber and SystemUUID are the SMBIOS system strings;
	// SerialNumber and UUID are their v51 names.
	SystemSerialNumber string   `json:"system_serial_number,omitempty"`
	SerialNumber       string   `json:"serial_number,omitempty"`
	SystemUUID         string   `json:"system_uuid,omitempty"`
	UUID               string   `json:"uuid,omitempty"`
	OEMStrings         []string `json:"oem_strings,omitempty"`
	SystemManufacturer string   `json:"system_manufacturer,omitempty"`
	SystemProductName  string   `json:"system_product_name,omitempty"`
	SystemVersion      string   `json:"system_version,omitempty"`
	SystemFamily       string   `json:"system_family,omitempty"`
	SystemSKUNumber    string   `json:"system_sku_number,omitempty"`
	ChassisAssetTag    string   `json:"chassis_asset_tag,omitempty"`
	// TDX and SEVSNP make the VM an Intel TDX or AMD SEV-SNP guest.
	TDX    bool `json:"tdx"`
	SEVSNP bool `json:"sev_snp"`
	// IOMMUFD uses iommufd for VFIO; IOMMUFDFD is one passed along.
	IOMMUFD   bool `json:"iommufd"`
	IOMMUFDFD *int `json:"iommufd_fd,omitempty"`
	// VFIOP2PDMA allows peer-to-peer DMA between VFIO devices; nil is true.
	VFIOP2PDMA *bool `json:"vfio_p2p_dma,omitempty" default:"true"`
}

// PCISegment is Cloud Hypervisor's PciSegmentConfig: how one segment's
// share of the MMIO apertures is weighed.
type PCISegment struct {
	PCISegment           uint16 `json:"pci_segment"`
	MMIO32ApertureWeight uint32 `json:"mmio32_aperture_weight" default:"1"`
	MMIO64ApertureWeight uint32 `json:"mmio64_aperture_weight" default:"1"`
}

// NUMA is Cloud Hypervisor's NumaConfig: one guest NUMA node.
type NUMA struct {
	GuestNUMAID uint32         `json:"guest_numa_id"`
	CPUs        []uint32       `json:"cpus,omitempty"`
	Distances   []NUMADistance `json:"distances,omitempty"`
	MemoryZones []string       `json:"memory_zones,omitempty"`
	PCISegments []uint16       `json:"pci_segments,omitempty"`
	// DeviceID makes the node a generic initiator for that device.
	DeviceID string `json:"device_id,omitempty"`
}

// NUMADistance is the distance from a NUMA node to Destination.
type NUMADistance struct {
	Destination uint32 `json:"destination"`
	Distance    uint8  `json:"distance"`
}

// LandlockRule is Cloud Hypervisor's LandlockConfig: a path the VMM may
// still reach once Landlock confines it, and how ("r", "w", "rw").
type LandlockRule struct {
	Path   string `json:"path"`
	Access string `json:"access"`
}
