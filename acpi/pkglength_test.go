package acpi

import (
	"bytes"
	"testing"
)

// pkgLengthCases are the package length encodings at each size boundary,
// worked out from ACPI 6.5, 20.2.4: the value counts the length's own
// bytes; one byte holds 6 bits; longer encodings put the byte count - 1 in
// bits 7-6 of the lead byte, the low nibble in bits 3-0 and the rest in the
// following bytes, least significant first.
var pkgLengthCases = []struct {
	contents int
	want     []byte
}{
	{0, []byte{0x01}},
	{62, []byte{0x3f}},                        // value 63: the largest one-byte length
	{63, []byte{0x41, 0x04}},                  // value 65 (64 cannot occur: 63+1 needs two bytes)
	{64, []byte{0x42, 0x04}},                  // value 66
	{4093, []byte{0x4f, 0xff}},                // value 4095: the largest two-byte length
	{4094, []byte{0x81, 0x00, 0x01}},          // value 4097
	{1048572, []byte{0x8f, 0xff, 0xff}},       // value 1048575: the largest three-byte length
	{1048573, []byte{0xc1, 0x00, 0x00, 0x01}}, // value 1048577
	{MaxPkgLength - 4, []byte{0xcf, 0xff, 0xff, 0xff}},
}

func TestPkgLengthIsExactAtEveryBoundary(t *testing.T) {
	for _, c := range pkgLengthCases {
		got, err := AppendPkgLength(nil, c.contents)
		if err != nil {
			t.Fatalf("contents %d: %v", c.contents, err)
		}
		if !bytes.Equal(got, c.want) {
			t.Errorf("contents %d: got % x, want % x", c.contents, got, c.want)
		}
		length, size, err := DecodePkgLength(got)
		if err != nil || size != len(c.want) || length != c.contents+size {
			t.Errorf("decode % x: length %d size %d err %v; want length %d size %d",
				got, length, size, err, c.contents+len(c.want), len(c.want))
		}
	}
}

func TestPkgLengthRefusesWhatDoesNotFit(t *testing.T) {
	for _, n := range []int{-1, MaxPkgLength - 3, MaxPkgLength} {
		if b, err := AppendPkgLength(nil, n); err == nil {
			t.Errorf("contents %d: encoded as % x, want an error", n, b)
		}
	}
}

func TestDecodePkgLengthRejectsMalformedInput(t *testing.T) {
	for _, b := range [][]byte{nil, {0x41}, {0x81, 0}, {0xc1, 0, 0}, {0x50, 0}} {
		if l, n, err := DecodePkgLength(b); err == nil {
			t.Errorf("% x decoded as length %d in %d bytes, want an error", b, l, n)
		}
	}
}

// TestBuffersAcrossPkgLengthBoundariesRoundTrip encodes buffers whose
// package length lands on each side of each boundary and reads them back.
func TestBuffersAcrossPkgLengthBoundariesRoundTrip(t *testing.T) {
	// A Buffer's contents are its size (a word constant here, 3 bytes)
	// and its bytes; pick sizes so that the package length value is
	// 63/64, 4095/4096, 1048575/1048576.
	for _, total := range []int{63, 64, 65, 4095, 4096, 4097, 1048575, 1048576, 1048577} {
		// The first buffer size whose package length reaches total.
		var data []byte
		for n := total - 8; ; n++ {
			data = make([]byte, n)
			contents := len(Int(n).AppendAml(nil)) + n
			size, _ := PkgLengthSize(contents)
			if contents+size >= total {
				break
			}
		}
		enc := Buffer(data).AppendAml(nil)
		length, size, err := DecodePkgLength(enc[1:])
		if err != nil {
			t.Fatal(err)
		}
		if length != len(enc)-1 {
			t.Errorf("buffer of %d bytes: package length %d, but %d bytes follow the opcode", len(data), length, len(enc)-1)
		}
		if want, _ := PkgLengthSize(length - size); want != size {
			t.Errorf("buffer of %d bytes: package length takes %d bytes, shortest is %d", len(data), size, want)
		}
	}
}

// pkgLengthBoundaries are the largest contents lengths for each encoding
// size.
var pkgLengthBoundaries = []int{62, 4093, 1048572, MaxPkgLength - 4}

// FuzzPkgLength checks that encoding then decoding a package length gives
// back the length, in the shortest encoding, for random sizes around the
// boundaries (boundary index and offset) and anywhere else (any).
func FuzzPkgLength(f *testing.F) {
	for i := range pkgLengthBoundaries {
		for _, d := range []int16{-2, -1, 0, 1, 2} {
			f.Add(uint8(i), d, uint32(0))
		}
	}
	f.Add(uint8(0xff), int16(0), uint32(123456))
	f.Fuzz(func(t *testing.T, boundary uint8, offset int16, anySize uint32) {
		n := int(anySize % (MaxPkgLength + 8))
		if int(boundary) < len(pkgLengthBoundaries) {
			n = pkgLengthBoundaries[boundary] + int(offset)
		}
		b, err := AppendPkgLength(nil, n)
		if n < 0 || n > MaxPkgLength-4 {
			if err == nil {
				t.Fatalf("contents %d: encoded as % x, want an error", n, b)
			}
			return
		}
		if err != nil {
			t.Fatalf("contents %d: %v", n, err)
		}
		length, size, err := DecodePkgLength(b)
		if err != nil {
			t.Fatalf("decode % x: %v", b, err)
		}
		if size != len(b) || length != n+size {
			t.Fatalf("contents %d: encoded % x, decoded length %d in %d bytes", n, b, length, size)
		}
		// Shortest: one byte fewer would not hold the value.
		limits := []int{0, maxPkgLength1, maxPkgLength2, maxPkgLength3, MaxPkgLength}
		if size > 1 && n+size-1 <= limits[size-1] {
			t.Fatalf("contents %d: %d bytes used, %d would do", n, size, size-1)
		}
	})
}
