package boot

import (
	"encoding/binary"
	"errors"
	"fmt"
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
// bzImage (ParseBzImage); anything else is ErrUnknownImage.
func ParseImage(data []byte) (Image, error) {
	if len(data) >= len(elfMagic) && string(data[:len(elfMagic)]) == elfMagic {
		e, err := ParseELF(data)
		if err != nil {
			return Image{}, err
		}
		return Image{ELF: e}, nil
	}
	le := binary.LittleEndian
	if len(data) >= hdrMagic+4 && le.Uint16(data[hdrBootFlag:]) == bootFlag && le.Uint32(data[hdrMagic:]) == magicHdrS {
		k, err := ParseBzImage(data)
		if err != nil {
			return Image{}, err
		}
		return Image{BzImage: k}, nil
	}
	return Image{}, fmt.Errorf("%w: neither the ELF magic nor a bzImage's boot sector signature and \"HdrS\" header", ErrUnknownImage)
}
