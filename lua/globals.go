package lua

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"time"

	glua "github.com/yuin/gopher-lua"

	"github.com/vmmdev/vmm/guest"
	"github.com/vmmdev/vmm/vm/api"
	"github.com/vmmdev/vmm/vm/config"
)

// The globals a scenario sees: print, say, step, sleep, fail, expect, and
// the vmm table (start, root_disk, size, format_size, kernel_version), and
// the metatable of the VMs vmm.start returns.

// vmTypeName names the metatable of VM userdata.
const vmTypeName = "vmm.vm"

// defaultPollInterval is how often wait_for calls its function.
const defaultPollInterval = 500 * time.Millisecond

// vmm.root_disk([name]) -> path: a fresh writable copy of the guest's root
// file system image in the script's temporary directory.
func (rn *run) rootDisk(L *glua.LState) int {
	return rn.unpackDisk(L, "vmm.root_disk", "root", guest.UnpackRootfs)
}

// vmm.distro_disk([name]) -> path: a fresh writable copy of the distro
// guest's root file system (Debian) in the script's temporary directory.
func (rn *run) distroDisk(L *glua.LState) int {
	return rn.unpackDisk(L, "vmm.distro_disk", "distro", guest.UnpackDistroRootfs)
}

// unpackDisk has unpack write a disk named by argument 1 (def when absent)
// into the script's temporary directory and pushes its path.
func (rn *run) unpackDisk(L *glua.LState, fn, def string, unpack func(dst string) error) int {
	name := L.OptString(1, def)
	if name == "" || strings.ContainsAny(name, "/\x00") {
		L.ArgError(1, "a file name without a slash")
	}
	dir, err := rn.tempDir()
	if err == nil {
		p := filepath.Join(dir, name+".ext4")
		if err = unpack(p); err == nil {
			L.Push(glua.LString(p))
			return 1
		}
	}
	L.RaiseError("%s: %v", fn, err)
	return 0
}

// vmHandle is a VM as a script sees it.
type vmHandle struct {
	name string
	vm   VM
}

// install sets up the script's globals.
func (rn *run) install() {
	L := rn.L
	// A script must not end the process: its VMs would outlive it.
	if os, ok := L.GetGlobal("os").(*glua.LTable); ok {
		L.SetField(os, "exit", L.NewFunction(func(L *glua.LState) int {
			L.RaiseError("os.exit is not allowed in a scenario: use fail(msg) or error(msg)")
			return 0
		}))
	}
	L.SetGlobal("print", L.NewFunction(rn.say))
	L.SetGlobal("say", L.NewFunction(rn.say))
	L.SetGlobal("step", L.NewFunction(rn.step))
	L.SetGlobal("sleep", L.NewFunction(rn.sleep))
	L.SetGlobal("fail", L.NewFunction(luaFail))
	L.SetGlobal("expect", rn.expectTable())

	mod := L.NewTable()
	L.SetFuncs(mod, map[string]glua.LGFunction{
		"start":          rn.start,
		"root_disk":      rn.rootDisk,
		"distro_disk":    rn.distroDisk,
		"size":           luaSize,
		"format_size":    luaFormatSize,
		"kernel_version": luaKernelVersion,
	})
	L.SetField(mod, "script", glua.LString(rn.script))
	L.SetField(mod, "default_cmdline", glua.LString(guest.DefaultCmdline))
	L.SetField(mod, "root_cmdline", glua.LString(guest.RootCmdline))
	L.SetField(mod, "kernel", glua.LString(guest.ResolvePaths().Kernel))
	L.SetField(mod, "vmlinux", glua.LString(guest.ResolvePaths().Vmlinux))
	// vmm.distro: how to boot the distro guest's disk (vmm.distro_disk).
	distro := L.NewTable()
	L.SetField(distro, "initramfs", glua.LString(guest.ResolvePaths().DistroInitrd))
	L.SetField(distro, "cmdline", glua.LString(guest.DistroCmdline))
	L.SetField(mod, "distro", distro)
	L.SetGlobal("vmm", mod)

	mt := L.NewTypeMetatable(vmTypeName)
	methods := L.SetFuncs(L.NewTable(), map[string]glua.LGFunction{
		"resize":        rn.vmResize,
		"add_disk":      rn.vmAddDevice("add_disk", api.RouteAddDisk),
		"add_net":       rn.vmAddDevice("add_net", api.RouteAddNet),
		"add_vsock":     rn.vmAddDevice("add_vsock", api.RouteAddVsock),
		"remove_device": rn.vmRemoveDevice,
		"api":           rn.vmAPI,
		"info":          rn.vmInfo,
		"ping":          rn.vmPing,
		"reboot":        rn.vmReboot,
		"shutdown":      rn.vmShutdown,
		"stop":          rn.vmStop,
		"wait_exit":     rn.vmWaitExit,
		"sh":            rn.vmSh,
		"run":           rn.vmRun,
		"fill_tmpfs":    rn.vmFillTmpfs,
		"wait_for":      rn.vmWaitFor,
		"wait_ready":    rn.vmWaitReady,
		"cpus":          rn.vmCPUs,
		"wait_cpus":     rn.vmWaitCPUs,
		"wait_block":    rn.vmWaitBlock,
		"memory":        rn.vmMemory,
		"wait_memory":   rn.vmWaitMemory,
		"process":       rn.vmProcess,
		"threads":       rn.vmThreads,
		"console":       rn.vmConsole,
		"ready_markers": rn.vmReadyMarkers,
		"log":           rn.vmLog,
	})
	L.SetField(mt, "__index", L.NewFunction(func(L *glua.LState) int {
		h := checkVM(L, 1)
		switch key := L.CheckString(2); key {
		case "name":
			L.Push(glua.LString(h.name))
		case "pid":
			L.Push(glua.LNumber(h.vm.Pid()))
		default:
			L.Push(L.GetField(methods, key))
		}
		return 1
	}))
	L.SetField(mt, "__tostring", L.NewFunction(func(L *glua.LState) int {
		L.Push(glua.LString("vm " + checkVM(L, 1).name))
		return 1
	}))
}

