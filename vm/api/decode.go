package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/api/http1"
	"github.com/vmmdev/vmm/vm/config"
)

// requestError is a request the server refuses before the backend sees it;
// status is its HTTP status, head the first string of its error body (the
// status text when empty).
type requestError struct {
	status int
	head   string
	msg    string
	// close ends the connection after the reply: the rest of the request
	// was not read.
	close bool
}

func (e *requestError) Error() string { return e.msg }

// heading is the first string of the error body.
func (e *requestError) heading() string {
	if e.head != "" {
		return e.head
	}
	return http1.StatusText(e.status)
}

// badRequest returns a 400 requestError.
func badRequest(format string, args ...any) error {
	return &requestError{status: http1.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// undecodable is the 400 requestError of a body that does not decode, with
// Cloud Hypervisor's head for it.
func undecodable(format string, args ...any) error {
	return &requestError{status: http1.StatusBadRequest, head: "Failed to deserialize JSON", msg: fmt.Sprintf(format, args...)}
}

// decodeStrict decodes body, which must hold exactly one JSON object, into
// v. Fields v does not have, values of the wrong type, malformed JSON and
// trailing data are refused with a 400 whose message names the field or the
// byte offset.
func decodeStrict(body []byte, v any) error {
	t := bytes.TrimSpace(body)
	if len(t) == 0 {
		return badRequest("empty request body: a JSON object is required")
	}
	if t[0] != '{' {
		return badRequest("request body: want a JSON object, got %s", describeJSONStart(t[0]))
	}
	dec := json.NewDecoder(bytes.NewReader(t))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return undecodable("request body: %s", describeDecodeError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("request body: unexpected data after the JSON object")
	}
	return nil
}

// describeDecodeError turns an encoding/json error into a message that
// names the offending field.
func describeDecodeError(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "value"
		}
		return fmt.Sprintf("field %q: want %s, got %s", field, describeGoType(typeErr.Type.String()), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("malformed JSON at byte %d: %s", syntaxErr.Offset, strings.TrimPrefix(syntaxErr.Error(), "json: "))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	// encoding/json reports an unknown field as `json: unknown field "x"`.
	if name, ok := strings.CutPrefix(msg, "unknown field "); ok {
		return fmt.Sprintf("unknown field %s", name)
	}
	return msg
}

// describeGoType names a Go type in JSON terms.
func describeGoType(t string) string {
	switch {
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "*int"):
		return "an integer"
	case strings.HasPrefix(t, "uint"), strings.HasPrefix(t, "*uint"):
		return "a non-negative integer"
	case t == "string", strings.HasSuffix(t, "Mode"):
		return "a string"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "[]"):
		return "an array"
	}
	return "an object"
}

// describeJSONStart names the kind of JSON value starting with c.
func describeJSONStart(c byte) string {
	switch {
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 'n':
		return "null"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == '-' || (c >= '0' && c <= '9'):
		return "a number"
	}
	return fmt.Sprintf("%q", c)
}

// decodeResize decodes and shape-checks a vm.resize body. The backend
// checks the values against the VM (maximum vCPUs, hotplug space).
func decodeResize(body []byte) (vm.ResizeRequest, error) {
	var req vm.ResizeRequest
	if err := decodeStrict(body, &req); err != nil {
		return req, err
	}
	if v := req.DesiredVCPUs; v != nil && *v < 1 {
		return req, badRequest("desired_vcpus=%d: at least 1 vCPU is needed", *v)
	}
	if v := req.DesiredRAM; v != nil && *v < 1 {
		return req, badRequest("desired_ram=%d: must be a positive number of bytes", *v)
	}
	if v := req.DesiredBalloon; v != nil && *v < 0 {
		return req, badRequest("desired_balloon=%d: must not be negative", *v)
	}
	return req, nil
}

// decodeCreate decodes a vm.create body with config.Decode: over
// config.Default, so absent fields keep their defaults, as Cloud
// Hypervisor's do, and with every name Cloud Hypervisor defines known. The
// backend validates the result.
func decodeCreate(body []byte) (config.VM, error) {
	var raw json.RawMessage
	if err := decodeStrict(body, &raw); err != nil {
		return config.VM{}, err
	}
	cfg, err := config.Decode(raw)
	if err != nil {
		return config.VM{}, undecodable("request body: %s", describeDecodeError(err))
	}
	for i, n := range cfg.Net {
		if len(n.FDs) > 0 {
			return config.VM{}, badRequest("net %d: %v: vm.create takes none; add the net with vm.add-net", i, errFDsInBody)
		}
	}
	return cfg, nil
}

// ResizeZoneRequest is the body of vm.resize-zone, Cloud Hypervisor's
// VmResizeZone: a memory zone's id and its new size.
type ResizeZoneRequest struct {
	ID         string `json:"id"`
	DesiredRAM *int64 `json:"desired_ram"`
}

// decodeResizeZone decodes a vm.resize-zone body; both fields are
// required, as Cloud Hypervisor's.
func decodeResizeZone(body []byte) (ResizeZoneRequest, error) {
	var req ResizeZoneRequest
	if err := decodeStrict(body, &req); err != nil {
		return req, err
	}
	switch {
	case req.ID == "":
		return req, badRequest("id: the memory zone to resize is required")
	case req.DesiredRAM == nil:
		return req, badRequest("desired_ram: the zone's new size is required")
	}
	return req, nil
}

// RemoveDeviceRequest is the body of vm.remove-device, Cloud Hypervisor's
// VmRemoveDevice.
type RemoveDeviceRequest struct {
	ID string `json:"id"`
}

// decodeRemoveDevice decodes a vm.remove-device body; the id is required.
func decodeRemoveDevice(body []byte) (RemoveDeviceRequest, error) {
	var req RemoveDeviceRequest
	if err := decodeStrict(body, &req); err != nil {
		return req, err
	}
	if req.ID == "" {
		return req, badRequest("id: the device to remove is required")
	}
	return req, nil
}
