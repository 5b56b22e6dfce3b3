package seccomp

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// childEnv makes the test binary run childMain instead of the tests: the
// filters are installed in a child process, never in the test's.
const childEnv = "VMM_SECCOMP_TEST_CHILD"

func TestMain(m *testing.M) {
	if what := os.Getenv(childEnv); what != "" {
		os.Exit(childMain(what))
	}
	os.Exit(m.Run())
}

// childMain installs filters and makes the call what names: it exits 0 if
// the process lives through it.
func childMain(what string) int {
	mode, action, _ := strings.Cut(what, ":")
	// Threads running goroutines before the filter, to be synchronised.
	for range 4 {
		go func() { time.Sleep(time.Hour) }()
	}
	runtime.LockOSThread()
	if err := InstallProcess(Mode(mode)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	switch action {
	case "status":
		// Every thread, and one started after the filter, shows it.
		done := make(chan struct{})
		go func() {
			runtime.LockOSThread() // a new thread for sure
			<-done
		}()
		time.Sleep(50 * time.Millisecond)
		defer close(done)
		if err := allThreadsFiltered(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 4
		}
	case "churn": // the Go runtime at work: heap growth, GC, new threads, timers
		churn()
	case "vcpu-churn": // the same on a thread with the vCPU filter
		if err := InstallThread(VCPU, Mode(mode)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		churn()
	case "vcpu-log": // the first log line, with its local time, on a vCPU thread
		if err := InstallThread(VCPU, Mode(mode)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		slog.New(slog.NewTextHandler(io.Discard, nil)).Info("first KVM_RUN")
		fmt.Fprintln(io.Discard, time.Now().Format(time.RFC3339))
	case "getuid": // outside the process filter
		unix.Getuid()
	case "vcpu-open": // in the process filter, outside the vCPU's
		if err := InstallThread(VCPU, Mode(mode)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		f, err := os.Open("/")
		if err == nil {
			f.Close()
		}
	case "vcpu-other-thread": // a vCPU filter leaves the other threads alone
		if err := InstallThread(VCPU, Mode(mode)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		errc := make(chan error)
		go func() {
			f, err := os.Open("/")
			if err == nil {
				f.Close()
			}
			errc <- err
		}()
		if err := <-errc; err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 4
		}
	}
	return 0
}

// sink keeps churn's allocations reachable.
var sink [][]byte

// churn makes the Go runtime grow the heap, collect, start threads and
// run timers, from the calling (locked) thread and others.
func churn() {
	done := make(chan struct{})
	for i := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			b := make([][]byte, 0, 64)
			for j := range 64 {
				b = append(b, make([]byte, 1<<20+i*4096+j))
			}
			time.Sleep(10 * time.Millisecond)
			runtime.GC()
			runtime.KeepAlive(b)
		}()
	}
	for range 32 {
		sink = append(sink, make([]byte, 4<<20))
	}
	runtime.GC()
	for range 8 {
		<-done
	}
	sink = nil
	runtime.GC()
	debug.FreeOSMemory()
}

// allThreadsFiltered checks /proc/self/task/*/status for "Seccomp: 2".
func allThreadsFiltered() error {
	paths, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil || len(paths) < 2 {
		return fmt.Errorf("threads: %v %v", paths, err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), "\nSeccomp:\t2\n") {
			return fmt.Errorf("%s: no Seccomp: 2", p)
		}
	}
	return nil
}

// child runs childMain(what) in a new process and returns how it ended.
func child(t *testing.T, what string) (exitCode int, signal syscall.Signal, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+what)
	var out strings.Builder
	cmd.Stderr = &out
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return -1, ws.Signal(), out.String()
	}
	return ws.ExitStatus(), 0, out.String()
}

func TestInstalledFiltersInAChildProcess(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the filters are for x86-64")
	}
	if code, _, stderr := child(t, "true:none"); code == 3 {
		t.Skipf("this host cannot install seccomp filters: %s", stderr)
	}
	cases := []struct {
		what   string
		code   int
		signal syscall.Signal
	}{
		{"true:status", 0, 0},
		{"true:none", 0, 0},
		{"true:churn", 0, 0},
		{"true:vcpu-churn", 0, 0},
		{"true:vcpu-log", 0, 0},
		{"true:getuid", -1, syscall.SIGSYS},
		{"log:getuid", 0, 0},
		{"true:vcpu-open", -1, syscall.SIGSYS},
		{"log:vcpu-open", 0, 0},
		{"true:vcpu-other-thread", 0, 0},
	}
	for _, tc := range cases {
		code, sig, stderr := child(t, tc.what)
		if code != tc.code || sig != tc.signal {
			t.Errorf("%s: exit %d signal %v (%s); want exit %d signal %v", tc.what, code, sig, strings.TrimSpace(stderr), tc.code, tc.signal)
		}
	}
}
