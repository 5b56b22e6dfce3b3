// Package agent is the guest agent of the project's test guest: a small
// static program (cmd/vmm-agent) that the guest's init starts when the VM
// has a virtio-vsock device, listening on vsock port Port. A host program
// reaches it through the vmm's hybrid vsock socket (DialHybrid: Cloud
// Hypervisor's "CONNECT <port>" handshake) and has it run shell commands
// (Exec), as the serial console's shell does but without typing them one
// byte at a time into a UART: each request is a connection of its own, so
// several run at once, and closing the connection cancels the command.
//
// The protocol, on one stream connection: the client writes a Request as
// one JSON line; the agent runs it and writes a Response as one JSON line,
// then closes. Anything the client sends after the request, or its close,
// cancels the command (its process group is killed).
//
// The package also has the data streams the end-to-end specs move over
// vsock (Pattern, Sum) and, for the agent inside the guest, AF_VSOCK
// sockets (ListenVsock, DialVsock).
package agent

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Port is the vsock port the agent listens on in the guest.
const Port = 1024

// Version is the protocol's version; a Request with another is refused.
const Version = 1

// Limits of the protocol.
const (
	// MaxRequest bounds a request line.
	MaxRequest = 1 << 20
	// MaxOutput bounds the output a response carries; more is cut, and
	// the response says so.
	MaxOutput = 16 << 20
	// maxResponse bounds a response line: the output base64-encoded and
	// the rest.
	maxResponse = MaxOutput/3*4 + 64<<10
)

// Request asks the agent to run Cmd with sh -c in /root, stdout and
// stderr together as a terminal would show them, for at most Timeout
// (0: until the client cancels).
type Request struct {
	Version int           `json:"version"`
	Cmd     string        `json:"cmd"`
	Timeout time.Duration `json:"timeout,omitempty"`
}

// Response is a command's result: its combined output and exit status
// (128+N for a command killed by signal N, as a shell reports it).
// Error is set, and Status meaningless, when the command could not run
// or timed out.
type Response struct {
	Output    []byte `json:"output"`
	Status    int    `json:"status"`
	Truncated bool   `json:"truncated,omitempty"`
	Error     string `json:"error,omitempty"`
}

// writeLine writes v as one JSON line.
func writeLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("agent: encode: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("agent: send: %w", err)
	}
	return nil
}

// readLine reads one JSON line of at most limit bytes into v.
func readLine(r *bufio.Reader, limit int, v any) error {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > limit {
			return fmt.Errorf("agent: a line longer than %d bytes", limit)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) && len(line) == 0 {
				return io.EOF
			}
			return fmt.Errorf("agent: read: %w", err)
		}
	}
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("agent: decode: %w", err)
	}
	return nil
}
