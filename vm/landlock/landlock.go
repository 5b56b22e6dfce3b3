// Package landlock confines the whole vmm process with Landlock, as Cloud
// Hypervisor's --landlock does: once applied, the process can reach the
// file system only beneath the paths of its rules, with the rights each
// rule gives. Files it opened before stay usable.
//
// Landlock confines the thread that asks and the threads it creates later;
// a Go program's goroutines run on threads that exist already, so Restrict
// applies the ruleset on every thread (syscall.AllThreadsSyscall, which
// needs a program built without cgo).
package landlock

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Access is a set of LANDLOCK_ACCESS_FS_* rights.
type Access uint64

// The rights by ABI version: version 1's, REFER from version 2, TRUNCATE
// from version 3. vmm handles up to version 3's, as Cloud Hypervisor does;
// device ioctls (version 5) stay unrestricted.
const (
	readAccess = Access(unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_READ_DIR)
	abi1       = readAccess | Access(unix.LANDLOCK_ACCESS_FS_WRITE_FILE|
		unix.LANDLOCK_ACCESS_FS_REMOVE_DIR|unix.LANDLOCK_ACCESS_FS_REMOVE_FILE|
		unix.LANDLOCK_ACCESS_FS_MAKE_CHAR|unix.LANDLOCK_ACCESS_FS_MAKE_DIR|unix.LANDLOCK_ACCESS_FS_MAKE_REG|
		unix.LANDLOCK_ACCESS_FS_MAKE_SOCK|unix.LANDLOCK_ACCESS_FS_MAKE_FIFO|unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK|
		unix.LANDLOCK_ACCESS_FS_MAKE_SYM)
	abi2 = abi1 | Access(unix.LANDLOCK_ACCESS_FS_REFER)
	abi3 = abi2 | Access(unix.LANDLOCK_ACCESS_FS_TRUNCATE)

	// fileAccess are the rights that apply to a file (not a directory).
	fileAccess = Access(unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE |
		unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_TRUNCATE)
)

// Read and Write are "r" and "w" of a rule's access, as Cloud
// Hypervisor's: reading (and executing) files and listing directories;
// writing, truncating, creating, removing and linking beneath.
const (
	Read  = readAccess
	Write = abi3 &^ readAccess
	// MakeSocket and RemoveFile are the rights on a directory where the
	// VMM removes and binds a unix socket again on each boot.
	MakeSocket = Access(unix.LANDLOCK_ACCESS_FS_MAKE_SOCK)
	RemoveFile = Access(unix.LANDLOCK_ACCESS_FS_REMOVE_FILE)
)

// ParseAccess reads a rule's access: "r", "w" or "rw" (any non-empty mix
// of r and w, as Cloud Hypervisor's).
func ParseAccess(s string) (Access, error) {
	if s == "" {
		return 0, errors.New("access cannot be empty")
	}
	var a Access
	for _, c := range s {
		switch c {
		case 'r':
			a |= Read
		case 'w':
			a |= Write
		default:
			return 0, fmt.Errorf("invalid access: %c", c)
		}
	}
	return a, nil
}

// Rule lets the process reach Path (a file, or a directory and everything
// beneath it) with Access.
type Rule struct {
	Path   string
	Access Access
}

// ABI is the kernel's Landlock ABI version, or an error saying why there
// is none (a kernel without Landlock, or with it off in its lsm= list).
func ABI() (int, error) {
	v, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	switch errno {
	case 0:
		return int(v), nil
	case unix.ENOSYS:
		return 0, errors.New("landlock: this kernel has no Landlock (CONFIG_SECURITY_LANDLOCK)")
	case unix.EOPNOTSUPP:
		return 0, errors.New("landlock: Landlock is off on this host (add landlock to the kernel's lsm= parameter)")
	}
	return 0, fmt.Errorf("landlock: ABI version: %w", errno)
}

// handled are the rights a ruleset handles on a kernel of ABI version abi.
func handled(abi int) Access {
	switch {
	case abi >= 3:
		return abi3
	case abi == 2:
		return abi2
	}
	return abi1
}

// Check reports whether the kernel can confine the process.
func Check() error {
	_, err := ABI()
	return err
}

// Restrict confines every thread of the process, and the threads created
// later, to rules. It fails, confining nothing, when the kernel has no
// Landlock or a rule's path cannot be opened.
func Restrict(rules []Rule) error {
	abi, err := ABI()
	if err != nil {
		return err
	}
	mask := handled(abi)
	// struct landlock_ruleset_attr up to handled_access_fs, the part of
	// ABI version 1; the kernel takes a shorter struct than its own.
	attr := struct{ handledAccessFS uint64 }{uint64(mask)}
	fd, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr), 0)
	if errno != 0 {
		return fmt.Errorf("landlock: create the ruleset: %w", errno)
	}
	defer unix.Close(int(fd))
	for _, r := range rules {
		if err := addRule(int(fd), r, mask); err != nil {
			return err
		}
	}
	// Every thread needs no_new_privs (or CAP_SYS_ADMIN) to restrict
	// itself; the results must agree on every thread.
	if _, _, errno := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); errno != 0 {
		if errno == unix.ENOTSUP {
			return errors.New("landlock: this vmm is built with cgo, where Go cannot confine every thread: build it with CGO_ENABLED=0")
		}
		return fmt.Errorf("landlock: PR_SET_NO_NEW_PRIVS on every thread: %w", errno)
	}
	if _, _, errno := syscall.AllThreadsSyscall(unix.SYS_LANDLOCK_RESTRICT_SELF, fd, 0, 0); errno != 0 {
		return fmt.Errorf("landlock: restrict every thread: %w", errno)
	}
	return nil
}

// addRule adds r to the ruleset fd, with the rights the kernel handles
// and, for a file, those that apply to files.
func addRule(rulesetFD int, r Rule, mask Access) error {
	pfd, err := unix.Open(r.Path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("landlock: rule for %s: %w", r.Path, err)
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return fmt.Errorf("landlock: rule for %s: %w", r.Path, err)
	}
	access := r.Access & mask
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		access &= fileAccess
	}
	if access == 0 {
		return nil
	}
	attr := unix.LandlockPathBeneathAttr{Allowed_access: uint64(access), Parent_fd: int32(pfd)}
	_, _, errno := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(rulesetFD), unix.LANDLOCK_RULE_PATH_BENEATH,
		uintptr(unsafe.Pointer(&attr)), 0, 0, 0)
	if errno != 0 {
		return fmt.Errorf("landlock: rule for %s: %w", r.Path, errno)
	}
	return nil
}
