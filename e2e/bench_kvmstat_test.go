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
// clock ticks, as cpu.FIELD), the VMM process's page faults and CPU time
// (as proc.FIELD) and each of its threads' CPU time, summed by thread name
// (as task.NAME.utime and .stime).
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
		if comm, f, ok := procStat(t); ok {
			stats["task."+comm+".utime"] += f[statUtime]
			stats["task."+comm+".stime"] += f[statStime]
			addSwitches(stats, "task."+comm+".", strings.TrimSuffix(t, "stat")+"status")
		}
	}
	if _, f, ok := procStat(fmt.Sprintf("/proc/%d/stat", pid)); ok {
		for name, i := range map[string]int{"minflt": statMinflt, "majflt": statMajflt, "utime": statUtime, "stime": statStime} {
			stats["proc."+name] = f[i]
		}
	}
}

// addSwitches adds a /proc/PID/task/TID/status's context switches to
// stats, as PREFIXcsw (voluntary: the thread slept) and PREFIXicsw (it was
// preempted).
func addSwitches(stats map[string]uint64, prefix, status string) {
	b, err := os.ReadFile(status)
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		switch {
		case err != nil:
		case name == "voluntary_ctxt_switches":
			stats[prefix+"csw"] += n
		case name == "nonvoluntary_ctxt_switches":
			stats[prefix+"icsw"] += n
		}
	}
}

// Fields of /proc/PID/stat counted from the state (proc(5)'s third).
const (
	statMinflt = 7
	statMajflt = 9
	statUtime  = 11
	statStime  = 12
)

// procStat reads a /proc/PID/stat or /proc/PID/task/TID/stat: the command
// name and the numbers from the state on (the state itself reads as 0).
func procStat(path string) (comm string, fields []uint64, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil, false
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open || end+2 > len(s) {
		return "", nil, false
	}
	f := strings.Fields(s[end+2:])
	if len(f) <= statStime {
		return "", nil, false
	}
	fields = make([]uint64, len(f))
	for i, v := range f {
		fields[i], _ = strconv.ParseUint(v, 10, 64)
	}
	return s[open+1 : end], fields, true
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

// profileThreads prints, when profiling, each of pid's threads: its name,
// context switches since it started (voluntary/involuntary) and where it
// sleeps (wchan).
func profileThreads(who string, pid int) {
	if !benchProfiling() {
		return
	}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	var b strings.Builder
	for _, t := range tasks {
		st := map[string]uint64{}
		addSwitches(st, "", filepath.Join(t, "status"))
		comm, _ := os.ReadFile(filepath.Join(t, "comm"))
		wchan, _ := os.ReadFile(filepath.Join(t, "wchan"))
		fmt.Fprintf(&b, " %s/%s=%d/%d@%s", filepath.Base(t), strings.TrimSpace(string(comm)), st["csw"], st["icsw"], wchan)
	}
	GinkgoWriter.Printf("PROFILE %s threads:%s\n", who, b.String())
}
