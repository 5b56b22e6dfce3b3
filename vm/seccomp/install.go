package seccomp

import (
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// InstallProcess installs the process filter on every thread of the
// process (SECCOMP_FILTER_FLAG_TSYNC); threads created later inherit it.
// It must come before any thread installs a filter of its own. With Off it
// does nothing.
func InstallProcess(mode Mode) error {
	if mode == Off || mode == "" {
		return nil
	}
	return install(Process, mode, unix.SECCOMP_FILTER_FLAG_TSYNC)
}

// InstallThread stacks kind's filter on the calling thread, which the
// calling goroutine must keep for good (runtime.LockOSThread without an
// unlock): on any other thread the filter would end up under whichever
// goroutine runs there next. With Off it does nothing.
func InstallThread(kind Kind, mode Mode) error {
	if mode == Off || mode == "" {
		return nil
	}
	return install(kind, mode, 0)
}

// prepare does, before a filter without openat goes on, the lazy work of
// the standard library that opens files on whichever goroutine needs it
// first: loading the local time zone (/etc/localtime, TZ), which the first
// log line's time stamp does, and that may be a vCPU thread's.
func prepare() { _ = time.Local.String() }

func install(kind Kind, mode Mode, flags uintptr) error {
	prepare()
	if runtime.GOARCH != "amd64" {
		return fmt.Errorf("seccomp: filters are for x86-64, not %s", runtime.GOARCH)
	}
	f, ok := Lookup(kind)
	if !ok {
		return fmt.Errorf("seccomp: no filter for %q threads", kind)
	}
	prog, err := Program(f, mode)
	if err != nil {
		return err
	}
	// Without CAP_SYS_ADMIN a filter needs no_new_privs; with TSYNC the
	// kernel sets it on the other threads too.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("seccomp: PR_SET_NO_NEW_PRIVS: %w", err)
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if errno != 0 {
		return fmt.Errorf("seccomp: install the %s filter: %w", kind, errno)
	}
	if r != 0 {
		// TSYNC reports a thread it could not synchronise by its id.
		return fmt.Errorf("seccomp: install the %s filter: thread %d has a filter of its own", kind, r)
	}
	return nil
}
