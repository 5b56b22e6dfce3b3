package lua

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	glua "github.com/yuin/gopher-lua"

	"github.com/vmmdev/vmm/guest"
	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/api"
	"github.com/vmmdev/vmm/vm/config"
)

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
		"start":       rn.start,
		"root_disk":   rn.rootDisk,
		"distro_disk": rn.distroDisk,
		"size":        luaSize,
		"format_size": luaFormatSize,
	})
	L.SetField(mod, "script", glua.LString(rn.script))
	L.SetField(mod, "default_cmdline", glua.LString(guest.DefaultCmdline))
	L.SetField(mod, "root_cmdline", glua.LString(guest.RootCmdline))
	L.SetField(mod, "vmlinux", glua.LString(guest.ResolvePaths().Vmlinux))
	// vmm.distro: how to boot the distro guest's disk (vmm.distro_disk).
	distro := L.NewTable()
	L.SetField(distro, "initramfs", glua.LString(guest.ResolvePaths().DistroInitrd))
	L.SetField(distro, "cmdline", glua.LString(guest.DistroCmdline))
	L.SetField(mod, "distro", distro)
	L.SetGlobal("vmm", mod)

	mt := L.NewTypeMetatable(vmTypeName)
	methods := L.SetFuncs(L.NewTable(), map[string]glua.LGFunction{
		"resize":     rn.vmResize,
		"api":        rn.vmAPI,
		"info":       rn.vmInfo,
		"ping":       rn.vmPing,
		"reboot":     rn.vmReboot,
		"shutdown":   rn.vmShutdown,
		"stop":       rn.vmStop,
		"wait_exit":  rn.vmWaitExit,
		"sh":         rn.vmSh,
		"run":        rn.vmRun,
		"wait_for":   rn.vmWaitFor,
		"wait_ready": rn.vmWaitReady,
		"cpus":       rn.vmCPUs,
		"memory":     rn.vmMemory,
		"process":    rn.vmProcess,
		"console":    rn.vmConsole,
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

// ---- script structure ----

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
	L.Push(glua.LString(guest.FormatSize(uint64(n))))
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

// ---- starting VMs ----

// vmm.start{...} starts a VM and, unless wait = false, waits for its guest.
func (rn *run) start(L *glua.LState) int {
	opts := L.OptTable(1, L.NewTable())
	cfg, name, wait, bootT, err := rn.startConfig(opts)
	if err != nil {
		raise(L, fmt.Errorf("vmm.start: %w", err))
	}
	rn.names[name] = true
	rn.note(NoteAction, name, "start: "+strings.Join(describeConfig(cfg), " "))
	ctx, cancel := rn.ctx(bootT)
	defer cancel()
	began := time.Now()
	vm, err := rn.r.Launcher.Launch(ctx, name, cfg)
	if err != nil {
		raise(L, fmt.Errorf("vmm.start: %w", err))
	}
	h := &vmHandle{name: name, vm: vm}
	rn.vms = append(rn.vms, h)
	if wait {
		if err := vm.WaitReady(ctx); err != nil {
			raise(L, fmt.Errorf("vmm.start: %w", err))
		}
		rn.note(NoteAction, name, fmt.Sprintf("guest ready after %.1fs", time.Since(began).Seconds()))
	}
	ud := L.NewUserData()
	ud.Value = h
	L.SetMetatable(ud, L.GetTypeMetatable(vmTypeName))
	L.Push(ud)
	return 1
}

// startKeys are the fields vmm.start knows.
var startKeys = []string{"name", "kernel", "initramfs", "cmdline", "cpus", "memory", "disks", "net", "rng", "wait", "boot_timeout"}

// startConfig reads vmm.start's table.
func (rn *run) startConfig(t *glua.LTable) (cfg config.VM, name string, wait bool, bootT time.Duration, err error) {
	cfg = config.Default()
	wait, bootT = true, rn.t.Boot
	if err = checkKeys(t, "", startKeys); err != nil {
		return
	}
	get := func(k string) glua.LValue { return t.RawGetString(k) }
	if name, err = optString(get("name"), "name"); err != nil {
		return
	}
	if name == "" {
		name = fmt.Sprintf("vm%d", len(rn.vms)+1)
	}
	if rn.names[name] {
		err = fmt.Errorf("name %q is taken by another VM of this script", name)
		return
	}
	for _, f := range []struct {
		key string
		dst *string
	}{{"kernel", &cfg.Payload.Kernel}, {"initramfs", &cfg.Payload.Initramfs}, {"cmdline", &cfg.Payload.Cmdline}} {
		if *f.dst, err = optString(get(f.key), f.key); err != nil {
			return
		}
	}
	if cfg.CPUs, err = cpusArg(get("cpus")); err != nil {
		return
	}
	if err = memoryArg(get("memory"), &cfg.Memory); err != nil {
		return
	}
	if cfg.Disks, err = disksArg(get("disks")); err != nil {
		return
	}
	if cfg.Net, err = netArg(get("net")); err != nil {
		return
	}
	if cfg.RNG, err = rngArg(get("rng")); err != nil {
		return
	}
	switch v := get("wait").(type) {
	case *glua.LNilType:
	case glua.LBool:
		wait = bool(v)
	default:
		err = fmt.Errorf("wait: want a boolean, got %s", render(v))
		return
	}
	if v := get("boot_timeout"); v != glua.LNil {
		f, ok := v.(glua.LNumber)
		if !ok || f <= 0 || f > 24*3600 {
			err = fmt.Errorf("boot_timeout: want seconds, got %s", render(v))
			return
		}
		bootT = time.Duration(float64(f) * float64(time.Second))
	}
	return
}

func cpusArg(v glua.LValue) (config.CPUs, error) {
	c := config.Default().CPUs
	switch t := v.(type) {
	case *glua.LNilType:
		return c, nil
	case glua.LNumber:
		n, err := intArg(t)
		if err != nil {
			return c, fmt.Errorf("cpus: %w", err)
		}
		return config.CPUs{BootVCPUs: int(n), MaxVCPUs: int(n)}, nil
	case *glua.LTable:
		if err := checkKeys(t, "cpus.", []string{"boot", "max"}); err != nil {
			return c, err
		}
		if b := t.RawGetString("boot"); b != glua.LNil {
			n, err := intArg(b)
			if err != nil {
				return c, fmt.Errorf("cpus.boot: %w", err)
			}
			c.BootVCPUs = int(n)
		}
		c.MaxVCPUs = c.BootVCPUs
		if m := t.RawGetString("max"); m != glua.LNil {
			n, err := intArg(m)
			if err != nil {
				return c, fmt.Errorf("cpus.max: %w", err)
			}
			c.MaxVCPUs = int(n)
		}
		return c, nil
	}
	return c, fmt.Errorf("cpus: want {boot = N, max = M} or a number, got %s", render(v))
}

func memoryArg(v glua.LValue, m *config.Memory) error {
	switch t := v.(type) {
	case *glua.LNilType:
		return nil
	case glua.LString, glua.LNumber:
		n, err := sizeArg(t)
		if err != nil {
			return fmt.Errorf("memory: %w", err)
		}
		m.Size = n
		return nil
	case *glua.LTable:
		if err := checkKeys(t, "memory.", []string{"size", "hotplug_size"}); err != nil {
			return err
		}
		for _, f := range []struct {
			key string
			dst *uint64
		}{{"size", &m.Size}, {"hotplug_size", &m.HotplugSize}} {
			if x := t.RawGetString(f.key); x != glua.LNil {
				n, err := sizeArg(x)
				if err != nil {
					return fmt.Errorf("memory.%s: %w", f.key, err)
				}
				*f.dst = n
			}
		}
		return nil
	}
	return fmt.Errorf("memory: want {size = \"1G\", hotplug_size = \"8G\"} or a size, got %s", render(v))
}

func disksArg(v glua.LValue) ([]config.Disk, error) {
	var out []config.Disk
	err := forList(v, "disks", func(i int, e *glua.LTable) error {
		where := fmt.Sprintf("disks[%d].", i)
		if err := checkKeys(e, where, []string{"path", "readonly"}); err != nil {
			return err
		}
		p, err := optString(e.RawGetString("path"), where+"path")
		if err != nil {
			return err
		}
		d := config.Disk{Path: p}
		switch ro := e.RawGetString("readonly").(type) {
		case *glua.LNilType:
		case glua.LBool:
			d.Readonly = bool(ro)
		default:
			return fmt.Errorf("%sreadonly: want a boolean, got %s", where, render(ro))
		}
		out = append(out, d)
		return nil
	})
	return out, err
}

func netArg(v glua.LValue) ([]config.Net, error) {
	var out []config.Net
	err := forList(v, "net", func(i int, e *glua.LTable) error {
		where := fmt.Sprintf("net[%d].", i)
		if err := checkKeys(e, where, []string{"tap", "mac", "ip", "mask"}); err != nil {
			return err
		}
		var n config.Net
		for _, f := range []struct {
			key string
			dst *string
		}{{"tap", &n.Tap}, {"mac", &n.MAC}, {"ip", &n.IP}, {"mask", &n.Mask}} {
			s, err := optString(e.RawGetString(f.key), where+f.key)
			if err != nil {
				return err
			}
			*f.dst = s
		}
		out = append(out, n)
		return nil
	})
	return out, err
}

func rngArg(v glua.LValue) (*config.RNG, error) {
	switch t := v.(type) {
	case *glua.LNilType:
		return nil, nil
	case glua.LBool:
		if !t {
			return nil, nil
		}
		return &config.RNG{Src: config.DefaultRNGSource}, nil
	case *glua.LTable:
		if err := checkKeys(t, "rng.", []string{"src"}); err != nil {
			return nil, err
		}
		src, err := optString(t.RawGetString("src"), "rng.src")
		if err != nil {
			return nil, err
		}
		if src == "" {
			src = config.DefaultRNGSource
		}
		return &config.RNG{Src: src}, nil
	}
	return nil, fmt.Errorf("rng: want true or {src = PATH}, got %s", render(v))
}

// forList calls f for each table of a list of tables.
func forList(v glua.LValue, what string, f func(int, *glua.LTable) error) error {
	if v == glua.LNil {
		return nil
	}
	t, ok := v.(*glua.LTable)
	if !ok || !isList(t) {
		return fmt.Errorf("%s: want a list of tables, got %s", what, render(v))
	}
	for i := 1; i <= t.Len(); i++ {
		e, ok := t.RawGetInt(i).(*glua.LTable)
		if !ok {
			return fmt.Errorf("%s[%d]: want a table, got %s", what, i, render(t.RawGetInt(i)))
		}
		if err := f(i, e); err != nil {
			return err
		}
	}
	return nil
}

// describeConfig is the config in the command line's words, for notes.
func describeConfig(cfg config.VM) []string {
	d := []string{fmt.Sprintf("cpus boot=%d,max=%d", cfg.CPUs.BootVCPUs, cfg.CPUs.MaxVCPUs)}
	mem := "memory size=" + guest.FormatSize(cfg.Memory.Size)
	if cfg.Memory.HotplugSize > 0 {
		mem += ",hotplug_size=" + guest.FormatSize(cfg.Memory.HotplugSize)
	}
	d = append(d, mem)
	if len(cfg.Disks) > 0 {
		d = append(d, fmt.Sprintf("disks=%d", len(cfg.Disks)))
	}
	if len(cfg.Net) > 0 {
		d = append(d, fmt.Sprintf("net=%d", len(cfg.Net)))
	}
	if cfg.RNG != nil {
		d = append(d, "rng")
	}
	return d
}

// ---- the API ----

// resizeKeys are the fields vm:resize knows, and their request names.
var resizeKeys = []string{"vcpus", "memory", "balloon"}

// vm:resize{vcpus = N, memory = SIZE, balloon = SIZE} -> status, err
func (rn *run) vmResize(L *glua.LState) int {
	h := checkVM(L, 1)
	t := L.CheckTable(2)
	if err := checkKeys(t, "", resizeKeys); err != nil {
		L.ArgError(2, err.Error())
	}
	var req vm.ResizeRequest
	var desc []string
	if v := t.RawGetString("vcpus"); v != glua.LNil {
		n, err := intArg(v)
		if err != nil {
			L.ArgError(2, "vcpus: "+err.Error())
		}
		req.DesiredVCPUs = &n
		desc = append(desc, fmt.Sprintf("vcpus=%d", n))
	}
	for _, f := range []struct {
		key string
		dst **int64
	}{{"memory", &req.DesiredRAM}, {"balloon", &req.DesiredBalloon}} {
		v := t.RawGetString(f.key)
		if v == glua.LNil {
			continue
		}
		n, err := signedSizeArg(v)
		if err != nil {
			L.ArgError(2, f.key+": "+err.Error())
		}
		*f.dst = &n
		desc = append(desc, fmt.Sprintf("%s=%s", f.key, render(v)))
	}
	body, err := json.Marshal(req)
	if err != nil {
		raise(L, fmt.Errorf("%s: resize: %w", h.name, err))
	}
	status, msg := rn.request(L, h, http.MethodPut, api.RouteResize, body)
	rn.note(NoteAction, h.name, fmt.Sprintf("resize{%s} -> %d %s", strings.Join(desc, ", "), status, msg))
	L.Push(glua.LNumber(status))
	if status >= 200 && status <= 299 {
		L.Push(glua.LNil)
	} else {
		L.Push(glua.LString(msg))
	}
	return 2
}

// request sends one API request and returns the status and, for an error
// status, the server's message chain joined with ": ". Only a failure to
// get a reply fails the script.
func (rn *run) request(L *glua.LState, h *vmHandle, method, route string, body []byte) (int, string) {
	ctx, cancel := rn.ctx(rn.t.API)
	defer cancel()
	status, reply, err := h.vm.Request(ctx, method, route, body)
	if err != nil {
		raise(L, err)
	}
	if status >= 200 && status <= 299 {
		return status, ""
	}
	return status, errorMessage(status, reply)
}

// errorMessage reads an API error body: a JSON array of strings, or text.
func errorMessage(status int, body []byte) string {
	var msgs []string
	if err := json.Unmarshal(body, &msgs); err == nil && len(msgs) > 0 {
		return strings.Join(msgs, ": ")
	}
	if s := strings.TrimSpace(string(body)); s != "" {
		return s
	}
	return http.StatusText(status)
}

// vm:api(method, route [, body]) -> status, reply body: a raw request, for
// malformed ones. body is a string sent as is, or a table sent as JSON.
func (rn *run) vmAPI(L *glua.LState) int {
	h := checkVM(L, 1)
	method := strings.ToUpper(L.CheckString(2))
	route := L.CheckString(3)
	var body []byte
	switch b := L.Get(4).(type) {
	case *glua.LNilType:
	case glua.LString:
		body = []byte(b)
	case *glua.LTable:
		data, err := toJSON(b)
		if err != nil {
			L.ArgError(4, err.Error())
		}
		body = data
	default:
		L.ArgError(4, "body: want a string or a table")
	}
	ctx, cancel := rn.ctx(rn.t.API)
	defer cancel()
	status, reply, err := h.vm.Request(ctx, method, route, body)
	if err != nil {
		raise(L, err)
	}
	rn.note(NoteAction, h.name, fmt.Sprintf("%s %s %s -> %d %s", method, route, body, status, strings.TrimSpace(string(reply))))
	L.Push(glua.LNumber(status))
	L.Push(glua.LString(reply))
	return 2
}

// getJSON sends a GET and returns the reply as a Lua value; an error status
// fails the script.
func (rn *run) getJSON(L *glua.LState, h *vmHandle, route string) glua.LValue {
	ctx, cancel := rn.ctx(rn.t.API)
	defer cancel()
	status, reply, err := h.vm.Request(ctx, http.MethodGet, route, nil)
	if err != nil {
		raise(L, err)
	}
	if status < 200 || status > 299 {
		raise(L, fmt.Errorf("%s: %s: %d %s", h.name, route, status, errorMessage(status, reply)))
	}
	v, err := fromJSON(L, reply)
	if err != nil {
		raise(L, fmt.Errorf("%s: %s: %w", h.name, route, err))
	}
	return v
}

// vm:info() -> vm.info's reply as a table.
func (rn *run) vmInfo(L *glua.LState) int {
	L.Push(rn.getJSON(L, checkVM(L, 1), api.RouteInfo))
	return 1
}

// vm:ping() -> vmm.ping's reply as a table.
func (rn *run) vmPing(L *glua.LState) int {
	L.Push(rn.getJSON(L, checkVM(L, 1), api.RoutePing))
	return 1
}

// via reads the via = "api" | "guest" option.
func via(L *glua.LState, t *glua.LTable, what string) string {
	v := t.RawGetString("via")
	switch v {
	case glua.LNil, glua.LString("api"):
		return "api"
	case glua.LString("guest"):
		return "guest"
	}
	L.RaiseError("%s: via: want \"api\" or \"guest\", got %s", what, render(v))
	return ""
}

// vm:reboot{via = "api"|"guest", wait = true, timeout = s}
func (rn *run) vmReboot(L *glua.LState) int {
	h := checkVM(L, 1)
	t := L.OptTable(2, L.NewTable())
	if err := checkKeys(t, "", []string{"via", "wait", "timeout"}); err != nil {
		L.ArgError(2, err.Error())
	}
	how := via(L, t, "reboot")
	wait := t.RawGetString("wait") != glua.LFalse
	bootT := optSeconds(L, t.RawGetString("timeout"), rn.t.Boot, "reboot: timeout")
	ctx, cancel := rn.ctx(bootT)
	defer cancel()
	rn.note(NoteAction, h.name, "reboot via "+how)
	began := time.Now()
	var err error
	if how == "api" {
		err = h.vm.Reboot(ctx)
	} else {
		err = h.vm.RebootFromGuest(ctx)
	}
	if err != nil {
		raise(L, err)
	}
	if wait {
		if err := h.vm.WaitReady(ctx); err != nil {
			raise(L, err)
		}
		rn.note(NoteAction, h.name, fmt.Sprintf("guest ready again after %.1fs", time.Since(began).Seconds()))
	}
	return 0
}

// vm:shutdown{via = "api"|"guest"}
func (rn *run) vmShutdown(L *glua.LState) int {
	h := checkVM(L, 1)
	t := L.OptTable(2, L.NewTable())
	if err := checkKeys(t, "", []string{"via"}); err != nil {
		L.ArgError(2, err.Error())
	}
	how := via(L, t, "shutdown")
	ctx, cancel := rn.ctx(rn.t.API)
	defer cancel()
	rn.note(NoteAction, h.name, "shutdown via "+how)
	var err error
	if how == "api" {
		err = h.vm.Shutdown(ctx)
	} else {
		err = h.vm.PowerOffFromGuest(ctx)
	}
	if err != nil {
		raise(L, err)
	}
	return 0
}

// vm:stop() ends the vmm process now.
func (rn *run) vmStop(L *glua.LState) int {
	h := checkVM(L, 1)
	rn.note(NoteAction, h.name, "stop")
	if err := h.vm.Stop(); err != nil {
		raise(L, err)
	}
	return 0
}

// vm:wait_exit([timeout]) -> the vmm's exit status.
func (rn *run) vmWaitExit(L *glua.LState) int {
	h := checkVM(L, 1)
	ctx, cancel := rn.ctx(optSeconds(L, L.Get(2), rn.t.Boot, "wait_exit: timeout"))
	defer cancel()
	code, err := h.vm.Wait(ctx)
	if err != nil {
		raise(L, err)
	}
	rn.note(NoteAction, h.name, fmt.Sprintf("vmm exited with status %d", code))
	L.Push(glua.LNumber(code))
	return 1
}

// ---- the guest ----

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
	out, status := rn.sh(L, h, cmd, d)
	if status != 0 {
		raise(L, fmt.Errorf("%s: %w", h.name, &guest.ExitError{Cmd: cmd, Status: status, Output: out}))
	}
	L.Push(glua.LString(out))
	return 1
}

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
	ctx, cancel := rn.ctx(optSeconds(L, L.Get(2), rn.t.Boot, "wait_ready: timeout"))
	defer cancel()
	if err := h.vm.WaitReady(ctx); err != nil {
		raise(L, err)
	}
	return 0
}

