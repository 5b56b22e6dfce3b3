package vm

import "fmt"

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
