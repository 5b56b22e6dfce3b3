package virtio

import (
	"strings"

	"github.com/vmmdev/vmm/vm/osthread"
)

// workerPrefix starts every worker thread's name.
const workerPrefix = "vq-"

// WorkerThreadName is the name of a worker thread of a device of the given
// kind ("virtio-net"): "vq-net-q1" serves queue 1, "vq-net-rx" moves
// received frames in; ps -T and /proc/PID/task/TID/comm show it, cut to
// 15 bytes.
func WorkerThreadName(kind, what string) string {
	return workerPrefix + strings.TrimPrefix(kind, "virtio-") + "-" + what
}

// IsWorkerThread reports whether a thread's name is a WorkerThreadName.
func IsWorkerThread(name string) bool { return strings.HasPrefix(name, workerPrefix) }

// goThread runs run on a new goroutine that keeps an OS thread for good,
// named name: it runs setup (when not nil) there first and returns its
// error; run runs only when setup succeeded. The thread ends with run.
func goThread(name string, setup func() error, run func()) error {
	errc := make(chan error, 1)
	go func() {
		osthread.LockOffMain()
		osthread.SetName(name)
		if setup != nil {
			if err := setup(); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
		run()
	}()
	return <-errc
}