// vm:cpus() -> {online = {...}, offline = {...}, present = {...}}
func (rn *run) vmCPUs(L *glua.LState) int {
	h := checkVM(L, 1)
	ctx, cancel := rn.ctx(rn.t.Command)
	defer cancel()
	c, err := h.vm.CPUs(ctx)
	if err != nil {
		raise(L, err)
	}
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
	return 1
}

// vm:memory() -> {total = bytes}
func (rn *run) vmMemory(L *glua.LState) int {
	h := checkVM(L, 1)
	ctx, cancel := rn.ctx(rn.t.Command)
	defer cancel()
	n, err := h.vm.MemTotal(ctx)
	if err != nil {
		raise(L, err)
	}
	rn.note(NoteGuest, h.name, fmt.Sprintf("MemTotal %d bytes (%.1f MiB)", n, float64(n)/(1<<20)))
	t := L.NewTable()
	L.SetField(t, "total", glua.LNumber(n))
	L.Push(t)
	return 1
}

// vm:process() -> {threads = n, vcpu_threads = n, files = n, sockets = n}:
// the vmm process's threads (those named vcpuN apart) and open file
// descriptors (sockets apart), from /proc, for leak checks.
func (rn *run) vmProcess(L *glua.LState) int {
	h := checkVM(L, 1)
	p, err := readProcessCounts(procRoot, h.vm.Pid())
	if err != nil {
		raise(L, fmt.Errorf("%s: %w", h.name, err))
	}
	rn.note(NoteGuest, h.name, fmt.Sprintf("vmm process: %d threads (%d vcpuN), %d files, %d sockets",
		p.threads, p.vcpuThreads, p.files, p.sockets))
	t := L.NewTable()
	L.SetField(t, "threads", glua.LNumber(p.threads))
	L.SetField(t, "vcpu_threads", glua.LNumber(p.vcpuThreads))
	L.SetField(t, "files", glua.LNumber(p.files))
	L.SetField(t, "sockets", glua.LNumber(p.sockets))
	L.Push(t)
	return 1
}

// vm:console() -> the console text so far.
func (rn *run) vmConsole(L *glua.LState) int {
	L.Push(glua.LString(checkVM(L, 1).vm.ConsoleText()))
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
