package vm

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// The host ends of the Pty and Socket console modes.

// ptmxPaths are where the pseudo-terminal multiplexer is looked for, in
// Cloud Hypervisor's order.
var ptmxPaths = [...]string{"/dev/pts/ptmx", "/dev/ptmx"}

// pty is a pseudo-terminal: vmm reads and writes main; path names the
// sub side a user opens (screen, minicom). vmm keeps the sub open too, in
// raw mode, so that main's reads do not fail while no one has it open.
type pty struct {
	main *os.File
	sub  *os.File
	path string
}

// openPty opens a new pseudo-terminal.
func openPty() (*pty, error) {
	var main *os.File
	var err error
	for _, p := range ptmxPaths {
		if main, err = os.OpenFile(p, os.O_RDWR|unix.O_NOCTTY, 0); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open a pseudo-terminal: %w", err)
	}
	fd := int(main.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		main.Close()
		return nil, fmt.Errorf("unlock the pseudo-terminal: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		main.Close()
		return nil, fmt.Errorf("name the pseudo-terminal: %w", err)
	}
	path := fmt.Sprintf("/dev/pts/%d", n)
	sub, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		main.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if _, err := makeRaw(int(sub.Fd())); err != nil {
		sub.Close()
		main.Close()
		return nil, fmt.Errorf("%s: raw mode: %w", path, err)
	}
	return &pty{main: main, sub: sub, path: path}, nil
}

// Close closes both sides.
func (p *pty) Close() error { return errors.Join(p.main.Close(), p.sub.Close()) }

// listenConsole listens on a new unix socket at path; as Cloud
// Hypervisor's, it refuses a path that exists. Closing the listener
// removes the socket file.
func listenConsole(path string) (*net.UnixListener, error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("socket %s: %w (remove it first)", path, fs.ErrExist)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	return ln, nil
}

// accept serves the console's socket: each client that connects gets the
// console (output and input), taking it from the one before, until the
// listener closes.
func (c *console) accept(ln *net.UnixListener) {
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			select {
			case <-c.quit:
			default:
				if !errors.Is(err, net.ErrClosed) {
					c.log.Warn(c.spec.name+" socket: accept failed; no more clients", "err", err)
				}
			}
			return
		}
		c.log.Info(c.spec.name+" socket: a client connected", "socket", c.spec.socket)
		c.client.set(conn)
		go func() {
			c.pump(conn)
			c.client.drop(conn)
		}()
	}
}

// maxHeldOutput is how much output a socket console keeps while no client
// is connected, for the next client (the most recent bytes).
const maxHeldOutput = 64 << 10

// clientWriter writes to the socket's current client, if any; while none
// is connected it keeps the last maxHeldOutput bytes, which the next
// client gets first, as Cloud Hypervisor's serial buffer does.
type clientWriter struct {
	mu   sync.Mutex
	conn io.WriteCloser
	held []byte
}

// set makes conn the client (nil: none), hands it the held output and
// closes the one before, as Cloud Hypervisor does.
func (w *clientWriter) set(conn io.WriteCloser) {
	w.mu.Lock()
	old := w.conn
	w.conn = conn
	held := w.held
	if conn != nil {
		w.held = nil
	}
	w.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	if conn != nil && len(held) > 0 {
		_, _ = w.Write(held)
	}
}

// current is the client, or nil.
func (w *clientWriter) current() io.WriteCloser {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.conn
}

// drop forgets conn, the client that hung up, if it is still the current
// one.
func (w *clientWriter) drop(conn io.WriteCloser) {
	w.mu.Lock()
	if w.conn == conn {
		w.conn = nil
	}
	w.mu.Unlock()
	_ = conn.Close()
}

// Write sends p to the client; a client that went away is forgotten.
func (w *clientWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	conn := w.conn
	if conn == nil {
		w.held = append(w.held, p...)
		if over := len(w.held) - maxHeldOutput; over > 0 {
			w.held = append(w.held[:0], w.held[over:]...)
		}
	}
	w.mu.Unlock()
	if conn == nil {
		return len(p), nil
	}
	if _, err := conn.Write(p); err != nil {
		w.mu.Lock()
		if w.conn == conn {
			w.conn = nil
		}
		w.mu.Unlock()
		_ = conn.Close()
	}
	return len(p), nil
}
