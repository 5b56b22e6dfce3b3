package virtio

import (
	"io"
	"sync"
)

// virtio-console (virtio 1.2, 5.3 "Console Device"), one port, no
// multiport, no emergency write: the guest's hvc0.
const (
	// consoleDeviceID is the virtio device ID of a console.
	consoleDeviceID = 3
	// consoleRXQueue carries host input to the guest (receiveq),
	// consoleTXQueue the guest's output (transmitq).
	consoleRXQueue = 0
	consoleTXQueue = 1
	// consoleConfigSize is the configuration space: cols, rows (16 bits
	// each), max_nr_ports and emerg_wr (32 bits each), all read as zero
	// without the features that give them meaning.
	consoleConfigSize = 12
	// consoleMaxChunk bounds one output write: a transmit buffer larger
	// than this is written in pieces.
	consoleMaxChunk = 64 << 10
)

// Console is a virtio-console device: what the guest writes to its hvc0 goes
// to out, and Input hands it what the host side types.
type Console struct {
	out     io.Writer
	scratch []byte

	mu    sync.Mutex
	qs    queues        // while the driver runs
	space chan struct{} // closed when the guest adds receive buffers
}

// NewConsole returns a console writing the guest's output to out, which
// must not block for long (the VMM puts a buffer in front of a slow
// reader).
func NewConsole(out io.Writer) *Console {
	return &Console{out: out, space: make(chan struct{})}
}

// Kind implements Device.
func (c *Console) Kind() string { return "virtio-console" }

// Close implements Device; the output belongs to the caller.
func (c *Console) Close() error { return nil }

func (c *Console) deviceID() uint32 { return consoleDeviceID }
func (c *Console) features() uint64 { return 0 }
func (c *Console) numQueues() int   { return 2 }
func (c *Console) configSize() int  { return consoleConfigSize }

// readConfig reads the configuration space: zeros, and nothing past its
// end.
func (c *Console) readConfig(offset uint64, data []byte) {
	if offset < consoleConfigSize {
		clear(data[:min(uint64(len(data)), consoleConfigSize-offset)])
	}
}

// writeConfig ignores writes (emerg_wr needs VIRTIO_CONSOLE_F_EMERG_WRITE).
func (c *Console) writeConfig(uint64, []byte) {}

func (c *Console) activate(qs queues) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.qs = qs
	c.wakeLocked()
}

func (c *Console) deactivate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.qs = nil
	c.wakeLocked()
}

// wakeLocked wakes whoever waits in Space. Called with c.mu held.
func (c *Console) wakeLocked() {
	close(c.space)
	c.space = make(chan struct{})
}

// process writes out the transmit buffers; new receive buffers wake Input's
// caller.
func (c *Console) process(i int, q *vring) {
	if i == consoleRXQueue {
		c.mu.Lock()
		c.wakeLocked()
		c.mu.Unlock()
		return
	}
	var ch chain
	for q.next(&ch) {
		for off := uint64(0); off < ch.rlen; {
			n := min(ch.rlen-off, consoleMaxChunk)
			if uint64(cap(c.scratch)) < n {
				c.scratch = make([]byte, n)
			}
			k := gather(c.scratch[:n], ch.readable, off)
			_, _ = c.out.Write(c.scratch[:k])
			off += uint64(k)
			if k == 0 {
				break
			}
		}
		q.push(ch.head, 0)
	}
}

// Input gives the guest what it has receive buffers for of p and returns
// how many bytes it took: 0 while the driver is not running or has no
// buffer; Space then says when to try again.
func (c *Console) Input(p []byte) int {
	c.mu.Lock()
	qs := c.qs
	c.mu.Unlock()
	if qs == nil || len(p) == 0 {
		return 0
	}
	taken := 0
	qs.with(consoleRXQueue, func(q *vring) {
		var ch chain
		for taken < len(p) && q.next(&ch) {
			n := scatter(ch.writable, p[taken:])
			q.push(ch.head, uint32(n))
			taken += n
			if n == 0 {
				break
			}
		}
	})
	return taken
}

// Space returns a channel closed when Input may take more: the guest added
// receive buffers, or the driver started or stopped.
func (c *Console) Space() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.space
}
