package vm

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// kickSignal interrupts a vCPU thread in KVM_RUN. Go's runtime already
// handles SIGURG (it preempts goroutines with it) and ignores stray ones,
// so it needs no handler of ours and KVM_RUN sees it as EINTR.
const kickSignal = unix.SIGURG

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
