package config

// CPUs is Cloud Hypervisor's CpusConfig: the vCPU count at boot and the most
// the VM may have, and how the vCPUs look to the guest.
type CPUs struct {
	BootVCPUs int `json:"boot_vcpus"`
	MaxVCPUs  int `json:"max_vcpus"`
	// Topology is how the max_vcpus vCPUs are grouped into threads, cores,
	// dies and packages; nil is one package of max_vcpus one-thread cores.
	Topology *CPUTopology `json:"topology,omitempty"`
	// KVMHyperV exposes Hyper-V enlightenments to the guest.
	KVMHyperV bool `json:"kvm_hyperv"`
	// MaxPhysBits caps the guest's physical address width.
	MaxPhysBits uint8 `json:"max_phys_bits" default:"46"`
	// Affinity pins vCPUs to host CPUs.
	Affinity []CPUAffinity `json:"affinity,omitempty"`
	Features CPUFeatures   `json:"features"`
	// Nested offers the host's hardware virtualisation (VMX or SVM) to the
	// guest; nil is true. NestedEnabled reads it.
	Nested *bool `json:"nested,omitempty" default:"true"`
	// CoreScheduling is how vCPU threads share host cores under Linux core
	// scheduling.
	CoreScheduling CoreScheduling `json:"core_scheduling,omitempty" default:"Vm"`
	// Profile is the CPU model the guest sees.
	Profile CPUProfile `json:"profile,omitempty" default:"Host"`
}

// NestedEnabled reports whether the guest may run its own VMs: cpus.nested,
// true unless set to false.
func (c CPUs) NestedEnabled() bool { return c.Nested == nil || *c.Nested }

// CPUTopology is Cloud Hypervisor's CpuTopology; the product of its parts
// is max_vcpus.
type CPUTopology struct {
	ThreadsPerCore uint16 `json:"threads_per_core"`
	CoresPerDie    uint16 `json:"cores_per_die"`
	DiesPerPackage uint16 `json:"dies_per_package"`
	Packages       uint16 `json:"packages"`
}

// CPUAffinity pins one vCPU's thread to a set of host CPUs.
type CPUAffinity struct {
	VCPU     uint32 `json:"vcpu"`
	HostCPUs []uint `json:"host_cpus"`
}

// CPUFeatures are optional CPU features offered to the guest.
type CPUFeatures struct {
	// AMX offers Intel's Advanced Matrix Extensions.
	AMX bool `json:"amx"`
}

// CoreScheduling is Cloud Hypervisor's CoreSchedulingMode.
type CoreScheduling string

// Core scheduling modes.
const (
	// CoreSchedulingVM: all vCPUs share one cookie and may share a core.
	CoreSchedulingVM CoreScheduling = "Vm"
	// CoreSchedulingVCPU: each vCPU has a cookie of its own.
	CoreSchedulingVCPU CoreScheduling = "Vcpu"
	// CoreSchedulingOff: no core scheduling.
	CoreSchedulingOff CoreScheduling = "Off"
)

// Values lists the modes Cloud Hypervisor knows.
func (CoreScheduling) Values() []string { return []string{"Vm", "Vcpu", "Off"} }

// CPUProfile is the CPU model offered to the guest.
type CPUProfile string

// ProfileHost is the host's CPU, as KVM can offer it; Cloud Hypervisor has
// no other profile.
const ProfileHost CPUProfile = "Host"

// Values lists the profiles Cloud Hypervisor knows.
func (CPUProfile) Values() []string { return []string{"Host"} }
