package guest

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
)

// RootCmdline is DefaultCmdline for a guest whose root is its first disk
// holding the project's root file system (UnpackRootfs): the initramfs
// mounts /dev/vda read-write and switches to it (images/guest-init).
const RootCmdline = DefaultCmdline + " root=/dev/vda"

// RootfsMarker is a file that exists only on the root file system image, so
// that a guest can tell it runs from the disk rather than the initramfs.
const RootfsMarker = "/etc/vmm-rootfs"

// DistroCmdline is the distro guest's kernel command line: its root disk,
// the serial console, and systemd quiet on it so that the console shell's
// output is the commands'.
const DistroCmdline = "console=ttyS0 root=/dev/vda rw quiet systemd.show_status=0 panic=-1"

// UnpackRootfs writes a fresh, writable copy of the guest's root file
// system image (an ext4 file system, shipped gzipped; see ResolvePaths) to
// dst. Runs of zeros become holes, so the 64 MiB image takes a few.
func UnpackRootfs(dst string) error {
	return unpackImage("guest root file system", ResolvePaths().Rootfs, EnvRootfs, dst)
}

// UnpackDistroRootfs writes a fresh, writable copy of the distro guest's
// root file system (a Debian system; see ResolvePaths) to dst, sparse like
// UnpackRootfs. Boot it with Paths.DistroInitrd and DistroCmdline.
func UnpackDistroRootfs(dst string) error {
	return unpackImage("distro root file system", ResolvePaths().DistroRootfs, EnvDistroRootfs, dst)
}

// unpackImage gunzips the image src (what, set by env) to dst, sparse.
func unpackImage(what, src, env, dst string) error {
	if err := checkFile(what, src, env); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, src, err)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	n, err := copySparse(out, zr)
	if err == nil {
		err = out.Truncate(n) // a hole at the end still counts
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
		return fmt.Errorf("unpack %s %s to %s: %w", what, src, dst, err)
	}
	return nil
}

// copySparse copies r to f, seeking over blocks of zeros instead of writing
// them, and returns how many bytes it copied.
func copySparse(f *os.File, r io.Reader) (int64, error) {
	const block = 64 << 10
	buf := make([]byte, block)
	var n int64
	for {
		k, err := io.ReadFull(r, buf)
		if k > 0 {
			if isZero(buf[:k]) {
				if _, serr := f.Seek(int64(k), io.SeekCurrent); serr != nil {
					return n, serr
				}
			} else if _, werr := f.Write(buf[:k]); werr != nil {
				return n, werr
			}
			n += int64(k)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
