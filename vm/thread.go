package vm

import (
	"fmt"
	"runtime"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// kickSignal interrupts a vCPU thread in KVM_RUN. Go's runtime already
// handles SIGURG (it preempts goroutines with it) and ignores stray ones,
// so it needs no handler of ours and KVM_RUN sees it as EINTR.
const kickSignal = unix.SIGURG

// lockOffMainThread locks the calling goroutine to an OS thread other than
// the process's main thread. A goroutine that ends while locked to the main
// thread does not end the thread (the runtime parks it for good), and the
// main thread's name is the process's name: neither may become a vCPU's.
// Programs keep the main goroutine on the main thread (cmd/vmm locks it in
// init), so the retry is for embedders that do not.
func lockOffMainThread() {
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

// VCPUThreadName is the name of plugged vCPU id's OS thread, as ps -T and
// /proc/PID/task/TID/comm show it: vcpuN. A hot-unplugged vCPU's thread is
// named otherwise while it is parked, so that the threads so named are
// exactly the plugged vCPUs.
func VCPUThreadName(id int) string { return fmt.Sprintf("vcpu%d", id) }

// IsVCPUThread reports whether name is a VCPUThreadName.
func IsVCPUThread(name string) bool {
	n, ok := strings.CutPrefix(name, "vcpu")
	return ok && n != "" && strings.Trim(n, "0123456789") == ""
}

// setThreadName names the calling OS thread (at most 15 bytes), as ps -T
// and /proc/PID/task/TID/comm show it.
func setThreadName(name string) {
	b := append([]byte(name), 0)
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&b[0])), 0, 0, 0)
	runtime.KeepAlive(b)
}
