// Package osthread gives a goroutine an OS thread of its own for good, as
// the threads that run guest-facing work need: a vCPU, a virtio queue's
// worker. Such a thread can carry a name (ps -T, /proc/PID/task/TID/comm)
// and a seccomp filter of its own, and it ends with its goroutine.
package osthread

import (
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// LockOffMain locks the calling goroutine to an OS thread other than the
// process's main thread, without an unlock: the thread ends when the
// goroutine returns, so no other goroutine inherits its name or filter. A
// goroutine that ends while locked to the main thread does not end the
// thread (the runtime parks it for good), and the main thread's name is
// the process's name. Programs keep the main goroutine on the main thread
// (cmd/vmm locks it in init), so the retry is for embedders that do not.
func LockOffMain() {
	for range 1000 {
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			return
		}
		runtime.UnlockOSThread()
		time.Sleep(time.Millisecond) // wake up on whichever thread is free
	}
	runtime.LockOSThread()
}

// SetName names the calling OS thread (at most 15 bytes; longer names are
// cut), as ps -T and /proc/PID/task/TID/comm show it.
func SetName(name string) {
	if len(name) > 15 {
		name = name[:15]
	}
	b := append([]byte(name), 0)
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&b[0])), 0, 0, 0)
	runtime.KeepAlive(b)
}
