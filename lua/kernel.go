package lua

import (
	"encoding/binary"
	"fmt"
	"os"
	"strings"

	glua "github.com/yuin/gopher-lua"

	"github.com/vmmdev/vmm/guest"
)

// vmm.kernel_version([path]) -> release, build: the version string the
// setup header of the bzImage at path (default the project's guest
// kernel, vmm.kernel) names, split as uname -r and uname -v show it.
func luaKernelVersion(L *glua.LState) int {
	path := L.OptString(1, guest.ResolvePaths().Kernel)
	data, err := os.ReadFile(path)
	if err == nil {
		var release, build string
		if release, build, err = bzImageVersion(data); err == nil {
			L.Push(glua.LString(release))
			L.Push(glua.LString(build))
			return 2
		}
	}
	L.RaiseError("vmm.kernel_version: %s: %v", path, err)
	return 0
}

// Where a bzImage's setup header keeps its magic and the pointer to its
// kernel version string (Documentation/arch/x86/boot.rst).
const (
	setupHeaderMagicOffset   = 0x202
	setupHeaderMagic         = "HdrS"
	kernelVersionFieldOffset = 0x20e
	// kernel_version is an offset from the start of the setup sectors'
	// second half, 0x200.
	kernelVersionBase = 0x200
	// maxKernelVersion bounds the string.
	maxKernelVersion = 512
)

// bzImageVersion reads the kernel version string a bzImage's setup header
// points to (kernel_version, "6.1.0-57-amd64 (builder@host) #1 SMP ...")
// and splits it as uname does: the release ("6.1.0-57-amd64") and the
// build ("#1 SMP PREEMPT_DYNAMIC Debian ..."), without the builder's
// "(user@host)" between them.
func bzImageVersion(data []byte) (release, build string, err error) {
	if len(data) < kernelVersionFieldOffset+2 || string(data[setupHeaderMagicOffset:setupHeaderMagicOffset+4]) != setupHeaderMagic {
		return "", "", fmt.Errorf("no bzImage setup header (%q at %#x)", setupHeaderMagic, setupHeaderMagicOffset)
	}
	ptr := int(binary.LittleEndian.Uint16(data[kernelVersionFieldOffset:]))
	off := kernelVersionBase + ptr
	if ptr == 0 || off >= len(data) {
		return "", "", fmt.Errorf("kernel_version %#x: no version string in the image", ptr)
	}
	s, _, _ := strings.Cut(string(data[off:min(off+maxKernelVersion, len(data))]), "\x00")
	release, rest, _ := strings.Cut(s, " ")
	if strings.HasPrefix(rest, "(") {
		if i := strings.Index(rest, ") "); i >= 0 {
			rest = rest[i+2:]
		}
	}
	if release == "" || !strings.HasPrefix(rest, "#") {
		return "", "", fmt.Errorf("kernel version %q: want RELEASE [(BUILDER)] #BUILD", s)
	}
	return release, rest, nil
}
