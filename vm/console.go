package vm

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmmdev/vmm/vm/config"
)

// maxPendingOutput bounds the console output waiting for a slow reader; past
// it output is dropped rather than stalling the guest (and with it any
// attempt to stop the VM).
const maxPendingOutput = 4 << 20

// inputSink is a device that takes console input: the UART or the virtio
// console.
type inputSink interface {
	// Input takes what it has room for of p and returns how many bytes.
	Input(p []byte) int
	// Space is closed when Input may take more.
	Space() <-chan struct{}
}

// consoleSpec is what one console is asked to be: Cloud Hypervisor's mode,
// file and socket of serial or console.
type consoleSpec struct {
	name   string // "serial" or "console", for messages
	mode   config.ConsoleMode
	file   string
	socket string
}

// serialSpec and consoleSpecOf read the configuration's consoles.
func serialSpec(s config.Serial) consoleSpec {
	return consoleSpec{name: "serial", mode: s.Mode, file: s.File, socket: s.Socket}
}

func consoleSpecOf(c config.Console) consoleSpec {
	return consoleSpec{name: "console", mode: c.Mode, file: c.File, socket: c.Socket}
}

// console connects one guest console (the serial port or the virtio
// console) of whichever machine is current to the host side its mode
// says. It outlives machines: a reboot attaches the new machine's device to
// the same output and input.
type console struct {
	spec    consoleSpec
	log     *slog.Logger
	out     *asyncWriter
	closers []io.Closer // files, ptys and listeners we opened
	restore func()      // puts the terminal back, or nil
	// path is the pseudo-terminal's path in Pty mode, for vm.info's file.
	path string
	// client is the socket client's connection in Socket mode.
	client *clientWriter

	mu      sync.Mutex
	sink    inputSink
	changed chan struct{} // closed and replaced by attach
	quit    chan struct{}
	once    sync.Once
}

// openConsole sets up a console's host side for spec: Tty writes to stdout
// and reads stdin when takeStdin (a terminal is put in raw mode), File
// writes to a file, Pty opens a pseudo-terminal, Socket listens on a unix
// socket for one client at a time, Off and Null discard output and send no
// input.
func openConsole(spec consoleSpec, takeStdin bool, stdin io.Reader, stdout io.Writer, log *slog.Logger) (*console, error) {
	c := &console{spec: spec, log: log, changed: make(chan struct{}), quit: make(chan struct{})}
	var w io.Writer = io.Discard
	var in io.Reader
	switch spec.mode {
	case config.ModeTty:
		w = stdout
		if takeStdin {
			in = stdin
			if f, ok := stdin.(*os.File); ok {
				restore, err := makeRaw(int(f.Fd()))
				if err != nil {
					return nil, fmt.Errorf("%s: put the terminal in raw mode: %w", spec.name, err)
				}
				c.restore = restore
			}
		}
	case config.ModeFile:
		f, err := os.OpenFile(spec.file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return nil, invalidf("%s: %w", spec.name, err)
		}
		w = f
		c.closers = append(c.closers, f)
	case config.ModePty:
		p, err := openPty()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", spec.name, err)
		}
		w, in, c.path = p.main, p.main, p.path
		c.closers = append(c.closers, p)
	case config.ModeSocket:
		ln, err := listenConsole(spec.socket)
		if err != nil {
			return nil, invalidf("%s: %w", spec.name, err)
		}
		c.client = &clientWriter{}
		w = c.client
		c.closers = append(c.closers, ln)
		go c.accept(ln)
	}
	c.out = newAsyncWriter(w, log)
	if in != nil {
		go c.pump(in)
	}
	return c, nil
}

// attach makes s the device that receives input (nil for none).
func (c *console) attach(s inputSink) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sink = s
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *console) current() (inputSink, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sink, c.changed
}

