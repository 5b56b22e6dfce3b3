package memory

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vmmdev/vmm/vm/layout"
)

// Discard gives the host memory behind guest physical [gpa, gpa+n) back to
// the host, as virtio-mem's unplug and the balloon's inflate and free page
// reports do: the range stays mapped (and in its KVM memslot), and the
// guest reads zeros there until it writes again. The range must be page
// aligned and RAM throughout; it may span adjacent regions.
//
// Private memory is dropped with MADV_DONTNEED. Shared memory (a memfd
// mapped MAP_SHARED) keeps its pages in the file after that, so it is
// punched out with MADV_REMOVE first; the kernel tells the two apart
// (MADV_REMOVE fails with EINVAL on private anonymous memory).
func (g *Guest) Discard(gpa, n uint64) error {
	if n == 0 {
		return nil
	}
	if gpa%layout.PageSize != 0 || n%layout.PageSize != 0 {
		return fmt.Errorf("discard guest RAM %#x+%#x: not page aligned", gpa, n)
	}
	for n > 0 {
		s, err := g.sliceTo(gpa, n)
		if err != nil {
			return fmt.Errorf("discard guest RAM: %w", err)
		}
		if err := discard(s, gpa); err != nil {
			return err
		}
		gpa += uint64(len(s))
		n -= uint64(len(s))
	}
	return nil
}

// DiscardHost is Discard for host bytes of guest RAM the caller already
// holds (a virtio buffer): s must be page aligned, start and length.
func DiscardHost(s []byte) error {
	if len(s) == 0 {
		return nil
	}
	if uintptr(unsafe.Pointer(&s[0]))%layout.PageSize != 0 || len(s)%layout.PageSize != 0 {
		return fmt.Errorf("discard guest RAM: %d bytes at %p: not page aligned", len(s), &s[0])
	}
	return discard(s, 0)
}

// discard drops the host pages of s, guest RAM at gpa (0 when unknown).
func discard(s []byte, gpa uint64) error {
	n := len(s)
	if err := unix.Madvise(s, unix.MADV_REMOVE); err == nil {
		return nil
	} else if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("discard guest RAM %#x+%#x: madvise(MADV_REMOVE): %w", gpa, n, err)
	}
	if err := unix.Madvise(s, unix.MADV_DONTNEED); err != nil {
		return fmt.Errorf("discard guest RAM %#x+%#x: madvise(MADV_DONTNEED): %w", gpa, n, err)
	}
	return nil
}
