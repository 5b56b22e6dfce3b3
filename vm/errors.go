package vm

import "errors"

// Error kinds a VM operation can fail with. Operations wrap them with
// context (fmt.Errorf("...: %w", ErrInvalid), or invalid(err) and the like,
// which keep the kind out of the message); the API maps each kind to its
// HTTP status with errors.Is.
var (
	// ErrInvalid: the request is malformed or asks for something the
	// configuration does not allow (HTTP 400). Nothing was changed.
	ErrInvalid = errors.New("invalid request")
	// ErrConflict: the configuration gives two devices the same id (HTTP
	// 409). Nothing was changed.
	ErrConflict = errors.New("conflict")
	// ErrBusy: an earlier operation is still in progress, such as a vCPU
	// eject the guest has not finished (HTTP 429). Nothing was changed.
	ErrBusy = errors.New("operation in progress")
	// ErrNoVM: no VM has been created (HTTP 404). Its text is Cloud
	// Hypervisor's.
	ErrNoVM = errors.New("VM is not created")
	// ErrNotFound: the request names a device the VM does not have (HTTP
	// 404). Nothing was changed.
	ErrNotFound = errors.New("not found")
	// ErrState: the VM is not in a state that allows the operation, such as
	// resuming a VM that is not paused (mapped to an error status by the API).
	ErrState = errors.New("invalid VM state")
)
