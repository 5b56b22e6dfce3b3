package lua

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	glua "github.com/yuin/gopher-lua"

	"github.com/vmmdev/vmm/guest"
)

// The VM methods that go to the guest: sh, run, fill_tmpfs, wait_for,
// wait_ready, cpus, memory, and what the host sees of it: process,
// threads, console, ready_markers and log.

// shArgs reads (cmd [, {timeout = s}]).
func (rn *run) shArgs(L *glua.LState, what string) (*vmHandle, string, time.Duration) {
	h := checkVM(L, 1)
	cmd := L.CheckString(2)
	t := L.OptTable(3, L.NewTable())
	if err := checkKeys(t, "", []string{"timeout"}); err != nil {
		L.ArgError(3, err.Error())
	}
	return h, cmd, optSeconds(L, t.RawGetString("timeout"), rn.t.Command, what+": timeout")
}

// vm:sh(cmd [, {timeout = s}]) -> output, status
func (rn *run) vmSh(L *glua.LState) int {
	h, cmd, d := rn.shArgs(L, "sh")
	out, status := rn.sh(L, h, cmd, d)
	L.Push(glua.LString(out))
	L.Push(glua.LNumber(status))
	return 2
}

// vm:run(cmd [, {timeout = s}]) -> output; a non-zero status fails.
func (rn *run) vmRun(L *glua.LState) int {
	h, cmd, d := rn.shArgs(L, "run")
	L.Push(glua.LString(rn.run(L, h, cmd, d)))
	return 1
}

// run runs cmd in the guest and returns its output; a non-zero status
// fails the script.
func (rn *run) run(L *glua.LState, h *vmHandle, cmd string, d time.Duration) string {
	out, status := rn.sh(L, h, cmd, d)
	if status != 0 {
		raise(L, fmt.Errorf("%s: %w", h.name, &guest.ExitError{Cmd: cmd, Status: status, Output: out}))
	}
	return out
}

// vm:fill_tmpfs(size [, {timeout = s}]): the guest writes size (whole MiB)
// of zeros to /tmp/fill, on its tmpfs /tmp remounted to hold them, so that
// it allocates and touches that much RAM; the script fails unless all of
// it landed and dmesg tells of no out-of-memory kill. The file is removed
// after. timeout bounds the write.
func (rn *run) vmFillTmpfs(L *glua.LState) int {
	h := checkVM(L, 1)
	size, err := sizeArg(L.Get(2))
	if err != nil || size == 0 || size%(1<<20) != 0 {
		L.ArgError(2, "want a size of whole MiB, such as \"1536M\"")
	}
	t := L.OptTable(3, L.NewTable())
	if err := checkKeys(t, "", []string{"timeout"}); err != nil {
		L.ArgError(3, err.Error())
	}
	d := optSeconds(L, t.RawGetString("timeout"), rn.t.Command, "fill_tmpfs: timeout")
	mib := size >> 20
	rn.run(L, h, fmt.Sprintf("mount -o remount,size=%dM /tmp", mib+fillTmpfsSlackMiB), rn.t.Command)
	rn.run(L, h, fmt.Sprintf("dd if=/dev/zero of=/tmp/fill bs=1M count=%d 2>/dev/null", mib), d)
	if got := rn.run(L, h, "du -m /tmp/fill | cut -f1", rn.t.Command); got != strconv.FormatUint(mib, 10) {
		raise(L, fmt.Errorf("%s: fill_tmpfs: %s MiB landed in /tmp/fill, want %d", h.name, got, mib))
	}
	if n := rn.run(L, h, "dmesg | grep -c -i 'out of memory' || true", rn.t.Command); n != "0" {
		raise(L, fmt.Errorf("%s: fill_tmpfs: dmesg tells of out-of-memory kills (%s lines)", h.name, n))
	}
	rn.run(L, h, "rm /tmp/fill", rn.t.Command)
	return 0
}

// fillTmpfsSlackMiB is how much more than the file vm:fill_tmpfs lets /tmp
// hold.
const fillTmpfsSlackMiB = 128

