package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/api/http1"
)

// How errors cross the API, both ways. The server turns a backend's error
// into a status (statusOf: the error's kind) and a JSON array of messages
// (errorChain, outermost first); the client turns a reply back into an
// *APIError (ReplyError), whose Unwrap gives the kind again.

// APIError is a non-2xx reply from the server: its HTTP status and the
// messages of the error body (Cloud Hypervisor's JSON array of strings,
// outermost first).
//
// errors.Is(err, vm.ErrInvalid) holds for status 400, vm.ErrNoVM for 404
// (a 404 of a device operation means vm.ErrNotFound, but the status alone
// cannot tell them apart),
// vm.ErrConflict for 409 and vm.ErrBusy for 429, so callers can branch on
// the same kinds as the server's backend.
type APIError struct {
	// Status is the HTTP status code of the reply.
	Status int
	// Messages is the error chain, outermost first. It holds the raw body
	// when the body is not a JSON array of strings, and is empty when the
	// body is empty.
	Messages []string
}

// Error renders the status and the message chain on one line.
func (e *APIError) Error() string {
	s := fmt.Sprintf("API error %d %s", e.Status, http1.StatusText(e.Status))
	if len(e.Messages) > 0 {
		s += ": " + strings.Join(e.Messages, ": ")
	}
	return s
}

// Message is the server's message chain joined with ": ", without Cloud
// Hypervisor's generic "Error from API" at its head, or the status text
// when the body carried none.
func (e *APIError) Message() string {
	msgs := e.Messages
	if len(msgs) > 1 && msgs[0] == errorFromAPI {
		msgs = msgs[1:]
	}
	if len(msgs) == 0 {
		return http1.StatusText(e.Status)
	}
	return strings.Join(msgs, ": ")
}

// Unwrap maps the status to the vmm error kind it stands for, if any.
func (e *APIError) Unwrap() error {
	switch e.Status {
	case http1.StatusBadRequest:
		return vm.ErrInvalid
	case http1.StatusNotFound:
		return vm.ErrNoVM
	case http1.StatusConflict:
		return vm.ErrConflict
	case http1.StatusTooManyRequests:
		return vm.ErrBusy
	}
	return nil
}

// Succeeded reports whether status is a 2xx: the request was done.
func Succeeded(status int) bool { return status >= 200 && status <= 299 }

// ReplyError is the error a reply with the non-2xx status and body stands
// for: body is Cloud Hypervisor's JSON array of strings, or anything else,
// kept as one message.
func ReplyError(status int, body []byte) *APIError {
	e := &APIError{Status: status}
	t := bytes.TrimSpace(body)
	if len(t) == 0 {
		return e
	}
	if err := json.Unmarshal(t, &e.Messages); err != nil {
		e.Messages = []string{string(t)}
	}
	return e
}

// IsStatus reports whether err is an *APIError with the given status.
func IsStatus(err error, status int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == status
}

// errorFromAPI heads the error body of a failed backend call, as Cloud
// Hypervisor's HttpError::ApiError does.
const errorFromAPI = "Error from API"

// errorBody is the error body for err, a failure of route rt answered with
// status: Cloud Hypervisor's shapes. A request refused before the backend
// saw it: the request error's head ("Bad Request", "Failed to deserialize
// JSON", ...) then its message. A backend failure: "Error from API", the
// route's failure text, then the error's chain; "Too Many Requests" and the
// chain for 429.
func errorBody(rt route, status int, err error) []string {
	var re *requestError
	switch {
	case errors.As(err, &re):
		return []string{re.heading(), re.msg}
	case status == http1.StatusTooManyRequests:
		return append([]string{http1.StatusText(status)}, errorChain(err)...)
	}
	return append([]string{errorFromAPI, rt.failure}, errorChain(err)...)
}

// statusOf maps an error to its HTTP status.
func statusOf(err error) int {
	var re *requestError
	switch {
	case errors.As(err, &re):
		return re.status
	case errors.Is(err, vm.ErrInvalid):
		return http1.StatusBadRequest
	case errors.Is(err, vm.ErrConflict):
		return http1.StatusConflict
	case errors.Is(err, vm.ErrNoVM), errors.Is(err, vm.ErrNotFound):
		return http1.StatusNotFound
	case errors.Is(err, vm.ErrBusy):
		return http1.StatusTooManyRequests
	}
	// vm.ErrState and everything else: Cloud Hypervisor answers an
	// operation the VM's state does not allow with 500.
	return http1.StatusInternalServerError
}

// errorChain lists err's messages from outermost to root cause. A wrapping
// level's message is cut to the part before ": <inner message>"; a level
// whose message embeds its cause some other way ends the list, so no text
// is repeated.
func errorChain(err error) []string {
	var out []string
	for err != nil {
		msg := err.Error()
		next := errors.Unwrap(err)
		if next == nil {
			out = append(out, msg)
			break
		}
		inner := next.Error()
		switch outer, ok := strings.CutSuffix(msg, ": "+inner); {
		case msg == inner:
		case ok && outer != "":
			out = append(out, outer)
		case strings.Contains(msg, inner):
			return append(out, msg)
		default:
			out = append(out, msg)
		}
		err = next
	}
	return out
}

// writeError sends an error reply: the status and the messages as a JSON
// array of strings.
func writeError(w *response, status int, msgs []string) {
	if msgs == nil {
		msgs = []string{}
	}
	data, err := json.Marshal(msgs)
	if err != nil {
		data = []byte(`["Internal Server Error"]`)
	}
	writeBody(w, status, data)
}
