package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/api/http1"
	"github.com/vmmdev/vmm/vm/config"
)

// Prefix is the path every API route lives under, as Cloud Hypervisor's.
const Prefix = "/api/v1/"

// Route names: the last path element of each endpoint.
const (
	RoutePing        = "vmm.ping"
	RouteShutdownVMM = "vmm.shutdown"
	RouteInfo        = "vm.info"
	RouteCreate      = "vm.create"
	RouteBoot        = "vm.boot"
	RouteDelete      = "vm.delete"
	RouteShutdown    = "vm.shutdown"
	RouteReboot      = "vm.reboot"
	RoutePause       = "vm.pause"
	RouteResume      = "vm.resume"
	RoutePowerButton = "vm.power-button"
	RouteResize      = "vm.resize"
	// RouteResizeZone is Cloud Hypervisor's memory zone resize; vmm has no
	// memory zones, so it refuses every request, saying so.
	RouteResizeZone = "vm.resize-zone"
	// Device hot plug.
	RouteAddDisk      = "vm.add-disk"
	RouteAddNet       = "vm.add-net"
	RouteAddVsock     = "vm.add-vsock"
	RouteRemoveDevice = "vm.remove-device"
)

// bodyRule says what a route accepts as a request body.
type bodyRule int

const (
	// bodyIgnored: GET routes; a body is read (bounded) and ignored.
	bodyIgnored bodyRule = iota
	// bodyNone: PUT actions; a non-empty body is refused with 400, as Cloud
	// Hypervisor does.
	bodyNone
	// bodyJSON: a JSON object is required; an empty body is refused with 400.
	bodyJSON
)

// route is one endpoint: its name, its one method, its body rule, what a
// failure is called in the error body (Cloud Hypervisor's text, after its
// "Error from API"), and the handler.
type route struct {
	name    string
	method  string
	body    bodyRule
	failure string
	handle  func(s *Server, w *response, in input) error
}

// input is what a request brings a route: its body, and the descriptors
// passed with it (SCM_RIGHTS; only vm.add-net takes any). The server
// closes the descriptors when the request ends: a route that keeps one
// duplicates it.
type input struct {
	body  []byte
	files []*os.File
}

// routes is the table the server dispatches on and the OpenAPI parity test
// compares with openapi.yaml.
func routes() []route {
	return []route{
		{RoutePing, http1.MethodGet, bodyIgnored, "The VMM could not be pinged", (*Server).handlePing},
		{RouteShutdownVMM, http1.MethodPut, bodyNone, "The VMM could not shutdown", (*Server).handleShutdownVMM},
		{RouteInfo, http1.MethodGet, bodyIgnored, "The VM info is not available", (*Server).handleInfo},
		{RouteCreate, http1.MethodPut, bodyJSON, "The VM could not be created", withBody(decodeCreate, (*Server).create)},
		{RouteBoot, http1.MethodPut, bodyNone, "The VM could not boot", action(Backend.Boot)},
		{RouteDelete, http1.MethodPut, bodyNone, "The VM could not be deleted", action(Backend.Delete)},
		{RouteShutdown, http1.MethodPut, bodyNone, "The VM could not shutdown", action(Backend.Shutdown)},
		{RouteReboot, http1.MethodPut, bodyNone, "The VM could not reboot", action(Backend.Reboot)},
		{RoutePause, http1.MethodPut, bodyNone, "The VM could not be paused", action(Backend.Pause)},
		{RouteResume, http1.MethodPut, bodyNone, "The VM could not resume", action(Backend.Resume)},
		{RoutePowerButton, http1.MethodPut, bodyNone, "Error triggering power button", action(Backend.PowerButton)},
		{RouteResize, http1.MethodPut, bodyJSON, "The VM could not be resized", withBody(decodeResize, (*Server).resize)},
		{RouteResizeZone, http1.MethodPut, bodyJSON, "The memory zone could not be resized", withBody(decodeResizeZone, (*Server).resizeZone)},
		{RouteAddDisk, http1.MethodPut, bodyJSON, "The disk could not be added to the VM", addDevice(Backend.AddDisk)},
		{RouteAddNet, http1.MethodPut, bodyJSON, "The network device could not be added to the VM", addNet},
		{RouteAddVsock, http1.MethodPut, bodyJSON, "The vsock device could not be added to the VM", addDevice(Backend.AddVsock)},
		{RouteRemoveDevice, http1.MethodPut, bodyJSON, "The device could not be removed from the VM", withBody(decodeRemoveDevice, (*Server).removeDevice)},
	}
}

// RouteNames lists every route the server registers, without the prefix.
func RouteNames() []string {
	rs := routes()
	names := make([]string, len(rs))
	for i, r := range rs {
		names[i] = r.name
	}
	return names
}

// writeJSON sends a 200 reply with v as its JSON body.
func writeJSON(w *response, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode reply: %w", err)
	}
	writeBody(w, http1.StatusOK, data)
	return nil
}

// writeBody answers with status and a JSON body.
func writeBody(w *response, status int, data []byte) {
	w.status, w.body = status, data
}

