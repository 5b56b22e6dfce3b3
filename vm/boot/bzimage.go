// Package boot loads what a VM boots, recognised from its bytes
// (ParseImage): a Linux bzImage through the 64-bit boot protocol
// (Documentation/arch/x86/boot.rst), or an ELF image with a PVH entry (an
// uncompressed vmlinux, or a PVH firmware) through the PVH boot protocol
// (Xen's docs/misc/pvh.pandoc). It places the image, initramfs and command
// line in guest memory, builds what the protocol hands over (the zero page
// with its e820 map, the boot page tables and GDT; or hvm_start_info with
// its memory map and a 32-bit GDT), and computes the boot vCPU's registers
// (Entry).
package boot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrNotBzImage means the kernel file is not a bzImage this loader can boot.
var ErrNotBzImage = errors.New("not a bzImage")

// Setup header fields, as offsets in the bzImage file and in the zero page
// (boot.rst, "THE REAL-MODE KERNEL HEADER").
const (
	hdrSetupSects      = 0x1f1
	hdrBootFlag        = 0x1fe
	hdrJump            = 0x200
	hdrMagic           = 0x202
	hdrVersion         = 0x206
	hdrTypeOfLoader    = 0x210
	hdrLoadFlags       = 0x211
	hdrRamdiskImage    = 0x218
	hdrRamdiskSize     = 0x21c
	hdrCmdLinePtr      = 0x228
	hdrInitrdAddrMax   = 0x22c
	hdrKernelAlignment = 0x230
	hdrRelocatable     = 0x234
	hdrXLoadFlags      = 0x236
	hdrCmdlineSize     = 0x238
	hdrPrefAddress     = 0x258
	hdrInitSize        = 0x260
	// hdrLimit is where struct setup_header's space in boot_params ends.
	hdrLimit = 0x290
)

// Header values.
const (
	bootFlag   = 0xaa55
	magicHdrS  = 0x53726448 // "HdrS"
	loaderAny  = 0xff       // type_of_loader: a boot loader without an assigned id
	minVersion = 0x020c     // 2.12: xloadflags and the 64-bit entry
	// xlfKernel64 (XLF_KERNEL_64): the kernel has the 64-bit entry at +0x200.
	xlfKernel64 = 1 << 0
	// defaultCmdlineSize is the limit before protocol 2.06 gave cmdline_size.
	defaultCmdlineSize = 255
)

// BzImage is a parsed bzImage.
type BzImage struct {
	// Version is the boot protocol version (0x020f is 2.15).
	Version uint16
	// SetupHeader is the setup header as in the file, from 0x1f1 to its end;
	// it is copied into the zero page.
	SetupHeader []byte
	// Payload is the protected-mode kernel, loaded at layout.KernelStart: a
	// part of the file, read as it is loaded.
	Payload *io.SectionReader
	// InitrdAddrMax is the highest address the initramfs may occupy.
	InitrdAddrMax uint32
	// CmdlineSize is the longest command line, without its NUL.
	CmdlineSize uint32
	// Relocatable says the kernel may run at another address than it was
	// compiled for; PrefAddress is where it prefers to run and InitSize how
	// much memory from there it needs while it decompresses itself.
	Relocatable bool
	PrefAddress uint64
	InitSize    uint32
}

// ParseBzImage checks that src is a bzImage with the 64-bit entry point and
// reads its setup header; the protected-mode kernel stays in src.
func ParseBzImage(src *io.SectionReader) (*BzImage, error) {
	if src.Size() < hdrInitSize+4 {
		return nil, fmt.Errorf("%w: %d bytes is too short for a kernel", ErrNotBzImage, src.Size())
	}
	data, err := readHead(src, hdrLimit)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotBzImage, err)
	}
	le := binary.LittleEndian
	if le.Uint16(data[hdrBootFlag:]) != bootFlag || le.Uint32(data[hdrMagic:]) != magicHdrS {
		return nil, fmt.Errorf("%w: no boot sector signature and \"HdrS\" header", ErrNotBzImage)
	}
	k := &BzImage{Version: le.Uint16(data[hdrVersion:])}
	if k.Version < minVersion {
		return nil, fmt.Errorf("%w: boot protocol %d.%02d is older than 2.12", ErrNotBzImage, k.Version>>8, k.Version&0xff)
	}
	if le.Uint16(data[hdrXLoadFlags:])&xlfKernel64 == 0 {
		return nil, fmt.Errorf("%w: the kernel has no 64-bit entry point (XLF_KERNEL_64)", ErrNotBzImage)
	}
	end := hdrMagic + int(data[hdrJump+1])
	if data[hdrJump] != 0xeb || end > len(data) || end < hdrInitSize+4 {
		return nil, fmt.Errorf("%w: setup header of unexpected length", ErrNotBzImage)
	}
	k.SetupHeader = data[hdrSetupSects:end]
	setupSects := int64(data[hdrSetupSects])
	if setupSects == 0 {
		setupSects = 4
	}
	off := (setupSects + 1) * 512
	if off >= src.Size() {
		return nil, fmt.Errorf("%w: %d setup sectors but only %d bytes", ErrNotBzImage, setupSects, src.Size())
	}
	k.Payload = io.NewSectionReader(src, off, src.Size()-off)
	k.InitrdAddrMax = le.Uint32(data[hdrInitrdAddrMax:])
	k.CmdlineSize = le.Uint32(data[hdrCmdlineSize:])
	if k.CmdlineSize == 0 {
		k.CmdlineSize = defaultCmdlineSize
	}
	k.Relocatable = data[hdrRelocatable] != 0
	k.PrefAddress = le.Uint64(data[hdrPrefAddress:])
	k.InitSize = le.Uint32(data[hdrInitSize:])
	return k, nil
}
