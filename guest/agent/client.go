package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// handshakeTimeout bounds the hybrid vsock handshake when the context
// does not: the vmm gives the guest 2 s to answer.
const handshakeTimeout = 5 * time.Second

// ErrRefused is the cause of a DialHybrid that got no OK: nobody listens
// on the guest port, the guest's vsock driver is not up, or the vmm
// refused the handshake.
var ErrRefused = errors.New("the connection was refused")

// ErrNoAnswer is the error of a command whose connection closed before
// the agent answered.
var ErrNoAnswer = errors.New("agent: the connection closed without an answer")

// DialHybrid connects to guest port through the vmm's hybrid vsock
// socket: it writes "CONNECT <port>\n" and reads "OK <host port>\n". The
// returned connection is the guest's, past the handshake.
func DialHybrid(ctx context.Context, socket string, port uint32) (*net.UnixConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("vsock port %d: %w", port, err)
	}
	uc := c.(*net.UnixConn)
	deadline, ok := ctx.Deadline()
	if !ok || time.Until(deadline) > handshakeTimeout {
		deadline = time.Now().Add(handshakeTimeout)
	}
	_ = uc.SetDeadline(deadline)
	if _, err := fmt.Fprintf(uc, "CONNECT %d\n", port); err != nil {
		uc.Close()
		return nil, fmt.Errorf("vsock port %d: %w", port, err)
	}
	line, err := readByteLine(uc, 64)
	if err != nil {
		uc.Close()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("vsock port %d: %w", port, ErrRefused)
		}
		return nil, fmt.Errorf("vsock port %d: handshake: %w", port, err)
	}
	if _, err := parseOK(line); err != nil {
		uc.Close()
		return nil, fmt.Errorf("vsock port %d: %w", port, err)
	}
	_ = uc.SetDeadline(time.Time{})
	return uc, nil
}

// parseOK reads the handshake's answer "OK <host port>".
func parseOK(line string) (uint32, error) {
	rest, ok := strings.CutPrefix(line, "OK ")
	if !ok {
		return 0, fmt.Errorf("handshake answer %q: want \"OK <port>\"", line)
	}
	p, err := strconv.ParseUint(rest, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("handshake answer %q: %w", line, err)
	}
	return uint32(p), nil
}

// readByteLine reads a line without its newline one byte at a time, so
// that nothing after it is consumed.
func readByteLine(r io.Reader, limit int) (string, error) {
	var b []byte
	var one [1]byte
	for len(b) < limit {
		if _, err := io.ReadFull(r, one[:]); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || len(b) == 0 {
				return "", io.EOF
			}
			return "", err
		}
		if one[0] == '\n' {
			return string(b), nil
		}
		b = append(b, one[0])
	}
	return "", fmt.Errorf("a line longer than %d bytes", limit)
}

// Exec sends req on conn, a connection to the agent, and waits for its
// response. When ctx ends first, the connection is closed, which makes
// the agent kill the command. Exec closes conn.
func Exec(ctx context.Context, conn io.ReadWriteCloser, req Request) (Response, error) {
	defer conn.Close()
	req.Version = Version
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := writeLine(conn, req); err != nil {
		return Response{}, ctxErr(ctx, err)
	}
	var resp Response
	if err := readLine(bufio.NewReaderSize(conn, 64<<10), maxResponse, &resp); err != nil {
		if errors.Is(err, io.EOF) {
			err = ErrNoAnswer
		}
		return Response{}, ctxErr(ctx, err)
	}
	return resp, nil
}

// ctxErr prefers the context's end to the error it caused.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("agent: %w", context.Cause(ctx))
	}
	return err
}

// Client runs commands through the agent of a guest whose vmm has a
// hybrid vsock socket at Socket.
type Client struct {
	Socket string
	// Port is the agent's vsock port; 0 means Port.
	Port uint32
}

// Dial connects to the agent.
func (c Client) Dial(ctx context.Context) (*net.UnixConn, error) {
	port := c.Port
	if port == 0 {
		port = Port
	}
	return DialHybrid(ctx, c.Socket, port)
}

// Run runs cmd in the guest and returns its output, trailing newlines
// removed as $(...) would, and its exit status, as the console's
// guest.Shell.Run does. A non-zero status is not an error.
func (c Client) Run(ctx context.Context, cmd string) (string, int, error) {
	conn, err := c.Dial(ctx)
	if err != nil {
		return "", 0, err
	}
	return RunOn(ctx, conn, cmd)
}

// RunOn is Client.Run on conn, a connection to the agent; it closes conn.
func RunOn(ctx context.Context, conn io.ReadWriteCloser, cmd string) (string, int, error) {
	resp, err := Exec(ctx, conn, Request{Cmd: cmd})
	if err != nil {
		return "", 0, fmt.Errorf("guest command %q: %w", cmd, err)
	}
	out := strings.TrimRight(string(resp.Output), "\n")
	if resp.Error != "" {
		return out, 0, fmt.Errorf("guest command %q: agent: %s", cmd, resp.Error)
	}
	return out, resp.Status, nil
}
