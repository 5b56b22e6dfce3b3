package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	"golang.org/x/sys/unix"
)

// KVM's own counters of a VMM process's VM, for profiling the benchmarks:
// with VMM_BENCH_PROFILE set, the benchmarks print what a step cost in
// exits, page faults and the like (KVM's debugfs statistics, summed over
// the VM's vCPUs), for vmm and QEMU alike. They go to the log as PROFILE
// lines, not to the report.

const kvmDebugfs = "/sys/kernel/debug/kvm"

// benchProfiling says whether VMM_BENCH_PROFILE asks for the counters.
func benchProfiling() bool { return os.Getenv("VMM_BENCH_PROFILE") != "" }

// kvmStats reads the counters of the VM(s) of process pid; nil when
// debugfs has none (not mounted and cannot be, or no VM).
func kvmStats(pid int) map[string]uint64 {
	if _, err := os.Stat(kvmDebugfs); err != nil {
		_ = unix.Mount("debugfs", "/sys/kernel/debug", "debugfs", 0, "")
	}
	dirs, _ := filepath.Glob(filepath.Join(kvmDebugfs, fmt.Sprintf("%d-*", pid)))
	if len(dirs) == 0 {
		return nil
	}
	stats := map[string]uint64{}
	for _, d := range dirs {
		files, _ := os.ReadDir(d)
		for _, f := range files {
			if f.IsDir() {
				continue
			}
			b, err := os.ReadFile(filepath.Join(d, f.Name()))
			if err != nil {
				continue
			}
			if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
				stats[f.Name()] += n
			}
		}
	}
	hostStats(pid, stats)
	return stats
}

// hostStats adds the KVM host's side to stats: its memory counters
// (/proc/vmstat, as vm.NAME), the CPU time of its CPUs (/proc/stat, in
// clock ticks, as cpu.FIELD) and the VMM process's page faults and CPU
// time (/proc/PID/stat, as proc.FIELD).
func hostStats(pid int, stats map[string]uint64) {
	if b, err := os.ReadFile("/proc/vmstat"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 2 {
				if n, err := strconv.ParseUint(f[1], 10, 64); err == nil {
					stats["vm."+f[0]] = n
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		for i, name := range []string{"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"} {
			if i+1 < len(f) {
				n, _ := strconv.ParseUint(f[i+1], 10, 64)
				stats["cpu."+name] = n
			}
		}
	}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		s := string(b)
		comm := s[strings.IndexByte(s, '(')+1 : strings.LastIndexByte(s, ')')]
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) > 12 {
			u, _ := strconv.ParseUint(f[11], 10, 64)
			k, _ := strconv.ParseUint(f[12], 10, 64)
			stats["task."+comm+".utime"] += u
			stats["task."+comm+".stime"] += k
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		// Fields from the state on: minflt is the 8th, majflt the 10th,
		// utime and stime the 12th and 13th (proc(5), counted from pid).
		for name, i := range map[string]int{"minflt": 7, "majflt": 9, "utime": 11, "stime": 12} {
			if i < len(f) {
				n, _ := strconv.ParseUint(f[i], 10, 64)
				stats["proc."+name] = n
			}
		}
	}
}

// profileStep prints, when profiling, the counters that changed between
// before and pid's counters now, largest first.
func profileStep(step, who string, pid int, before map[string]uint64) {
	if before == nil {
		return
	}
	after := kvmStats(pid)
	type delta struct {
		name string
		n    uint64
	}
	var ds []delta
	for k, v := range after {
		if v > before[k] {
			ds = append(ds, delta{k, v - before[k]})
		}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].n > ds[j].n })
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, " %s=%d", d.name, d.n)
	}
	GinkgoWriter.Printf("PROFILE %s %s:%s\n", who, step, b.String())
}

// profileRSS prints, when profiling, the process's largest resident
// mappings outside guest RAM (smaps: address range, name, Rss).
func profileRSS(who string, pid int) {
	if !benchProfiling() {
		return
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return
	}
	type mapping struct {
		head string
		kb   uint64
	}
	var ms []mapping
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			ms = append(ms, mapping{head: line})
		case len(f) == 3 && f[0] == "Rss:" && len(ms) > 0:
			ms[len(ms)-1].kb, _ = strconv.ParseUint(f[1], 10, 64)
		}
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].kb > ms[j].kb })
	var out strings.Builder
	for _, m := range ms[:min(len(ms), 12)] {
		fmt.Fprintf(&out, "  %6d kB %s\n", m.kb, m.head)
	}
	GinkgoWriter.Printf("PROFILE %s largest mappings:\n%s", who, out.String())
}
