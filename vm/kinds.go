package vm

import (
	"errors"
	"fmt"
)

// kindError is an error of one of the kinds in errors.go whose message does
// not repeat the kind: "kernel x: not a bzImage" rather than "...: invalid
// request", while errors.Is still finds the kind.
type kindError struct {
	err  error
	kind error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.err, e.kind} }

// ofKind marks err as of kind, or returns nil for a nil err.
func ofKind(err, kind error) error {
	if err == nil {
		return nil
	}
	return &kindError{err: err, kind: kind}
}

// invalid marks err as ErrInvalid: the request or configuration is at fault.
func invalid(err error) error { return ofKind(err, ErrInvalid) }

// invalidf is fmt.Errorf then invalid.
func invalidf(format string, args ...any) error {
	return invalid(fmt.Errorf(format, args...))
}

// conflictf is fmt.Errorf then marked ErrConflict: an id or an address
// already taken.
func conflictf(format string, args ...any) error {
	return ofKind(fmt.Errorf(format, args...), ErrConflict)
}

// notFoundf is fmt.Errorf then marked ErrNotFound: an unknown device.
func notFoundf(format string, args ...any) error {
	return ofKind(fmt.Errorf(format, args...), ErrNotFound)
}

// Cloud Hypervisor's texts for the errors its clients may match on, kept
// word for word (capitals included).
const (
	textAlreadyCreated  = "VM is already created"
	textNotRunning      = "VM is not running"
	textPendingRemoval  = "Still pending removed vCPU"
	textZeroVCPUs       = "Requested zero vCPUs"
	textVCPUsAboveMax   = "Requested vCPUs exceed maximum"
	textInvalidRAMSize  = "The requested hotplug memory addition is not a valid size"
	textNoHotplugSpace  = "Not enough space in the hotplug RAM region"
	textNoACPISlot      = "No ACPI slot available"
	textNoBalloon       = "Missing virtio-balloon, can't proceed as expected"
	textBalloonTooBig   = "Balloon size greater than RAM"
	textInvalidRAMValue = "Invalid resize request"
)

// chError is an error whose chain carries Cloud Hypervisor's text as one
// element and vmm's detail as the next, so that a client looking for Cloud
// Hypervisor's text in the error body finds it whole.
func chError(text, format string, args ...any) error {
	return fmt.Errorf("%s: %w", text, fmt.Errorf(format, args...))
}

// stateError is an ErrState error with the given text.
func stateError(text string) error { return ofKind(errors.New(text), ErrState) }

// transitionError is the ErrState error of an operation that would take
// the VM from one state to another it cannot go to, in Cloud Hypervisor's
// words.
func transitionError(from, to State) error {
	return ofKind(fmt.Errorf("invalid VM state transition: %s to %s", from, to), ErrState)
}
