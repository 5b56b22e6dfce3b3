package lua

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	glua "github.com/yuin/gopher-lua"

	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/api"
	"github.com/vmmdev/vmm/vm/api/http1"
)

// The VM methods that go through the vmm's API: resize, add_disk,
// add_net, add_vsock, remove_device, api, info, ping, reboot, shutdown,
// and the process's stop and wait_exit.

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
	return rn.put(L, h, api.RouteResize, body, fmt.Sprintf("resize{%s}", strings.Join(desc, ", ")))
}

// vm:add_disk{path = F, id = ID, readonly = true, ...},
// vm:add_net{tap = T, mac = M, ...}, vm:add_vsock{cid = N, socket = PATH}
// -> status, {id = ..., bdf = ...} (nil before boot or on error), err: the
// table is the device's configuration, in Cloud Hypervisor's field names,
// sent as JSON.
func (rn *run) vmAddDevice(what, route string) glua.LGFunction {
	return func(L *glua.LState) int {
		h := checkVM(L, 1)
		t := L.CheckTable(2)
		body, err := toJSON(t)
		if err != nil {
			L.ArgError(2, err.Error())
		}
		status, reply := rn.send(L, h, http1.MethodPut, route, body)
		msg := ""
		if !api.Succeeded(status) {
			msg = api.ReplyError(status, reply).Message()
		}
		rn.note(NoteAction, h.name, fmt.Sprintf("%s%s -> %d %s", what, body, status, strings.TrimSpace(string(reply))))
		L.Push(glua.LNumber(status))
		switch {
		case msg != "":
			L.Push(glua.LNil)
			L.Push(glua.LString(msg))
		case len(strings.TrimSpace(string(reply))) == 0:
			L.Push(glua.LNil)
			L.Push(glua.LNil)
		default:
			v, err := fromJSON(L, reply)
			if err != nil {
				raise(L, fmt.Errorf("%s: %s: %w", h.name, route, err))
			}
			L.Push(v)
			L.Push(glua.LNil)
		}
		return 3
	}
}

// vm:remove_device(id) -> status, err
func (rn *run) vmRemoveDevice(L *glua.LState) int {
	h := checkVM(L, 1)
	id := L.CheckString(2)
	body, err := json.Marshal(api.RemoveDeviceRequest{ID: id})
	if err != nil {
		raise(L, err)
	}
	return rn.put(L, h, api.RouteRemoveDevice, body, fmt.Sprintf("remove_device(%s)", id))
}

// put sends one PUT whose reply carries nothing but its status, notes it
// as what, and returns status, err to the script: err is nil on success,
// else the server's message chain joined with ": ". Only a failure to get
// a reply fails the script.
func (rn *run) put(L *glua.LState, h *vmHandle, route string, body []byte, what string) int {
	status, reply := rn.send(L, h, http1.MethodPut, route, body)
	ok, msg := api.Succeeded(status), ""
	if !ok {
		msg = api.ReplyError(status, reply).Message()
	}
	rn.note(NoteAction, h.name, fmt.Sprintf("%s -> %d %s", what, status, msg))
	L.Push(glua.LNumber(status))
	if ok {
		L.Push(glua.LNil)
	} else {
		L.Push(glua.LString(msg))
	}
	return 2
}

// send sends one raw API request and returns the reply's status and body.
// Only a failure to get a reply fails the script.
func (rn *run) send(L *glua.LState, h *vmHandle, method, route string, body []byte) (int, []byte) {
	ctx, cancel := rn.ctx(rn.t.API)
	defer cancel()
	status, reply, err := h.vm.Request(ctx, method, route, body)
	if err != nil {
		raise(L, err)
	}
	return status, reply
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
	status, reply := rn.send(L, h, method, route, body)
	rn.note(NoteAction, h.name, fmt.Sprintf("%s %s %s -> %d %s", method, route, body, status, strings.TrimSpace(string(reply))))
	L.Push(glua.LNumber(status))
	L.Push(glua.LString(reply))
	return 2
}

// getJSON sends a GET and returns the reply as a Lua value; an error status
// fails the script.
func (rn *run) getJSON(L *glua.LState, h *vmHandle, route string) glua.LValue {
	status, reply := rn.send(L, h, http1.MethodGet, route, nil)
	if !api.Succeeded(status) {
		raise(L, fmt.Errorf("%s: %s: %d %s", h.name, route, status, api.ReplyError(status, reply).Message()))
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

// via reads the via = "api" | "guest" option and returns its value and the
// one of api and inGuest it picks.
func via(L *glua.LState, t *glua.LTable, what string, api, inGuest func(context.Context) error) (string, func(context.Context) error) {
	v := t.RawGetString("via")
	switch v {
	case glua.LNil, glua.LString("api"):
		return "api", api
	case glua.LString("guest"):
		return "guest", inGuest
	}
	L.RaiseError("%s: via: want \"api\" or \"guest\", got %s", what, render(v))
	return "", nil
}

// vm:reboot{via = "api"|"guest", wait = true, timeout = s}
func (rn *run) vmReboot(L *glua.LState) int {
	h := checkVM(L, 1)
	t := L.OptTable(2, L.NewTable())
	if err := checkKeys(t, "", []string{"via", "wait", "timeout"}); err != nil {
		L.ArgError(2, err.Error())
	}
	how, reboot := via(L, t, "reboot", h.vm.Reboot, h.vm.RebootFromGuest)
	wait := t.RawGetString("wait") != glua.LFalse
	bootT := optSeconds(L, t.RawGetString("timeout"), rn.t.Boot, "reboot: timeout")
	ctx, cancel := rn.ctx(bootT)
	defer cancel()
	rn.note(NoteAction, h.name, "reboot via "+how)
	began := time.Now()
	if err := reboot(ctx); err != nil {
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
	how, shutdown := via(L, t, "shutdown", h.vm.Shutdown, h.vm.PowerOffFromGuest)
	rn.note(NoteAction, h.name, "shutdown via "+how)
	rn.do(L, rn.t.API, shutdown)
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
	code := within(rn, L, optSeconds(L, L.Get(2), rn.t.Boot, "wait_exit: timeout"), h.vm.Wait)
	rn.note(NoteAction, h.name, fmt.Sprintf("vmm exited with status %d", code))
	L.Push(glua.LNumber(code))
	return 1
}
