package osthread

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkWakeOfABlockedThread measures what waking a locked thread
// blocked in read(2) costs the process in context switches, as a virtio
// queue's worker is woken by each guest notification (an ioeventfd): the
// kernel wakes the thread, here with a periodic timerfd, so no Go thread
// does the waking. worker-csw/wake is the woken thread's own switch (1);
// runtime-csw/wake is every other thread's, the Go runtime's: sysmon,
// which the thread leaving its syscall wakes from its deep sleep and which
// then retakes the thread's P when it blocks again. Under emulation each
// of those switches can preempt a vCPU.
func BenchmarkWakeOfABlockedThread(b *testing.B) {
	for _, period := range []time.Duration{200 * time.Microsecond, time.Millisecond} {
		b.Run(fmt.Sprint("every=", period), func(b *testing.B) {
			benchmarkWake(b, period)
		})
	}
}

func benchmarkWake(b *testing.B, period time.Duration) {
	timer, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(timer)
	every := unix.NsecToTimespec(period.Nanoseconds())
	type result struct {
		tid   int
		wakes int
		err   error
	}
	start, got := make(chan int), make(chan result)
	go func() {
		LockOffMain()
		tid := unix.Gettid()
		var buf [8]byte
		for n := range start {
			r := result{tid: tid}
			for r.wakes < n && r.err == nil {
				_, r.err = unix.Read(timer, buf[:])
				r.wakes++
			}
			got <- r
		}
	}()
	defer close(start)
	if err := unix.TimerfdSettime(timer, 0, &unix.ItimerSpec{Interval: every, Value: every}, nil); err != nil {
		b.Fatal(err)
	}
	before := switches(b)
	b.ResetTimer()
	start <- b.N
	r := <-got
	b.StopTimer()
	if r.err != nil {
		b.Fatal(r.err)
	}
	after := switches(b)
	var others uint64
	for tid, n := range after {
		if tid != r.tid {
			others += n - before[tid]
		}
	}
	b.ReportMetric(float64(after[r.tid]-before[r.tid])/float64(r.wakes), "worker-csw/wake")
	b.ReportMetric(float64(others)/float64(r.wakes), "runtime-csw/wake")
}

// switches reads every thread's voluntary context switches.
func switches(b *testing.B) map[int]uint64 {
	b.Helper()
	tasks, err := filepath.Glob("/proc/self/task/*")
	if err != nil {
		b.Fatal(err)
	}
	n := map[int]uint64{}
	for _, t := range tasks {
		tid, err := strconv.Atoi(filepath.Base(t))
		if err != nil {
			continue
		}
		s, err := os.ReadFile(filepath.Join(t, "status"))
		if err != nil {
			continue // ended meanwhile
		}
		for _, line := range strings.Split(string(s), "\n") {
			if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
				n[tid], _ = strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			}
		}
	}
	return n
}