func (rn *run) sh(L *glua.LState, h *vmHandle, cmd string, d time.Duration) (string, int) {
	ctx, cancel := rn.ctx(d)
	defer cancel()
	rn.note(NoteCommand, h.name, cmd)
	out, status, err := h.vm.Sh(ctx, cmd)
	if err != nil {
		raise(L, err)
	}
	rn.note(NoteOutput, h.name, out)
	if status != 0 {
		rn.note(NoteOutput, h.name, fmt.Sprintf("(exit status %d)", status))
	}
	return out, status
}

// vm:wait_for(pattern | fn [, timeout [, interval]]) -> match | fn's results
func (rn *run) vmWaitFor(L *glua.LState) int {
	h := checkVM(L, 1)
	target := L.Get(2)
	d := optSeconds(L, L.Get(3), rn.t.WaitFor, "wait_for: timeout")
	switch t := target.(type) {
	case glua.LString:
		re, err := regexp.Compile(string(t))
		if err != nil {
			L.ArgError(2, "bad pattern: "+err.Error())
		}
		ctx, cancel := rn.ctx(d)
		defer cancel()
		m, err := h.vm.WaitFor(ctx, re)
		if err != nil {
			raise(L, fmt.Errorf("wait_for /%s/ (%v): %w", re, d, err))
		}
		rn.note(NoteAction, h.name, fmt.Sprintf("console matched /%s/: %q", re, m))
		L.Push(glua.LString(m))
		return 1
	case *glua.LFunction:
		interval := optSeconds(L, L.Get(4), defaultPollInterval, "wait_for: interval")
		return rn.poll(L, h, t, d, interval)
	}
	L.ArgError(2, "a pattern (string) or a function expected")
	return 0
}

// poll calls fn until its first result is truthy and returns its results.
func (rn *run) poll(L *glua.LState, h *vmHandle, fn *glua.LFunction, d, interval time.Duration) int {
	began := time.Now()
	deadline := began.Add(d)
	base := L.GetTop()
	for tries := 1; ; tries++ {
		rn.callQuietly(L, fn)
		n := L.GetTop() - base
		if n > 0 && glua.LVAsBool(L.Get(base+1)) {
			rn.note(NoteAction, h.name, fmt.Sprintf("wait_for: condition met after %d tries (%.1fs)", tries, time.Since(began).Seconds()))
			return n
		}
		last := glua.LValue(glua.LNil)
		if n > 0 {
			last = L.Get(base + 1)
		}
		L.SetTop(base)
		if !time.Now().Add(interval).Before(deadline) {
			raise(L, fmt.Errorf("%s: wait_for: condition still %s after %v (%d tries)", h.name, render(last), d, tries))
		}
		ctx, cancel := rn.ctx(interval)
		<-ctx.Done()
		cancel()
		if err := rn.L.Context().Err(); err != nil {
			raise(L, fmt.Errorf("%s: wait_for: %w", h.name, err))
		}
	}
}

// callQuietly calls fn with notes muted, even when fn raises an error.
func (rn *run) callQuietly(L *glua.LState, fn *glua.LFunction) {
	rn.quiet++
	defer func() { rn.quiet-- }()
	L.Push(fn)
	L.Call(0, glua.MultRet)
}

// vm:wait_ready([timeout])
func (rn *run) vmWaitReady(L *glua.LState) int {
	h := checkVM(L, 1)
	rn.do(L, optSeconds(L, L.Get(2), rn.t.Boot, "wait_ready: timeout"), h.vm.WaitReady)
	return 0
}

// vm:cpus() -> {online = {...}, offline = {...}, present = {...}}
func (rn *run) vmCPUs(L *glua.LState) int {
	rn.pushCPUs(L, checkVM(L, 1))
	return 1
}

// vm:wait_cpus(n [, timeout [, interval]]) -> cpus: wait_for until the
// guest has n present CPUs and a reading that holds together (every online
// CPU present: the lists are read one after the other, online first, so an
// eject between the two reads shows a CPU online but not present); returns
// vm:cpus()'s table of that moment.
func (rn *run) vmWaitCPUs(L *glua.LState) int {
	h := checkVM(L, 1)
	n := L.CheckInt(2)
	d := optSeconds(L, L.Get(3), rn.t.WaitFor, "wait_cpus: timeout")
	interval := optSeconds(L, L.Get(4), defaultPollInterval, "wait_cpus: interval")
	cond := L.NewFunction(func(L *glua.LState) int {
		if c := rn.pushCPUs(L, h); len(c.Present) != n || !subset(c.Online, c.Present) {
			L.Pop(1)
			L.Push(glua.LFalse)
		}
		return 1
	})
	return rn.poll(L, h, cond, d, interval)
}