// pump copies input from r to the current device, waiting while the
// device has no room or no machine is attached. At the end of r it stops;
// the guest keeps running.
func (c *console) pump(r io.Reader) {
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		data := buf[:n]
		for len(data) > 0 {
			s, changed := c.current()
			if s == nil {
				select {
				case <-changed:
					continue
				case <-c.quit:
					return
				}
			}
			space := s.Space()
			data = data[s.Input(data):]
			if len(data) > 0 {
				select {
				case <-space:
				case <-changed:
				case <-c.quit:
					return
				}
			}
		}
		if err != nil {
			select {
			case <-c.quit:
			default:
				if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) && !errors.Is(err, net.ErrClosed) {
					c.log.Warn(c.spec.name+" input ended", "err", err)
				}
			}
			return
		}
	}
}

// close flushes the output, closes what the console opened (the socket
// file is removed) and restores the terminal. A stdin reader may stay
// blocked in a read; it does nothing more.
func (c *console) close() {
	c.once.Do(func() {
		close(c.quit)
		c.out.Close()
		for _, cl := range c.closers {
			_ = cl.Close()
		}
		if c.client != nil {
			c.client.set(nil)
		}
		if c.restore != nil {
			c.restore()
		}
	})
}

// makeRaw puts the terminal on fd in raw mode, as cfmakeraw(3) does, and
// returns the function that restores it. A fd that is no terminal (a pipe,
// a FIFO, a file) is left alone.
func makeRaw(fd int) (func(), error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
			return nil, nil
		}
		return nil, err
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN] = 1
	raw.Cc[unix.VTIME] = 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return nil, err
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}

// asyncWriter decouples the vCPU that writes the serial port from a slow or
// blocked output: writes are buffered and a goroutine drains them.
type asyncWriter struct {
	w   io.Writer
	log *slog.Logger

	mu       sync.Mutex
	cond     *sync.Cond
	buf      []byte
	closed   bool
	failed   bool
	dropping bool
	done     chan struct{}
}

func newAsyncWriter(w io.Writer, log *slog.Logger) *asyncWriter {
	a := &asyncWriter{w: w, log: log, done: make(chan struct{})}
	a.cond = sync.NewCond(&a.mu)
	go a.loop()
	return a
}

// Write queues p and never blocks. Output beyond maxPendingOutput that a
// reader has not taken yet is dropped, with one warning.
func (a *asyncWriter) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed || a.failed {
		return len(p), nil // nowhere to go; the guest must not notice
	}
	if len(a.buf)+len(p) > maxPendingOutput {
		if !a.dropping {
			a.dropping = true
			a.log.Warn("serial output is not being read; dropping it")
		}
		return len(p), nil
	}
	a.dropping = false
	a.buf = append(a.buf, p...)
	a.cond.Broadcast()
	return len(p), nil
}

func (a *asyncWriter) loop() {
	defer close(a.done)
	a.mu.Lock()
	for {
		for len(a.buf) == 0 && !a.closed {
			a.cond.Wait()
		}
		if len(a.buf) == 0 {
			a.mu.Unlock()
			return
		}
		chunk := a.buf
		a.buf = nil
		a.mu.Unlock()
		_, err := a.w.Write(chunk)
		a.mu.Lock()
		if err != nil && !a.failed {
			a.failed = true
			a.log.Warn("serial output failed; the rest is dropped", "err", err)
		}
		if a.failed {
			a.buf = nil
		}
		a.cond.Broadcast()
	}
}

// closeTimeout bounds how long Close waits for pending output to drain into
// a reader that may have stopped reading.
const closeTimeout = 2 * time.Second

// Close writes out what is pending and stops the writer.
func (a *asyncWriter) Close() {
	a.mu.Lock()
	a.closed = true
	a.cond.Broadcast()
	a.mu.Unlock()
	select {
	case <-a.done:
	case <-time.After(closeTimeout):
		a.log.Warn("serial output still blocked at exit; the rest is dropped")
	}
}
