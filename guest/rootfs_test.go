package guest

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUnpackRootfsRestoresTheImageWithHolesAndTrailingZeros(t *testing.T) {
	dir := t.TempDir()
	img := make([]byte, 1<<20)
	copy(img, "superblock")
	copy(img[300<<10:], "inode table")
	// The last 200 KiB are zeros: the copy must still be 1 MiB long.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(img)
	zw.Close()
	src := filepath.Join(dir, "rootfs.ext4.gz")
	if err := os.WriteFile(src, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvRootfs, src)
	dst := filepath.Join(dir, "root.img")
	if err := UnpackRootfs(dst); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, img) {
		t.Fatalf("unpacked %d bytes that differ from the %d-byte image", len(got), len(img))
	}
}

func TestUnpackRootfsNamesTheVariableWhenTheImageIsMissing(t *testing.T) {
	t.Setenv(EnvRootfs, filepath.Join(t.TempDir(), "nope.gz"))
	err := UnpackRootfs(filepath.Join(t.TempDir(), "root.img"))
	if err == nil || !strings.Contains(err.Error(), EnvRootfs) {
		t.Fatalf("err = %v, want one naming %s", err, EnvRootfs)
	}
}
