package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Server tuning.
const (
	// outputGrace is how long a command's output is still collected after
	// its shell exited, for what background jobs it started keep the
	// output open: "sleep 100 &" returns at once, as on the console.
	outputGrace = 200 * time.Millisecond
	// commandDir is where commands run: the console shell's directory.
	commandDir = "/root"
	// acceptRetryMin and acceptRetryMax bound the pause after a failed
	// Accept, doubling while Accept keeps failing.
	acceptRetryMin = 5 * time.Millisecond
	acceptRetryMax = time.Second
)

// Listener is where the agent takes its connections: a vsock listener in
// the guest (ListenVsock), any stream listener in tests.
type Listener interface {
	Accept() (io.ReadWriteCloser, error)
	Close() error
}

// Server runs the requests of its connections, each on its own
// goroutine.
type Server struct {
	// Log gets a line per failed connection; nil means slog.Default().
	Log *slog.Logger
	// Dir is where commands run; "" means /root.
	Dir string
}

// Serve takes connections from ln until ln is closed, and returns that
// error once the requests in flight are done. Any other failed Accept
// (a connection the host reset before it was taken, a signal, memory
// short for a moment) is logged and Accept is called again after a
// pause: one lost connection must not end the agent, which nobody
// restarts.
func (s *Server) Serve(ln Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	pause := time.Duration(0)
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) {
			return fmt.Errorf("agent: accept: %w", err)
		}
		if err != nil {
			pause = min(max(2*pause, acceptRetryMin), acceptRetryMax)
			s.log().Warn("agent: accept failed; taking the next connection", "err", err, "after", pause)
			time.Sleep(pause)
			continue
		}
		pause = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(c)
		}()
	}
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// serveConn runs one request and answers it.
func (s *Server) serveConn(c io.ReadWriteCloser) {
	defer c.Close()
	br := bufio.NewReader(c)
	var req Request
	if err := readLine(br, MaxRequest, &req); err != nil {
		if !errors.Is(err, io.EOF) {
			s.log().Warn("agent: bad request", "err", err)
			_ = writeLine(c, Response{Error: err.Error()})
		}
		return
	}
	if req.Version != Version {
		_ = writeLine(c, Response{Error: fmt.Sprintf("protocol version %d: this agent speaks %d", req.Version, Version)})
		return
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	// Anything after the request, or the client's close, cancels it.
	go func() {
		var b [1]byte
		_, _ = br.Read(b[:])
		cancel(errors.New("the client cancelled"))
	}()
	if err := writeLine(c, s.Run(ctx, req)); err != nil {
		s.log().Warn("agent: answer", "err", err)
	}
}

// Run runs one request's command and returns its response.
func (s *Server) Run(ctx context.Context, req Request) Response {
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, req.Timeout, fmt.Errorf("timed out after %v", req.Timeout))
		defer cancel()
	}
	out := &capped{max: MaxOutput}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", req.Cmd)
	cmd.Dir = s.Dir
	if cmd.Dir == "" {
		cmd.Dir = commandDir
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = outputGrace
	err := cmd.Run()
	resp := Response{Output: out.bytes(), Truncated: out.cut}
	if ctx.Err() != nil {
		resp.Error = context.Cause(ctx).Error()
		return resp
	}
	var ee *exec.ExitError
	switch {
	case err == nil, errors.Is(err, exec.ErrWaitDelay):
	case errors.As(err, &ee):
	default:
		resp.Error = err.Error()
		return resp
	}
	st := cmd.ProcessState
	resp.Status = st.ExitCode()
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		resp.Status = 128 + int(ws.Signal())
	}
	return resp
}

// capped keeps the first max bytes written to it.
type capped struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
	cut bool
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	room := c.max - c.buf.Len()
	if len(p) > room {
		c.cut = true
		c.buf.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return c.buf.Write(p)
}

func (c *capped) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.buf.Bytes())
}
