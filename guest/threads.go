package guest

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Thread is one thread of a process as /proc/PID/task/TID/status shows
// it: what the confinement checks read (vm:threads() in Lua, the e2e
// seccomp specs).
type Thread struct {
	TID  int
	Name string
	// Seccomp is the Seccomp line (0 none, 1 strict, 2 filter), -1 when
	// the kernel shows none; SeccompFilters is Seccomp_filters, -1 when
	// absent.
	Seccomp, SeccompFilters int
}

// Threads reads the status of each of pid's threads under /proc, in the
// order of their ids. Threads that go away while it reads are left out.
func Threads(pid int) ([]Thread, error) { return readThreads("/proc", pid) }

// readThreads is Threads under root, a /proc.
func readThreads(root string, pid int) ([]Thread, error) {
	dir := filepath.Join(root, strconv.Itoa(pid), "task")
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("threads of %d: %w", pid, err)
	}
	var out []Thread
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
			return nil, fmt.Errorf("thread %d of %d: %w", tid, pid, err)
		}
		out = append(out, ts)
	}
	slices.SortFunc(out, func(a, b Thread) int { return cmp.Compare(a.TID, b.TID) })
	return out, nil
}

// parseThreadStatus reads a thread's Name, Seccomp and Seccomp_filters
// from the text of its /proc status file.
func parseThreadStatus(tid int, status string) (Thread, error) {
	ts := Thread{TID: tid, Seccomp: -1, SeccompFilters: -1}
	for line := range strings.Lines(status) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		var dst *int
		switch k {
		case "Name":
			ts.Name = v
			continue
		case "Seccomp":
			dst = &ts.Seccomp
		case "Seccomp_filters":
			dst = &ts.SeccompFilters
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
