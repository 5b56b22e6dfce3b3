package virtio

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for the device's goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestConsoleWritesTheGuestsOutputWithFakeDriver(t *testing.T) {
	var out lockedBuffer
	d := newFakeDriver(t, NewConsole(&out))
	if got := d.r32(regDeviceID); got != consoleDeviceID {
		t.Fatalf("device id %d, want 3", got)
	}
	d.start(featureVersion1, 2, 8)
	a, b := d.buf(6, false), d.buf(6, false)
	copy(d.data(a), "hello ")
	copy(d.data(b), "world\n")
	d.submit(consoleTXQueue, a, b)
	if _, n := d.waitUsed(consoleTXQueue); n != 0 {
		t.Errorf("transmit used length %d, want 0", n)
	}
	if got := out.String(); got != "hello world\n" {
		t.Errorf("output %q", got)
	}
}

func TestConsoleInputWaitsForReceiveBuffersWithFakeDriver(t *testing.T) {
	c := NewConsole(&lockedBuffer{})
	if n := c.Input([]byte("early")); n != 0 {
		t.Fatalf("input before the driver: took %d", n)
	}
	d := newFakeDriver(t, c)
	space := c.Space()
	d.start(featureVersion1, 2, 8)
	select {
	case <-space:
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up when the driver started")
	}
	if n := c.Input([]byte("x")); n != 0 {
		t.Fatalf("input without receive buffers: took %d", n)
	}
	space = c.Space()
	small, big := d.buf(3, true), d.buf(16, true)
	d.submit(consoleRXQueue, small)
	d.submit(consoleRXQueue, big)
	select {
	case <-space:
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up when the guest added receive buffers")
	}
	if n := c.Input([]byte("ls -l\n")); n != 6 {
		t.Fatalf("took %d of 6 bytes", n)
	}
	if _, n := d.waitUsed(consoleRXQueue); n != 3 {
		t.Errorf("first buffer: %d bytes", n)
	}
	if _, n := d.waitUsed(consoleRXQueue); n != 3 {
		t.Errorf("second buffer: %d bytes", n)
	}
	if got := string(d.data(small)) + string(d.data(big)[:3]); got != "ls -l\n" {
		t.Errorf("guest got %q", got)
	}
}
