package virtio

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// virtio-rng (virtio 1.2, 5.4 "Entropy Device").
const (
	// rngDeviceID is the virtio device ID of an entropy source.
	rngDeviceID = 4
	// DefaultRngSource is where the entropy comes from when no source is
	// named.
	DefaultRngSource = "/dev/urandom"
	// rngMaxRequest bounds the bytes one request gets: the guest's hwrng
	// core asks for a few dozen at a time.
	rngMaxRequest = 64 << 10
)

// Rng is a virtio-rng device: it fills the guest's buffers from a source
// file, /dev/urandom by default.
type Rng struct {
	src     string
	file    *os.File
	scratch [][]byte
}

// NewRng opens the entropy source src ("" means DefaultRngSource).
func NewRng(src string) (*Rng, error) {
	if src == "" {
		src = DefaultRngSource
	}
	f, err := os.Open(src)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("rng src %s: %w", src, err)
	}
	if st, err := f.Stat(); err == nil && st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("rng src %s: is a directory", src)
	}
	return &Rng{src: src, file: f}, nil
}

// Kind implements Device.
func (r *Rng) Kind() string { return "virtio-rng" }

// Source is the entropy source's path.
func (r *Rng) Source() string { return r.src }

// Close closes the source.
func (r *Rng) Close() error {
	if err := r.file.Close(); err != nil {
		return fmt.Errorf("rng src %s: %w", r.src, err)
	}
	return nil
}

func (r *Rng) deviceID() uint32           { return rngDeviceID }
func (r *Rng) features() uint64           { return 0 }
func (r *Rng) numQueues() int             { return 1 }
func (r *Rng) readConfig(uint64, []byte)  {}
func (r *Rng) writeConfig(uint64, []byte) {}
func (r *Rng) activate(queues)            {}
func (r *Rng) deactivate()                {}

// process fills every available buffer. A source that ends or fails
// yields what it gave so far: a short (possibly empty) buffer.
func (r *Rng) process(_ int, q *vring) {
	var c chain
	for q.next(&c) {
		r.scratch = subrange(r.scratch[:0], c.writable, 0, min(c.wlen, rngMaxRequest))
		n := 0
		for _, s := range r.scratch {
			k, err := io.ReadFull(r.file, s)
			n += k
			if err != nil {
				break
			}
		}
		q.push(c.head, uint32(n))
	}
}
