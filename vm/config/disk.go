package config

// PCIDevice is the block of fields Cloud Hypervisor gives every PCI device
// (its PciDeviceCommonConfig, flattened into the device's object): embedded
// in each device type, its fields appear in the device's JSON object.
type PCIDevice struct {
	// ID names the device; Cloud Hypervisor makes one up (_disk0, ...) when
	// it is empty.
	ID string `json:"id,omitempty"`
	// IOMMU places the device behind the virtual IOMMU.
	IOMMU bool `json:"iommu"`
	// PCISegment is the PCI segment (domain) the device sits on.
	PCISegment uint16 `json:"pci_segment"`
	// PCIDeviceID is the device's slot on its bus; nil lets the VMM choose.
	PCIDeviceID *uint8 `json:"pci_device_id,omitempty"`
}

// Disk is Cloud Hypervisor's DiskConfig: one virtio-blk disk.
type Disk struct {
	PCIDevice
	// Path is the disk image on the host.
	Path     string `json:"path"`
	Readonly bool   `json:"readonly"`
	// Direct opens the image with O_DIRECT.
	Direct    bool   `json:"direct"`
	NumQueues int    `json:"num_queues" default:"1"`
	QueueSize uint16 `json:"queue_size" default:"128"`
	// VhostUser serves the disk from a vhost-user backend at VhostSocket.
	VhostUser   bool   `json:"vhost_user"`
	VhostSocket string `json:"vhost_socket,omitempty"`
	// RateLimitGroup names a rate_limit_groups entry the disk shares.
	RateLimitGroup    string       `json:"rate_limit_group,omitempty"`
	RateLimiterConfig *RateLimiter `json:"rate_limiter_config,omitempty"`
	// DisableIOUring and DisableAIO keep Cloud Hypervisor from those I/O
	// engines (test knobs).
	DisableIOUring bool `json:"disable_io_uring"`
	DisableAIO     bool `json:"disable_aio"`
	// Serial is the disk's serial number (at most 20 bytes).
	Serial        string              `json:"serial,omitempty"`
	QueueAffinity []VirtQueueAffinity `json:"queue_affinity,omitempty"`
	// BackingFiles lets a qcow2 image have backing files.
	BackingFiles bool `json:"backing_files"`
	// Sparse punches holes for the guest's discards; nil is true.
	Sparse *bool `json:"sparse,omitempty" default:"true"`
	// ImageType is the image's format; Unknown detects it.
	ImageType ImageType `json:"image_type,omitempty" default:"Unknown"`
	// LockGranularity is how the image is locked against other users.
	LockGranularity LockGranularity `json:"lock_granularity,omitempty" default:"ByteRange"`
}

// ImageType is a disk image format.
type ImageType string

// Disk image formats.
const (
	ImageRaw     ImageType = "Raw"
	ImageUnknown ImageType = "Unknown"
)

// Values lists the formats Cloud Hypervisor knows.
func (ImageType) Values() []string {
	return []string{"FixedVhd", "Qcow2", "Raw", "Vhdx", "Unknown", "FlatVmdk"}
}

// LockGranularity is how a disk image is locked.
type LockGranularity string

// Values lists the granularities Cloud Hypervisor knows.
func (LockGranularity) Values() []string { return []string{"ByteRange", "Full"} }

// RateLimiter is Cloud Hypervisor's RateLimiterConfig: token buckets for
// bytes and operations.
type RateLimiter struct {
	Bandwidth *TokenBucket `json:"bandwidth,omitempty"`
	Ops       *TokenBucket `json:"ops,omitempty"`
}

// TokenBucket is a rate limiter's bucket: Size tokens refilled every
// RefillTime milliseconds, plus OneTimeBurst tokens at the start.
type TokenBucket struct {
	Size         uint64 `json:"size"`
	OneTimeBurst uint64 `json:"one_time_burst,omitempty"`
	RefillTime   uint64 `json:"refill_time"`
}

// RateLimitGroup is Cloud Hypervisor's RateLimitGroupConfig: a rate limiter
// disks share by its ID.
type RateLimitGroup struct {
	ID                string      `json:"id"`
	RateLimiterConfig RateLimiter `json:"rate_limiter_config"`
}

// VirtQueueAffinity pins one queue's worker to host CPUs.
type VirtQueueAffinity struct {
	QueueIndex uint16 `json:"queue_index"`
	HostCPUs   []uint `json:"host_cpus"`
}
