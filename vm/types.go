package vm

import "github.com/vmmdev/vmm/vm/config"

// State is a VM's lifecycle state, spelled as Cloud Hypervisor's.
type State string

// VM states.
const (
	StateCreated  State = "Created"
	StateRunning  State = "Running"
	StatePaused   State = "Paused"
	StateShutdown State = "Shutdown"
)

// ResizeRequest is the body of PUT vm.resize. Absent fields are left alone.
// Sizes are bytes. Fields are signed so that a negative value reaches
// validation and is refused with a clear message instead of a decode error.
type ResizeRequest struct {
	DesiredVCPUs   *int64 `json:"desired_vcpus,omitempty"`
	DesiredRAM     *int64 `json:"desired_ram,omitempty"`
	DesiredBalloon *int64 `json:"desired_balloon,omitempty"`
}

// Info is the body of GET vm.info: Cloud Hypervisor's fields, plus the
// live vCPU count, which Cloud Hypervisor does not report.
type Info struct {
	Config           config.VM `json:"config"`
	State            State     `json:"state"`
	MemoryActualSize uint64    `json:"memory_actual_size"`
	// ActiveVCPUs is the number of vCPUs whose threads run now; it differs
	// from config.cpus.boot_vcpus while an eject is pending.
	ActiveVCPUs int `json:"active_vcpus"`
}
