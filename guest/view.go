package guest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// CPUs is the guest's view of its CPUs, from /sys/devices/system/cpu.
type CPUs struct {
	// Online, Offline and Present are the CPU numbers in the files of
	// those names, in increasing order. Offline lists possible CPUs that
	// are not online, present or not.
	Online, Offline, Present []int
}

// cpuListsCmd prints name=list for each CPU list file, one per line.
const cpuListsCmd = `for f in online offline present; do printf '%s=' $f; cat /sys/devices/system/cpu/$f; done`

// memTotalCmd prints the MemTotal line of /proc/meminfo.
const memTotalCmd = `grep '^MemTotal:' /proc/meminfo`

// Runner runs a guest command and returns its output and exit status: the
// console's *Shell, the agent's agent.Client, or a Machine (either).
type Runner interface {
	Run(ctx context.Context, cmd string) (string, int, error)
}

// check is Run that turns a non-zero exit status into an *ExitError.
func check(ctx context.Context, r Runner, cmd string) (string, error) {
	out, status, err := r.Run(ctx, cmd)
	if err != nil {
		return out, err
	}
	if status != 0 {
		return out, &ExitError{Cmd: cmd, Status: status, Output: out}
	}
	return out, nil
}

// ReadCPUs asks the guest for its CPU lists through sh.
func ReadCPUs(ctx context.Context, sh Runner) (CPUs, error) {
	out, err := check(ctx, sh, cpuListsCmd)
	if err != nil {
		return CPUs{}, fmt.Errorf("read the guest's CPU lists: %w", err)
	}
	return parseCPUFiles(out)
}

// parseCPUFiles reads the output of cpuListsCmd.
func parseCPUFiles(out string) (CPUs, error) {
	var c CPUs
	seen := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		name, list, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		var dst *[]int
		switch name {
		case "online":
			dst = &c.Online
		case "offline":
			dst = &c.Offline
		case "present":
			dst = &c.Present
		default:
			continue
		}
		ids, err := ParseCPUList(list)
		if err != nil {
			return CPUs{}, fmt.Errorf("guest's /sys/devices/system/cpu/%s: %w", name, err)
		}
		*dst, seen[name] = ids, true
	}
	for _, name := range []string{"online", "offline", "present"} {
		if !seen[name] {
			return CPUs{}, fmt.Errorf("guest's CPU lists: no %s line in %q", name, out)
		}
	}
	return c, nil
}

// ParseCPUList reads a kernel CPU list such as "0-3,5,7-8" (the format of
// /sys/devices/system/cpu/online). An empty list is an empty slice.
func ParseCPUList(s string) ([]int, error) {
	ids := []int{}
	s = strings.TrimSpace(s)
	if s == "" {
		return ids, nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("bad CPU list %q: %q is not a CPU number", s, lo)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("bad CPU list %q: bad range %q", s, part)
			}
		}
		if len(ids) > 0 && a <= ids[len(ids)-1] {
			return nil, fmt.Errorf("bad CPU list %q: not in increasing order", s)
		}
		if b-a > 1<<16 {
			return nil, fmt.Errorf("bad CPU list %q: range %q is too large", s, part)
		}
		for i := a; i <= b; i++ {
			ids = append(ids, i)
		}
	}
	return ids, nil
}

// ReadMemTotal asks the guest for MemTotal from /proc/meminfo, in bytes.
func ReadMemTotal(ctx context.Context, sh Runner) (uint64, error) {
	out, err := check(ctx, sh, memTotalCmd)
	if err != nil {
		return 0, fmt.Errorf("read the guest's MemTotal: %w", err)
	}
	return parseMemTotal(out)
}

// parseMemTotal reads "MemTotal:   1014548 kB".
func parseMemTotal(out string) (uint64, error) {
	f := strings.Fields(out)
	if len(f) != 3 || f[0] != "MemTotal:" || f[2] != "kB" {
		return 0, fmt.Errorf("guest's MemTotal: unexpected line %q", out)
	}
	kb, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil || kb > 1<<53 {
		return 0, fmt.Errorf("guest's MemTotal: bad number %q", f[1])
	}
	return kb * 1024, nil
}