// checkVM returns the VM that method calls pass as self.
func checkVM(L *glua.LState, n int) *vmHandle {
	if ud, ok := L.Get(n).(*glua.LUserData); ok {
		if h, ok := ud.Value.(*vmHandle); ok {
			return h
		}
	}
	L.ArgError(n, "vm expected (call methods as vm:method(...))")
	return nil
}

// raise fails the script at the caller's line with err's message.
func raise(L *glua.LState, err error) {
	L.RaiseError("%s", err.Error())
}

// within calls f with a context bounded by d (and by the script's own) and
// returns its value; an error fails the script.
func within[T any](rn *run, L *glua.LState, d time.Duration, f func(context.Context) (T, error)) T {
	ctx, cancel := rn.ctx(d)
	defer cancel()
	v, err := f(ctx)
	if err != nil {
		raise(L, err)
	}
	return v
}

// do is within for an f that returns only an error.
func (rn *run) do(L *glua.LState, d time.Duration, f func(context.Context) error) {
	within(rn, L, d, func(ctx context.Context) (struct{}, error) { return struct{}{}, f(ctx) })
}

// step(name, fn) runs fn as a named step and returns what fn returns.
func (rn *run) step(L *glua.LState) int {
	name := L.CheckString(1)
	fn := L.CheckFunction(2)
	if L.GetTop() > 2 {
		L.ArgError(3, "step takes a name and a function")
	}
	path := append(append([]string(nil), rn.steps...), name)
	idx := len(rn.res.Steps)
	rn.res.Steps = append(rn.res.Steps, StepResult{Path: path})
	rn.steps = path
	rn.r.report(func(rep Reporter) { rep.StepStarted(rn.script, path) })
	start := time.Now()

	L.Push(fn)
	err := L.PCall(0, glua.MultRet, nil)

	rn.steps = path[:len(path)-1]
	sr := &rn.res.Steps[idx]
	sr.Duration, sr.done = time.Since(start), true
	if err == nil {
		rn.r.report(func(rep Reporter) { rep.StepFinished(rn.script, *sr) })
		return L.GetTop() - 2
	}
	var obj glua.LValue = glua.LString(err.Error())
	trace := ""
	var ae *glua.ApiError
	if errors.As(err, &ae) {
		obj, trace = ae.Object, ae.StackTrace
	}
	c, seen := rn.claims[obj]
	if !seen {
		c = claim{path: path, trace: trace}
		rn.claims[obj] = c
	}
	se := rn.toScriptError(obj, c.path)
	se.Trace = c.trace
	sr.Err = se
	rn.r.report(func(rep Reporter) { rep.StepFinished(rn.script, *sr) })
	L.Error(obj, 0)
	return 0
}

// say(...) narrates: its arguments, as print would show them.
func (rn *run) say(L *glua.LState) int {
	parts := make([]string, L.GetTop())
	for i := range parts {
		parts[i] = L.ToStringMeta(L.Get(i + 1)).String()
	}
	rn.note(NoteSay, "", strings.Join(parts, " "))
	return 0
}

// sleep(seconds) waits, or fails when the script is interrupted.
func (rn *run) sleep(L *glua.LState) int {
	d := checkSeconds(L, 1)
	ctx, cancel := rn.ctx(d)
	defer cancel()
	<-ctx.Done()
	if err := rn.L.Context().Err(); err != nil {
		raise(L, fmt.Errorf("sleep: %w", err))
	}
	return 0
}

// fail(msg) fails the script here.
func luaFail(L *glua.LState) int {
	L.RaiseError("%s", L.OptString(1, "fail() called"))
	return 0
}

// vmm.size("1G") is the size in bytes.
func luaSize(L *glua.LState) int {
	n, err := sizeArg(L.Get(1))
	if err != nil {
		L.ArgError(1, err.Error())
	}
	L.Push(glua.LNumber(n))
	return 1
}

// vmm.format_size(bytes) is "1G", "1536M", ...
func luaFormatSize(L *glua.LState) int {
	n, err := intArg(L.Get(1))
	if err != nil || n < 0 {
		L.ArgError(1, "a non-negative integer expected")
	}
	L.Push(glua.LString(config.FormatSize(uint64(n))))
	return 1
}

// checkSeconds reads a duration in seconds.
func checkSeconds(L *glua.LState, n int) time.Duration {
	v := float64(L.CheckNumber(n))
	if v < 0 || math.IsNaN(v) || v > 24*3600 {
		L.ArgError(n, "seconds between 0 and 86400 expected")
	}
	return time.Duration(v * float64(time.Second))
}

// optSeconds reads an optional timeout in seconds.
func optSeconds(L *glua.LState, v glua.LValue, def time.Duration, what string) time.Duration {
	switch t := v.(type) {
	case *glua.LNilType:
		return def
	case glua.LNumber:
		f := float64(t)
		if f > 0 && f <= 24*3600 {
			return time.Duration(f * float64(time.Second))
		}
	}
	L.RaiseError("%s: want a number of seconds between 0 and 86400, got %s", what, render(v))
	return 0
}
