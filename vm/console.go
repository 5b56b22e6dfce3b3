package vm

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/devices"
)

// maxPendingOutput bounds the serial output waiting for a slow reader; past
// it output is dropped rather than stalling the guest (and with it any
// attempt to stop the VM).
const maxPendingOutput = 4 << 20

// console connects the serial port of whichever machine is current to the
// outside world. It outlives machines: a reboot attaches the new machine's
// serial port to the same output and input.
type console struct {
	log     *slog.Logger
	out     *asyncWriter
	outFile *os.File // a file we opened, closed at the end
	in      io.Reader
	restore func() // puts the terminal back, or nil

	mu      sync.Mutex
	serial  *devices.Serial
	changed chan struct{} // closed and replaced by attach
	quit    chan struct{}
	once    sync.Once
}

// openConsole sets up the serial port's output and input for cc: tty
// writes to stdout and reads stdin (a terminal is put in raw mode), file
// writes to a file, off and null discard output and send no input.
func openConsole(cc config.Serial, stdin io.Reader, stdout io.Writer, log *slog.Logger) (*console, error) {
	c := &console{log: log, changed: make(chan struct{}), quit: make(chan struct{})}
	var w io.Writer = io.Discard
	switch cc.Mode {
	case config.ModeTty:
		w, c.in = stdout, stdin
		if f, ok := stdin.(*os.File); ok {
			restore, err := makeRaw(int(f.Fd()))
			if err != nil {
				return nil, fmt.Errorf("serial: put the terminal in raw mode: %w", err)
			}
			c.restore = restore
		}
	case config.ModeFile:
		f, err := os.OpenFile(cc.File, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return nil, invalidf("serial: %w", err)
		}
		w, c.outFile = f, f
	}
	c.out = newAsyncWriter(w, log)
	if c.in != nil {
		go c.pump()
	}
	return c, nil
}

// attach makes s the serial port that receives input (nil for none).
func (c *console) attach(s *devices.Serial) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.serial = s
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *console) current() (*devices.Serial, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.serial, c.changed
}

// pump copies input to the current serial port, waiting while the port's
// receive queue is full or no machine is attached. At end of input it
// stops; the guest keeps running.
func (c *console) pump() {
	buf := make([]byte, 4096)
	for {
		n, err := c.in.Read(buf)
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
			data = data[s.Input(data):]
			if len(data) > 0 {
				select {
				case <-s.Space():
				case <-changed:
				case <-c.quit:
					return
				}
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				c.log.Warn("serial input ended", "err", err)
			}
			return
		}
	}
}

// close flushes the output and restores the terminal. The input reader may
// stay blocked in a read; it does nothing more.
func (c *console) close() {
	c.once.Do(func() {
		close(c.quit)
		c.out.Close()
		if c.outFile != nil {
			c.outFile.Close()
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
