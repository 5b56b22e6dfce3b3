package config

// Net is Cloud Hypervisor's NetConfig: one virtio-net device, backed by a
// tap.
type Net struct {
	PCIDevice
	// Tap is the tap's name; empty lets the kernel name it.
	Tap string `json:"tap,omitempty"`
	// IP and Mask are given to the host side of the tap.
	IP   string `json:"ip,omitempty"`
	Mask string `json:"mask,omitempty"`
	// MAC is the guest's MAC; empty generates one.
	MAC string `json:"mac,omitempty"`
	// HostMAC is the tap's own MAC.
	HostMAC   string `json:"host_mac,omitempty"`
	MTU       uint16 `json:"mtu,omitempty"`
	NumQueues int    `json:"num_queues" default:"2"`
	QueueSize uint16 `json:"queue_size" default:"256"`
	// VhostUser serves the device from a vhost-user backend at VhostSocket.
	VhostUser   bool      `json:"vhost_user"`
	VhostSocket string    `json:"vhost_socket,omitempty"`
	VhostMode   VhostMode `json:"vhost_mode,omitempty" default:"Client"`
	// FDs are open taps passed along with the request (Cloud Hypervisor
	// takes them only as SCM_RIGHTS with vm.add-net).
	FDs               []int        `json:"fds,omitempty"`
	RateLimiterConfig *RateLimiter `json:"rate_limiter_config,omitempty"`
	// OffloadTSO, OffloadUFO and OffloadCSUM offer the offloads to the
	// guest; nil is true.
	OffloadTSO  *bool `json:"offload_tso,omitempty" default:"true"`
	OffloadUFO  *bool `json:"offload_ufo,omitempty" default:"true"`
	OffloadCSUM *bool `json:"offload_csum,omitempty" default:"true"`
}

// VhostMode is which side of a vhost-user socket the VMM is.
type VhostMode string

// Values lists the modes Cloud Hypervisor knows.
func (VhostMode) Values() []string { return []string{"Client", "Server"} }

// RNG is Cloud Hypervisor's RngConfig: the virtio-rng device and its
// entropy source.
type RNG struct {
	PCIDevice
	Src string `json:"src" default:"/dev/urandom"`
}

// Balloon is Cloud Hypervisor's BalloonConfig: a virtio-balloon device
// holding Size bytes of the guest's RAM.
type Balloon struct {
	PCIDevice
	Size              uint64 `json:"size"`
	DeflateOnOOM      bool   `json:"deflate_on_oom"`
	FreePageReporting bool   `json:"free_page_reporting"`
}

// FS is Cloud Hypervisor's FsConfig: a virtio-fs device served by a
// vhost-user daemon at Socket.
type FS struct {
	PCIDevice
	Tag       string `json:"tag"`
	Socket    string `json:"socket"`
	NumQueues int    `json:"num_queues" default:"1"`
	QueueSize uint16 `json:"queue_size" default:"1024"`
}

// Pmem is Cloud Hypervisor's PmemConfig: a virtio-pmem device backed by
// File.
type Pmem struct {
	PCIDevice
	File          string `json:"file"`
	Size          uint64 `json:"size,omitempty"`
	DiscardWrites bool   `json:"discard_writes"`
}

// GenericVhostUser is Cloud Hypervisor's GenericVhostUserConfig: a virtio
// device of any type served by a vhost-user backend.
type GenericVhostUser struct {
	PCIDevice
	Socket     string   `json:"socket"`
	QueueSizes []uint16 `json:"queue_sizes"`
	DeviceType uint32   `json:"device_type"`
}

// Device is Cloud Hypervisor's DeviceConfig: a host PCI device passed
// through with VFIO.
type Device struct {
	PCIDevice
	// Path is the device's sysfs path.
	Path string `json:"path,omitempty"`
	// FD is a VFIO device file passed along with the request.
	FD                 *int     `json:"fd,omitempty"`
	XNVGPUDirectClique *uint8   `json:"x_nv_gpudirect_clique,omitempty"`
	XExcludeMMAPBars   []uint64 `json:"x_exclude_mmap_bars,omitempty"`
}

// UserDevice is Cloud Hypervisor's UserDeviceConfig: a vfio-user device
// served at Socket.
type UserDevice struct {
	PCIDevice
	Socket string `json:"socket"`
}

// Vdpa is Cloud Hypervisor's VdpaConfig: a vDPA device at Path.
type Vdpa struct {
	PCIDevice
	Path      string `json:"path"`
	NumQueues int    `json:"num_queues" default:"1"`
}

// Vsock is Cloud Hypervisor's VsockConfig: a virtio-vsock device whose host
// side is the unix socket Socket.
type Vsock struct {
	PCIDevice
	CID    uint32 `json:"cid"`
	Socket string `json:"socket"`
}

// RTC is Cloud Hypervisor's RtcConfig: a virtio-rtc device.
type RTC struct {
	PCIDevice
}

// Pvmemcontrol is Cloud Hypervisor's PvmemcontrolConfig: a
// paravirtualised memory control device, with no settings.
type Pvmemcontrol struct{}

// Ivshmem is Cloud Hypervisor's IvshmemConfig: an inter-VM shared memory
// device backed by the file at Path.
type Ivshmem struct {
	PCIDevice
	Path string `json:"path"`
	Size uint64 `json:"size" default:"134217728"`
}

// TPM is Cloud Hypervisor's TpmConfig: a TPM backed by swtpm's control
// socket.
type TPM struct {
	Socket string `json:"socket"`
}
