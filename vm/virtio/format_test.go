package virtio

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestDetectFormatReadsTheMagicNumbers(t *testing.T) {
	dir := t.TempDir()
	vhd := make([]byte, 4096)
	copy(vhd[4096-512:], "conectix")
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"raw zeros", make([]byte, 4096), FormatRaw},
		{"raw ext4", append(bytes.Repeat([]byte{0}, 1080), 0x53, 0xef), FormatRaw},
		{"qcow2", append([]byte("QFI\xfb\x00\x00\x00\x03"), make([]byte, 100)...), FormatQcow2},
		{"vhdx", append([]byte("vhdxfile"), make([]byte, 100)...), FormatVhdx},
		{"fixed vhd", vhd, FormatFixedVhd},
		{"sparse vmdk", append([]byte("KDMV"), make([]byte, 100)...), FormatVmdk},
		{"vmdk descriptor", []byte("# Disk DescriptorFile\nversion=1\n"), FormatVmdk},
		{"tiny", []byte("x"), FormatRaw},
	} {
		p := filepath.Join(dir, c.name)
		if err := os.WriteFile(p, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := DetectFormat(p); err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
	if _, err := DetectFormat(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing image detected")
	}
}

// TestBlockDirectReadsAndWritesThroughTheAlignedBufferWithFakeDriver runs
// a read, a write and a request larger than the bounce buffer on an image
// opened with O_DIRECT.
func TestBlockDirectReadsAndWritesThroughTheAlignedBufferWithFakeDriver(t *testing.T) {
	sectors := 2*directBounceSize/SectorSize + 8
	path := newTestImage(t, sectors)
	b, err := OpenBlock(BlockConfig{Path: path, Direct: true})
	if err != nil {
		t.Skipf("no O_DIRECT on this file system: %v", err)
	}
	if !b.Direct() {
		t.Fatal("not direct")
	}
	d := newFakeDriver(t, b)
	d.start(blkFeatures, 1, 16)
	st, _, in := blkDo(t, d, blkRequest{typ: blkTIn, sector: 5, in: 2 * SectorSize})
	if st != blkSOK || !bytes.Equal(in, append(bytes.Repeat([]byte{5}, SectorSize), bytes.Repeat([]byte{6}, SectorSize)...)) {
		t.Fatalf("direct read: status %d", st)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), (directBounceSize+3*SectorSize)/16)
	if st, _, _ := blkDo(t, d, blkRequest{typ: blkTOut, sector: 1, data: big}); st != blkSOK {
		t.Fatalf("direct write of %d bytes: status %d", len(big), st)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[SectorSize:SectorSize+len(big)], big) || got[0] != 0 {
		t.Error("the image does not hold what the guest wrote")
	}
	st, _, in = blkDo(t, d, blkRequest{typ: blkTIn, sector: 1, in: uint32(len(big))})
	if st != blkSOK || !bytes.Equal(in, big) {
		t.Errorf("direct read back: status %d, equal %v", st, bytes.Equal(in, big))
	}
}
