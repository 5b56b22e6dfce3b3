package vm

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
