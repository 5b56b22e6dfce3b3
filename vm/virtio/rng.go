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

// RNG is a virtio-rng device: it fills the guest's buffers from a source
// file, /dev/urandom by default.
type RNG struct {
	queueOnly
	src     string
	file    *os.File
	scratch [][]byte
}

// NewRNG opens the entropy source src ("" means DefaultRngSource).
func NewRNG(src string) (*RNG, error) {
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
	return &RNG{src: src, file: f}, nil
}

// Kind implements Device.
func (r *RNG) Kind() string { return "virtio-rng" }

// Source is the entropy source's path.
func (r *RNG) Source() string { return r.src }

// Close closes the source.
func (r *RNG) Close() error { return closeFile(r.file, "rng src "+r.src) }

// closeFile closes the file behind a device, named what in the error.
func closeFile(f *os.File, what string) error {
	if err := f.Close(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func (r *RNG) deviceID() uint32          { return rngDeviceID }
func (r *RNG) features() uint64          { return 0 }
func (r *RNG) numQueues() int            { return 1 }
func (r *RNG) configSize() int           { return 0 }
func (r *RNG) readConfig(uint64, []byte) {}

// process fills every available buffer. A source that ends or fails
// yields what it gave so far: a short (possibly empty) buffer.
func (r *RNG) process(_ int, q *vring) {
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
