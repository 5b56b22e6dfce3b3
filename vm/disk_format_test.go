package vm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmmdev/vmm/vm/config"
)

func TestCheckImageFormatDetectsWhatUnknownMeans(t *testing.T) {
	dir := t.TempDir()
	qcow := filepath.Join(dir, "a.qcow2")
	raw := filepath.Join(dir, "a.raw")
	if err := os.WriteFile(qcow, append([]byte("QFI\xfb"), make([]byte, 508)...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(raw, make([]byte, 512), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		disk config.Disk
		want string
	}{
		{config.Disk{Path: raw}, ""},
		{config.Disk{Path: raw, ImageType: config.ImageUnknown}, ""},
		{config.Disk{Path: qcow, ImageType: config.ImageUnknown}, `disks[0].image_type="Unknown": ` + qcow + " is a Qcow2 image"},
		{config.Disk{Path: qcow, ImageType: config.ImageRaw}, ""}, // read as raw, as asked
	} {
		err := checkImageFormat(0, c.disk)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.disk, err, c.want)
		}
	}
}
