package guest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Environment variables that override where the binaries, the guest images
// and the scenarios are. Each has a fallback under the module root (see
// ResolvePaths).
const (
	// EnvVmmBin is the vmm binary.
	EnvVmmBin = "VMM_BIN"
	// EnvVmmctlBin is the vmmctl binary.
	EnvVmmctlBin = "VMMCTL_BIN"
	// EnvKernel is the guest kernel (a bzImage).
	EnvKernel = "VMM_GUEST_KERNEL"
	// EnvVmlinux is the same kernel as an ELF vmlinux with a PVH entry.
	EnvVmlinux = "VMM_GUEST_VMLINUX"
	// EnvInitramfs is the guest initramfs.
	EnvInitramfs = "VMM_GUEST_INITRAMFS"
	// EnvRootfs is the guest's root file system image, gzipped.
	EnvRootfs = "VMM_GUEST_ROOTFS"
	// EnvScenarios is the directory of Lua scenarios.
	EnvScenarios = "VMM_SCENARIOS"
	// EnvDistroRootfs is the distro guest's root file system image,
	// gzipped (images/debian/build.sh).
	EnvDistroRootfs = "VMM_DISTRO_ROOTFS"
	// EnvDistroInitrd is the distro guest's own initrd.
	EnvDistroInitrd = "VMM_DISTRO_INITRD"
)

// Fallback locations, relative to the module root. `make build` puts the
// binaries in .build and `make guest` the images in .cache/guest.
const (
	relVmmBin    = ".build/vmm"
	relVmmctlBin = ".build/vmmctl"
	relKernel    = ".cache/guest/bzImage"
	relVmlinux   = ".cache/guest/vmlinux"
	relInitramfs = ".cache/guest/initramfs.cpio.gz"
	relRootfs    = ".cache/guest/rootfs.ext4.gz"
	relScenarios = "scenarios"
	relDistro    = ".cache/debian/rootfs.ext4.gz"
	relDistroRD  = ".cache/debian/initrd.img"
)

// moduleName is the module path go.mod must declare for its directory to
// count as the module root.
const moduleName = "github.com/vmmdev/vmm"

// DefaultCmdline is the guest kernel command line when a configuration has
// none: the serial console the shell driver talks to, few kernel messages in
// the way of command output, and an immediate reboot on panic.
const DefaultCmdline = "console=ttyS0 quiet panic=-1"

// ReadyMarker is the line the guest's /init prints on the console just before
// it starts the root shell (images/guest-init).
const ReadyMarker = "VMM-GUEST-READY"

// Paths is where the binaries, the guest images and the scenarios are.
type Paths struct {
	// Root is the module root (the directory of the module's go.mod), or "" when
	// neither the working directory nor the executable is inside it.
	Root string
	// Vmm and Vmmctl are the binaries.
	Vmm, Vmmctl string
	// Kernel and Initramfs are the guest images.
	Kernel, Initramfs string
	// Vmlinux is Kernel as an uncompressed ELF with a PVH entry.
	Vmlinux string
	// Rootfs is the guest's root file system, a gzipped ext4 image of the
	// initramfs's tree (see UnpackRootfs).
	Rootfs string
	// Scenarios is the directory of Lua scenarios.
	Scenarios string
	// DistroRootfs and DistroInitrd are the distro guest: a Debian system
	// (gzipped ext4, see UnpackDistroRootfs) and the initrd Debian's
	// initramfs-tools made for the same kernel as Kernel.
	DistroRootfs, DistroInitrd string
}

// ResolvePaths returns the paths from the environment (VMM_BIN, VMMCTL_BIN,
// VMM_GUEST_KERNEL, VMM_GUEST_VMLINUX, VMM_GUEST_INITRAMFS, VMM_GUEST_ROOTFS, VMM_SCENARIOS,
// VMM_DISTRO_ROOTFS, VMM_DISTRO_INITRD), falling back to the
// module root found by walking up from the working directory, then from the
// executable's directory, to the module's go.mod. Without a module root a binary
// falls back to a file of that name next to the executable, then to its bare
// name (looked up in PATH when run). It reports nothing missing: users of a
// path check it when they need it.
func ResolvePaths() Paths {
	root := ""
	if wd, err := os.Getwd(); err == nil {
		root = findModuleRoot(wd)
	}
	exeDir := ""
	if exe, err := os.Executable(); err == nil {
		exeDir = filepath.Dir(exe)
		if root == "" {
			root = findModuleRoot(exeDir)
		}
	}
	p := Paths{Root: root}
	p.Vmm = resolveBinary(EnvVmmBin, root, relVmmBin, exeDir, "vmm")
	p.Vmmctl = resolveBinary(EnvVmmctlBin, root, relVmmctlBin, exeDir, "vmmctl")
	p.Kernel = resolveFile(EnvKernel, root, relKernel)
	p.Vmlinux = resolveFile(EnvVmlinux, root, relVmlinux)
	p.Initramfs = resolveFile(EnvInitramfs, root, relInitramfs)
	p.Rootfs = resolveFile(EnvRootfs, root, relRootfs)
	p.Scenarios = resolveFile(EnvScenarios, root, relScenarios)
	p.DistroRootfs = resolveFile(EnvDistroRootfs, root, relDistro)
	p.DistroInitrd = resolveFile(EnvDistroInitrd, root, relDistroRD)
	return p
}

// resolveFile is the environment's value, else rel under root, else "".
func resolveFile(env, root, rel string) string {
	if v := os.Getenv(env); v != "" {
		return v
	}
	if root == "" {
		return ""
	}
	return filepath.Join(root, rel)
}

// resolveBinary is the environment's value, else rel under root, else name
// next to the executable when such a file exists, else the bare name.
func resolveBinary(env, root, rel, exeDir, name string) string {
	if v := resolveFile(env, root, rel); v != "" {
		return v
	}
	if exeDir != "" {
		if p := filepath.Join(exeDir, name); isFile(p) {
			return p
		}
	}
	return name
}

// findModuleRoot walks up from dir to the directory whose go.mod declares
// module github.com/vmmdev/vmm; "" when there is none.
func findModuleRoot(dir string) string {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if declaresModule(filepath.Join(d, "go.mod"), moduleName) {
			return d
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// declaresModule reports whether the go.mod at path declares module name.
func declaresModule(path, name string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`) == name
		}
	}
	return false
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// checkFile returns a readable error when the file a path names is missing,
// naming the variable that sets it.
func checkFile(what, path, env string) error {
	if path == "" {
		return fmt.Errorf("%s: no path: set %s or run from inside the vmm module", what, env)
	}
	if !isFile(path) {
		return fmt.Errorf("%s %s: not a file (set %s, or build it: make guest / make build)", what, path, env)
	}
	return nil
}
