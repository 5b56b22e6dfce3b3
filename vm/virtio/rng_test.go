package virtio

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func TestRNGFillsBuffersFromSourceWithFakeDriver(t *testing.T) {
	content := []byte("entropy from a file, in order")
	d := newFakeDriver(t, newTestRNG(t, content))
	d.start(featureVersion1, 1, 8)
	if got := d.r32(regDeviceID); got != rngDeviceID {
		t.Fatalf("device id %d", got)
	}
	a, b := d.buf(7, true), d.buf(5, true)
	d.submit(0, a, b) // one chain of two buffers
	if _, n := d.waitUsed(0); n != 12 {
		t.Fatalf("used len %d, want 12", n)
	}
	if got := string(d.data(a)) + string(d.data(b)); got != string(content[:12]) {
		t.Fatalf("got %q", got)
	}
	// The source runs dry: the guest gets what is left.
	c := d.buf(100, true)
	d.submit(0, c)
	if _, n := d.waitUsed(0); n != uint32(len(content)-12) {
		t.Fatalf("used len %d at the end of the source, want %d", n, len(content)-12)
	}
}

func TestRNGDefaultSourceIsURandomWithFakeDriver(t *testing.T) {
	r, err := NewRNG("")
	if err != nil {
		t.Fatal(err)
	}
	if r.Source() != "/dev/urandom" {
		t.Fatalf("source %q", r.Source())
	}
	d := newFakeDriver(t, r)
	d.start(featureVersion1, 1, 8)
	b := d.buf(64, true)
	d.submit(0, b)
	if _, n := d.waitUsed(0); n != 64 {
		t.Fatalf("used len %d", n)
	}
	if bytes.Equal(d.data(b), make([]byte, 64)) {
		t.Fatal("64 zero bytes from /dev/urandom")
	}
}

func TestRNGIgnoresReadableBuffersWithFakeDriver(t *testing.T) {
	d := newFakeDriver(t, newTestRNG(t, []byte("abc")))
	d.start(featureVersion1, 1, 8)
	d.submit(0, d.buf(8, false))
	if _, n := d.waitUsed(0); n != 0 {
		t.Fatalf("used len %d for a readable buffer", n)
	}
}

func TestNewRNGErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ src, want string }{
		{filepath.Join(dir, "missing"), "no such file"},
		{dir, "is a directory"},
	} {
		_, err := NewRNG(c.src)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.src) {
			t.Errorf("NewRNG(%q) = %v, want an error with %q and the path", c.src, err, c.want)
		}
	}
}
