package virtio

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// Disk image formats vmm recognises by their bytes, named as Cloud
// Hypervisor's image_type values; vmm reads raw images only.
const (
	FormatRaw      = "Raw"
	FormatQcow2    = "Qcow2"
	FormatVhdx     = "Vhdx"
	FormatFixedVhd = "FixedVhd"
	FormatVmdk     = "FlatVmdk"
)

// Magic numbers (QEMU's docs/interop/qcow2.txt; Microsoft's VHDX and VHD
// specifications; VMware's Virtual Disk Format 5.0).
var (
	magicQcow2      = []byte("QFI\xfb")
	magicVhdx       = []byte("vhdxfile")
	magicVhdFooter  = []byte("conectix")
	magicVmdk       = []byte("KDMV")
	magicVmdkDescr  = []byte("# Disk DescriptorFile")
	vhdFooterLength = int64(512)
)

// DetectFormat reads the image at path and names its format: FormatRaw
// unless its first bytes (or, for a fixed VHD, its last 512) carry another
// format's magic number. What cannot be read is an error naming the path.
func DetectFormat(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 64)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return "", fmt.Errorf("disk %s: %w", path, err)
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, magicQcow2):
		return FormatQcow2, nil
	case bytes.HasPrefix(head, magicVhdx):
		return FormatVhdx, nil
	case bytes.HasPrefix(head, magicVmdk), bytes.HasPrefix(head, magicVmdkDescr):
		return FormatVmdk, nil
	}
	if size, err := f.Seek(0, io.SeekEnd); err == nil && size >= vhdFooterLength {
		foot := make([]byte, len(magicVhdFooter))
		if _, err := f.ReadAt(foot, size-vhdFooterLength); err == nil && bytes.Equal(foot, magicVhdFooter) {
			return FormatFixedVhd, nil
		}
	}
	return FormatRaw, nil
}
