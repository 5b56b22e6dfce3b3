package boot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrUnknownImage means a kernel or firmware file is neither an ELF image
// nor a bzImage.
var ErrUnknownImage = errors.New("not a bzImage or an ELF vmlinux")

// Image is a kernel or firmware image, recognised from its bytes: exactly
// one of its fields is set.
type Image struct {
	// BzImage is a bzImage, booted through the 64-bit boot protocol.
	BzImage *BzImage
	// ELF is an ELF image with a PVH entry (an uncompressed vmlinux or a
	// PVH firmware), booted through the PVH boot protocol.
	ELF *ELF
}

// Kind names the image's format for messages: "bzImage" or "PVH ELF".
func (i Image) Kind() string {
	switch {
	case i.ELF != nil:
		return "PVH ELF"
	case i.BzImage != nil:
		return "bzImage"
	}
	return "no image"
}

// ParseImage recognises a kernel or firmware image by its first bytes, not
// its name: the ELF magic makes it an ELF image that must have a PVH entry
// (ParseELF), a boot sector signature with the "HdrS" setup header a
// bzImage (ParseBzImage); anything else is ErrUnknownImage. It reads the
// headers only: what the image loads stays in src, read by Load, so a
// kernel never sits in the VMM's heap.
func ParseImage(src *io.SectionReader) (Image, error) {
	head, err := readHead(src, hdrLimit)
	if err != nil {
		return Image{}, err
	}
	if len(head) >= len(elfMagic) && string(head[:len(elfMagic)]) == elfMagic {
		e, err := ParseELF(src)
		if err != nil {
			return Image{}, err
		}
		return Image{ELF: e}, nil
	}
	le := binary.LittleEndian
	if len(head) >= hdrMagic+4 && le.Uint16(head[hdrBootFlag:]) == bootFlag && le.Uint32(head[hdrMagic:]) == magicHdrS {
		k, err := ParseBzImage(src)
		if err != nil {
			return Image{}, err
		}
		return Image{BzImage: k}, nil
	}
	return Image{}, fmt.Errorf("%w: neither the ELF magic nor a bzImage's boot sector signature and \"HdrS\" header", ErrUnknownImage)
}

// FromBytes serves b as a file's bytes, for images built in memory (tests,
// generated firmware).
func FromBytes(b []byte) *io.SectionReader {
	return io.NewSectionReader(bytes.NewReader(b), 0, int64(len(b)))
}

// readHead reads the first n bytes of src, or all of a shorter one.
func readHead(src *io.SectionReader, n int64) ([]byte, error) {
	return readAt(src, 0, min(n, src.Size()))
}

// readAt reads n bytes of src at off, which the caller has checked lie in
// it: a short read is an error.
func readAt(src *io.SectionReader, off, n int64) ([]byte, error) {
	b := make([]byte, n)
	if k, err := src.ReadAt(b, off); k < len(b) {
		return nil, fmt.Errorf("read %d bytes at file offset %#x: %w", n, off, err)
	}
	return b, nil
}

// copyIn reads all of src (nothing for a nil one) into guest memory at
// gpa, straight into the guest's pages.
func copyIn(mem Memory, src *io.SectionReader, gpa uint64) error {
	n := sizeOf(src)
	if n == 0 {
		return nil
	}
	dst, err := mem.Slice(gpa, n)
	if err != nil {
		return err
	}
	if k, err := src.ReadAt(dst, 0); uint64(k) < n {
		return fmt.Errorf("read %d bytes into guest memory at %#x: %w", n, gpa, err)
	}
	return nil
}

// sizeOf is src's size in bytes; a nil src has none.
func sizeOf(src *io.SectionReader) uint64 {
	if src == nil {
		return 0
	}
	return uint64(src.Size())
}
