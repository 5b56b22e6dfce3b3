package lua

import (
	"fmt"
	"os"
	"path/filepath"
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
