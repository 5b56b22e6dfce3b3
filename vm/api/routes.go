package api

import "net/http"

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
// failure is called in the error body's outermost message, and the handler.
type route struct {
	name    string
	method  string
	body    bodyRule
	failure string
	handle  func(s *Server, w http.ResponseWriter, body []byte) error
}

// routes is the table the server dispatches on and the OpenAPI parity test
// compares with openapi.yaml.
func routes() []route {
	return []route{
		{RoutePing, http.MethodGet, bodyIgnored, "The VMM could not be pinged", (*Server).handlePing},
		{RouteShutdownVMM, http.MethodPut, bodyNone, "The VMM could not be shut down", (*Server).handleShutdownVMM},
		{RouteInfo, http.MethodGet, bodyIgnored, "The VM information could not be retrieved", (*Server).handleInfo},
		{RouteCreate, http.MethodPut, bodyJSON, "The VM could not be created", (*Server).handleCreate},
		{RouteBoot, http.MethodPut, bodyNone, "The VM could not boot", action(Backend.Boot)},
		{RouteDelete, http.MethodPut, bodyNone, "The VM could not be deleted", action(Backend.Delete)},
		{RouteShutdown, http.MethodPut, bodyNone, "The VM could not be shut down", action(Backend.Shutdown)},
		{RouteReboot, http.MethodPut, bodyNone, "The VM could not reboot", action(Backend.Reboot)},
		{RoutePause, http.MethodPut, bodyNone, "The VM could not be paused", action(Backend.Pause)},
		{RouteResume, http.MethodPut, bodyNone, "The VM could not be resumed", action(Backend.Resume)},
		{RoutePowerButton, http.MethodPut, bodyNone, "The power button could not be pressed", action(Backend.PowerButton)},
		{RouteResize, http.MethodPut, bodyJSON, "The VM could not be resized", (*Server).handleResize},
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