// pciBDF is a PCI address as vm.add-disk returns it and sysfs names it.
var pciBDF = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$`)

// vm:wait_block(bdf [, timeout [, interval]]) -> name: wait_for until the
// guest has bound a block device to the PCI function at bdf
// ("0000:00:03.0"), a disk hot-added or found at boot; returns its name
// ("vdb").
func (rn *run) vmWaitBlock(L *glua.LState) int {
	h := checkVM(L, 1)
	bdf := L.CheckString(2)
	if !pciBDF.MatchString(bdf) {
		L.ArgError(2, fmt.Sprintf("%q: want a PCI address such as 0000:00:03.0", bdf))
	}
	d := optSeconds(L, L.Get(3), rn.t.WaitFor, "wait_block: timeout")
	interval := optSeconds(L, L.Get(4), defaultPollInterval, "wait_block: interval")
	cmd := "ls /sys/bus/pci/devices/" + bdf + "/virtio*/block 2>/dev/null; true"
	cond := L.NewFunction(func(L *glua.LState) int {
		if out, _ := rn.sh(L, h, cmd, rn.t.Command); out != "" {
			L.Push(glua.LString(out))
		} else {
			L.Push(glua.LFalse)
		}
		return 1
	})
	return rn.poll(L, h, cond, d, interval)
}

// subset reports whether every id of a is in b.
func subset(a, b []int) bool {
	for _, id := range a {
		if !slices.Contains(b, id) {
			return false
		}
	}
	return true
}

// pushCPUs reads the guest's CPUs and pushes them as vm:cpus() gives them.
func (rn *run) pushCPUs(L *glua.LState, h *vmHandle) guest.CPUs {
	c := within(rn, L, rn.t.Command, h.vm.CPUs)
	rn.note(NoteGuest, h.name, fmt.Sprintf("CPUs online %s, offline %s, present %s", cpuList(c.Online), cpuList(c.Offline), cpuList(c.Present)))
	t := L.NewTable()
	for _, f := range []struct {
		key string
		ids []int
	}{{"online", c.Online}, {"offline", c.Offline}, {"present", c.Present}} {
		l := L.NewTable()
		for _, id := range f.ids {
			l.Append(glua.LNumber(id))
		}
		L.SetField(t, f.key, l)
	}
	L.Push(t)
	return c
}

// vm:memory() -> {total = bytes}
func (rn *run) vmMemory(L *glua.LState) int {
	n := rn.memTotal(L, checkVM(L, 1))
	t := L.NewTable()
	L.SetField(t, "total", glua.LNumber(n))
	L.Push(t)
	return 1
}

// vm:wait_memory(bytes [, timeout [, interval]]) -> total: wait_for until
// the guest's MemTotal is at least bytes; returns that MemTotal.
func (rn *run) vmWaitMemory(L *glua.LState) int {
	h := checkVM(L, 1)
	least := uint64(L.CheckNumber(2))
	d := optSeconds(L, L.Get(3), rn.t.WaitFor, "wait_memory: timeout")
	interval := optSeconds(L, L.Get(4), defaultPollInterval, "wait_memory: interval")
	cond := L.NewFunction(func(L *glua.LState) int {
		if n := rn.memTotal(L, h); n >= least {
			L.Push(glua.LNumber(n))
		} else {
			L.Push(glua.LFalse)
		}
		return 1
	})
	return rn.poll(L, h, cond, d, interval)
}

// memTotal reads the guest's MemTotal in bytes.
func (rn *run) memTotal(L *glua.LState, h *vmHandle) uint64 {
	n := within(rn, L, rn.t.Command, h.vm.MemTotal)
	rn.note(NoteGuest, h.name, fmt.Sprintf("MemTotal %d bytes (%.1f MiB)", n, float64(n)/(1<<20)))
	return n
}

// vm:process() -> {threads = n, vcpu_threads = n, files = n, sockets = n,
// rss = bytes}: the vmm process's threads (those named vcpuN apart), open
// file descriptors (sockets apart) and resident memory, from /proc, for
// leak checks and for RAM given back to the host.
func (rn *run) vmProcess(L *glua.LState) int {
	h := checkVM(L, 1)
	p, err := readProcessCounts(procRoot, h.vm.Pid())
	if err != nil {
		raise(L, fmt.Errorf("%s: %w", h.name, err))
	}
	rn.note(NoteGuest, h.name, fmt.Sprintf("vmm process: %d threads (%d vcpuN), %d files, %d sockets, RSS %.1f MiB",
		p.threads, p.vcpuThreads, p.files, p.sockets, float64(p.rss)/(1<<20)))
	t := L.NewTable()
	L.SetField(t, "threads", glua.LNumber(p.threads))
	L.SetField(t, "vcpu_threads", glua.LNumber(p.vcpuThreads))
	L.SetField(t, "files", glua.LNumber(p.files))
	L.SetField(t, "sockets", glua.LNumber(p.sockets))
	L.SetField(t, "rss", glua.LNumber(p.rss))
	L.Push(t)
	return 1
}

// vm:console() -> the console text so far.
func (rn *run) vmConsole(L *glua.LState) int {
	L.Push(glua.LString(checkVM(L, 1).vm.ConsoleText()))
	return 1
}

// vm:threads() -> {{tid = n, name = "vcpu0", seccomp = 2,
// seccomp_filters = n}, ...}: each of the vmm's threads, by id, with its
// name and its seccomp mode and filter count from /proc/PID/task/*/status
// (each -1 when the kernel shows none), for the confinement checks.
func (rn *run) vmThreads(L *glua.LState) int {
	h := checkVM(L, 1)
	threads, err := guest.Threads(h.vm.Pid())
	if err != nil {
		raise(L, fmt.Errorf("%s: %w", h.name, err))
	}
	modes := map[int]int{}
	list := L.NewTable()
	for _, ts := range threads {
		modes[ts.Seccomp]++
		t := L.NewTable()
		L.SetField(t, "tid", glua.LNumber(ts.TID))
		L.SetField(t, "name", glua.LString(ts.Name))
		L.SetField(t, "seccomp", glua.LNumber(ts.Seccomp))
		L.SetField(t, "seccomp_filters", glua.LNumber(ts.SeccompFilters))
		list.Append(t)
	}
	var counts []string
	for _, mode := range slices.Sorted(maps.Keys(modes)) {
		counts = append(counts, fmt.Sprintf("%d with Seccomp %d", modes[mode], mode))
	}
	rn.note(NoteGuest, h.name, fmt.Sprintf("vmm threads: %d (%s)", len(threads), strings.Join(counts, ", ")))
	L.Push(list)
	return 1
}

// vm:ready_markers() -> n: how many complete lines of the console end with
// the guest's ready marker (guest.ReadyMarker), one per boot of the guest,
// as vm:wait_ready counts them.
func (rn *run) vmReadyMarkers(L *glua.LState) int {
	h := checkVM(L, 1)
	n := guest.CountLinesEndingWith(h.vm.ConsoleText(), guest.ReadyMarker)
	rn.note(NoteGuest, h.name, fmt.Sprintf("%d ready markers on the console", n))
	L.Push(glua.LNumber(n))
	return 1
}

// vm:log() -> the vmm's own log (its standard error) so far, as much of
// it as the launcher keeps (the last 64 KiB for the real vmm).
func (rn *run) vmLog(L *glua.LState) int {
	L.Push(glua.LString(checkVM(L, 1).vm.VmmLog()))
	return 1
}

// cpuList writes CPU numbers the kernel's way: "0-3,6".
func cpuList(ids []int) string {
	if len(ids) == 0 {
		return "(none)"
	}
	var parts []string
	for i := 0; i < len(ids); {
		j := i
		for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", ids[i], ids[j]))
		} else {
			parts = append(parts, fmt.Sprint(ids[i]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}
