package lua

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/vmmdev/vmm/vm"
)

// procRoot is where the process file system is mounted.
const procRoot = "/proc"

// processCounts is what vm:process() reports of the vmm process.
type processCounts struct {
	threads, vcpuThreads int
	files, sockets       int
	// rss is the resident set size in bytes (VmRSS).
	rss uint64
}

// readProcessCounts counts pid's threads and open file descriptors and
// reads its resident set size under root (a /proc). Threads or descriptors
// that go away while it reads are not counted.
func readProcessCounts(root string, pid int) (processCounts, error) {
	var c processCounts
	dir := filepath.Join(root, strconv.Itoa(pid))
	rss, err := readRSS(filepath.Join(dir, "status"))
	if err != nil {
		return c, fmt.Errorf("vmm RSS: %w", err)
	}
	c.rss = rss
	tasks, err := os.ReadDir(filepath.Join(dir, "task"))
	if err != nil {
		return c, fmt.Errorf("vmm threads: %w", err)
	}
	for _, t := range tasks {
		comm, err := os.ReadFile(filepath.Join(dir, "task", t.Name(), "comm"))
		if err != nil {
			continue
		}
		c.threads++
		if vm.IsVCPUThread(strings.TrimSpace(string(comm))) {
			c.vcpuThreads++
		}
	}
	fds, err := os.ReadDir(filepath.Join(dir, "fd"))
	if err != nil {
		return c, fmt.Errorf("vmm fds: %w", err)
	}
	for _, f := range fds {
		target, err := os.Readlink(filepath.Join(dir, "fd", f.Name()))
		switch {
		case err != nil:
		case strings.HasPrefix(target, "socket:"):
			c.sockets++
		default:
			c.files++
		}
	}
	return c, nil
}

// readRSS reads VmRSS, in bytes, from a /proc/PID/status file.
func readRSS(path string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		v, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		kb, ok := strings.CutSuffix(strings.TrimSpace(v), " kB")
		n, err := strconv.ParseUint(strings.TrimSpace(kb), 10, 64)
		if !ok || err != nil {
			return 0, fmt.Errorf("%s: VmRSS %q: want a number of kB", path, strings.TrimSpace(v))
		}
		return n << 10, nil
	}
	return 0, fmt.Errorf("%s: no VmRSS line", path)
}

// threadStatus is what vm:threads() reports of one of the vmm's threads.
type threadStatus struct {
	tid  int
	name string
	// seccomp is the Seccomp line of the thread's status (0 none, 1
	// strict, 2 filter), -1 when the kernel shows none; seccompFilters
	// is Seccomp_filters, -1 when absent.
	seccomp, seccompFilters int
}

// readThreads reads the status of each of pid's threads under root (a
// /proc), in the order of their ids. Threads that go away while it reads
// are left out.
func readThreads(root string, pid int) ([]threadStatus, error) {
	dir := filepath.Join(root, strconv.Itoa(pid), "task")
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("vmm threads: %w", err)
	}
	var out []threadStatus
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, t.Name(), "status"))
		if err != nil {
			continue // the thread ended
		}
		ts, err := parseThreadStatus(tid, string(data))
		if err != nil {
			return nil, fmt.Errorf("vmm thread %d: %w", tid, err)
		}
		out = append(out, ts)
	}
	slices.SortFunc(out, func(a, b threadStatus) int { return cmp.Compare(a.tid, b.tid) })
	return out, nil
}

// parseThreadStatus reads a thread's Name, Seccomp and Seccomp_filters
// from the text of its /proc status file.
func parseThreadStatus(tid int, status string) (threadStatus, error) {
	ts := threadStatus{tid: tid, seccomp: -1, seccompFilters: -1}
	for line := range strings.Lines(status) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		var dst *int
		switch k {
		case "Name":
			ts.name = v
			continue
		case "Seccomp":
			dst = &ts.seccomp
		case "Seccomp_filters":
			dst = &ts.seccompFilters
		default:
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return ts, fmt.Errorf("%s %q: want a number", k, v)
		}
		*dst = n
	}
	return ts, nil
}
