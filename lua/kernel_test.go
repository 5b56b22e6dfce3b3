package lua

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeBzImage is a setup header with magic and kernel_version pointing to
// version (none when version is empty).
func fakeBzImage(magic, version string) []byte {
	data := make([]byte, 0x400)
	copy(data[setupHeaderMagicOffset:], magic)
	if version != "" {
		const at = 0x300
		binary.LittleEndian.PutUint16(data[kernelVersionFieldOffset:], at-kernelVersionBase)
		copy(data[at:], version+"\x00trailing")
	}
	return data
}

func TestBzImageVersion(t *testing.T) {
	for _, c := range []struct {
		name           string
		data           []byte
		release, build string
		err            string
	}{
		{"Debian's", fakeBzImage("HdrS", "6.1.0-57-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.158-1 (2025-11-09)"),
			"6.1.0-57-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.158-1 (2025-11-09)", ""},
		{"no builder", fakeBzImage("HdrS", "6.6.0 #3 SMP"), "6.6.0", "#3 SMP", ""},
		{"no header", fakeBzImage("\x7fELF", "6.6.0 #3 SMP"), "", "", "no bzImage setup header"},
		{"too short", []byte("MZ"), "", "", "no bzImage setup header"},
		{"no version string", fakeBzImage("HdrS", ""), "", "", "no version string"},
		{"not a version", fakeBzImage("HdrS", "Linux"), "", "", `kernel version "Linux"`},
	} {
		release, build, err := bzImageVersion(c.data)
		if release != c.release || build != c.build || (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: %q, %q, %v; want %q, %q, error %q", c.name, release, build, err, c.release, c.build, c.err)
		}
	}
}

func TestKernelVersionReadsTheBzImageAtPath(t *testing.T) {
	kernel := filepath.Join(t.TempDir(), "bzImage")
	if err := os.WriteFile(kernel, fakeBzImage("HdrS", "6.6.0 (me@here) #3 SMP"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, _, _ := runScript(t, `
local release, build = vmm.kernel_version("`+kernel+`")
expect.eq(release, "6.6.0")
expect.eq(build, "#3 SMP")
expect.eq(type(vmm.kernel), "string")
`)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	res, _, _ = runScript(t, "vmm.kernel_version(\""+filepath.Join(t.TempDir(), "missing")+"\")\n")
	if se := scriptErr(t, res); se.Line != 1 || !strings.Contains(se.Message, "vmm.kernel_version: ") {
		t.Errorf("error = %v, want line 1 and vmm.kernel_version's name", se)
	}
}