// writeNoContent answers 204: no body, and a Content-Type all the same,
// as every reply of this server has one.
func writeNoContent(w *response) {
	w.status, w.body = http1.StatusNoContent, nil
}

func (s *Server) handlePing(w *response, _ input) error {
	writeBody(w, http1.StatusOK, s.ping)
	return nil
}

func (s *Server) handleInfo(w *response, _ input) error {
	info, err := s.backend.Info()
	if err != nil {
		return err
	}
	return writeJSON(w, info)
}

// create and resize are the backend calls behind vm.create and vm.resize.
func (s *Server) create(cfg config.VM) error        { return s.backend.Create(cfg) }
func (s *Server) resize(req vm.ResizeRequest) error { return s.backend.Resize(s.ctx, req) }

// resizeZone answers vm.resize-zone: vmm has no memory zones (vm.create
// refuses memory.zones), so the zone named is never one of the VM's; 404
// without a VM, as every VM route.
func (s *Server) resizeZone(req ResizeZoneRequest) error {
	if _, err := s.backend.Info(); err != nil {
		return err
	}
	return fmt.Errorf("memory zone %q: vmm has no memory zones (memory.zones is not supported yet), so the VM has none to resize: resize its RAM with vm.resize: %w", req.ID, vm.ErrInvalid)
}

// removeDevice is the backend call behind vm.remove-device.
func (s *Server) removeDevice(req RemoveDeviceRequest) error { return s.backend.RemoveDevice(req.ID) }

// addDevice adapts a backend call adding a device of type T (config.Disk,
// config.Net, config.Vsock) to a route handler: the body is the device's
// configuration, as Cloud Hypervisor's; the reply is 200 with the device's
// id and PCI address when it was hot-added to a running VM, 204 when only
// the configuration changed (no VM running).
func addDevice[T any](add func(Backend, T) (*vm.PCIDeviceInfo, error)) func(*Server, *response, input) error {
	return func(s *Server, w *response, in input) error {
		dev, err := decodeDevice[T](in.body)
		if err != nil {
			return err
		}
		return s.added(w)(add(s.backend, dev))
	}
}

// addNet is vm.add-net: addDevice for a net, whose "fds" are the tap
// descriptors passed with the request, as Cloud Hypervisor takes them
// (numbers in the body, which mean nothing in vmm's process, are replaced
// by them; with no descriptor passed they are refused).
func addNet(s *Server, w *response, in input) error {
	n, err := decodeDevice[config.Net](in.body)
	if err != nil {
		return err
	}
	switch {
	case len(in.files) > 0:
		if len(n.FDs) > 0 {
			s.log.Warn("vm.add-net: descriptor numbers in the body replaced by the descriptors passed with the request", "body", n.FDs, "passed", len(in.files))
		}
		n.FDs = make([]int, len(in.files))
		for i, f := range in.files {
			n.FDs[i] = int(f.Fd())
		}
	case len(n.FDs) > 0:
		return badRequest("%v", errFDsInBody)
	}
	return s.added(w)(s.backend.AddNet(n))
}

// decodeDevice decodes a device's configuration, as Cloud Hypervisor's.
func decodeDevice[T any](body []byte) (T, error) {
	var raw json.RawMessage
	if err := decodeStrict(body, &raw); err != nil {
		var zero T
		return zero, err
	}
	dev, err := config.DecodeDevice[T](raw)
	if err != nil {
		return dev, undecodable("request body: %s", describeDecodeError(err))
	}
	return dev, nil
}

// added answers a device added: 200 with its id and address, 204 when
// only the configuration changed.
func (s *Server) added(w *response) func(*vm.PCIDeviceInfo, error) error {
	return func(info *vm.PCIDeviceInfo, err error) error {
		if err != nil {
			return err
		}
		if info == nil {
			writeNoContent(w)
			return nil
		}
		return writeJSON(w, info)
	}
}

// handleShutdownVMM answers 200 with an empty body, as Cloud Hypervisor's
// server does (its document says 204), then asks the process to exit.
func (s *Server) handleShutdownVMM(w *response, _ input) error {
	if s.opts.ShutdownVMM == nil {
		return errors.New("this server was started without a way to stop the VMM")
	}
	writeBody(w, http1.StatusOK, nil)
	w.after = func() { s.shutdownVMMOnce.Do(func() { go s.opts.ShutdownVMM() }) }
	return nil
}

// action adapts a Backend method without arguments to a route handler
// answering 204.
func action(f func(Backend) error) func(*Server, *response, input) error {
	return withBody(func([]byte) (struct{}, error) { return struct{}{}, nil },
		func(s *Server, _ struct{}) error { return f(s.backend) })
}

// withBody adapts a backend call that takes the request body, as decode
// reads it, to a route handler answering 204.
func withBody[T any](decode func([]byte) (T, error), call func(*Server, T) error) func(*Server, *response, input) error {
	return func(s *Server, w *response, in input) error {
		v, err := decode(in.body)
		if err != nil {
			return err
		}
		if err := call(s, v); err != nil {
			return err
		}
		writeNoContent(w)
		return nil
	}
}
