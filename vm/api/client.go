package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/api/http1"
	"github.com/vmmdev/vmm/vm/config"
)

// Client talks to a vmm (or Cloud Hypervisor) API server on a unix socket.
// It is safe for concurrent use; idle connections are kept and reused.
type Client struct {
	socketPath string
	pool       connPool
}

// NewClient returns a client for the API socket at socketPath. Nothing is
// dialled until the first request. Deadlines come from each call's context.
func NewClient(socketPath string) *Client {
	return &Client{socketPath: socketPath}
}

// SocketPath is the API socket the client dials.
func (c *Client) SocketPath() string { return c.socketPath }

// CloseIdleConnections closes the connections the client keeps for reuse.
func (c *Client) CloseIdleConnections() { c.pool.closeIdle() }

// PingResponse is the body of GET vmm.ping, as Cloud Hypervisor's.
type PingResponse struct {
	BuildVersion string   `json:"build_version,omitempty"`
	Version      string   `json:"version"`
	Pid          int64    `json:"pid,omitempty"`
	Features     []string `json:"features,omitempty"`
}

// Summary renders the reply for people: "vmm VERSION (build B), pid P,
// features: F, ...", leaving out what the server did not say.
func (p PingResponse) Summary() string {
	line := "vmm " + p.Version
	if p.BuildVersion != "" {
		line += " (build " + p.BuildVersion + ")"
	}
	if p.Pid != 0 {
		line += fmt.Sprintf(", pid %d", p.Pid)
	}
	if len(p.Features) > 0 {
		line += ", features: " + strings.Join(p.Features, ", ")
	}
	return line
}

// Ping asks the VMM for its version; it works with or without a VM.
func (c *Client) Ping(ctx context.Context) (PingResponse, error) {
	var p PingResponse
	err := c.Call(ctx, http1.MethodGet, RoutePing, nil, &p)
	return p, err
}

// Info returns the VM's configuration and state.
func (c *Client) Info(ctx context.Context) (vm.Info, error) {
	var info vm.Info
	err := c.Call(ctx, http1.MethodGet, RouteInfo, nil, &info)
	return info, err
}

// Resize asks for a new vCPU count and/or RAM size; absent fields are left
// alone.
func (c *Client) Resize(ctx context.Context, req vm.ResizeRequest) error {
	return c.Call(ctx, http1.MethodPut, RouteResize, req, nil)
}

// AddDisk adds a disk (vm.add-disk). On a running VM it answers the
// device's id and PCI address; before boot it only changes the
// configuration and answers nil.
func (c *Client) AddDisk(ctx context.Context, d config.Disk) (*vm.PCIDeviceInfo, error) {
	return c.addDevice(ctx, RouteAddDisk, d)
}

// AddNet adds a virtio-net device on a tap (vm.add-net), as AddDisk.
func (c *Client) AddNet(ctx context.Context, n config.Net) (*vm.PCIDeviceInfo, error) {
	return c.addDevice(ctx, RouteAddNet, n)
}

// AddVsock adds the vsock device (vm.add-vsock), as AddDisk.
func (c *Client) AddVsock(ctx context.Context, v config.Vsock) (*vm.PCIDeviceInfo, error) {
	return c.addDevice(ctx, RouteAddVsock, v)
}

// addDevice sends a device add and decodes its reply: nil for a 204.
func (c *Client) addDevice(ctx context.Context, route string, dev any) (*vm.PCIDeviceInfo, error) {
	var info vm.PCIDeviceInfo
	if err := c.Call(ctx, http1.MethodPut, route, dev, &info); err != nil {
		return nil, err
	}
	if info.ID == "" {
		return nil, nil
	}
	return &info, nil
}

// RemoveDevice removes device id (vm.remove-device).
func (c *Client) RemoveDevice(ctx context.Context, id string) error {
	return c.Call(ctx, http1.MethodPut, RouteRemoveDevice, RemoveDeviceRequest{ID: id}, nil)
}

// Create creates (but does not boot) a VM from cfg. Every field of cfg is
// sent, so start from config.Default rather than a zero VmConfig.
func (c *Client) Create(ctx context.Context, cfg config.VM) error {
	return c.Call(ctx, http1.MethodPut, RouteCreate, cfg, nil)
}

// Boot boots the created VM.
func (c *Client) Boot(ctx context.Context) error { return c.put(ctx, RouteBoot) }

// Shutdown stops the VM; it can be booted again.
func (c *Client) Shutdown(ctx context.Context) error { return c.put(ctx, RouteShutdown) }

// Reboot rebuilds the VM from its current configuration and boots it.
func (c *Client) Reboot(ctx context.Context) error { return c.put(ctx, RouteReboot) }

// Pause stops the VM's vCPUs.
func (c *Client) Pause(ctx context.Context) error { return c.put(ctx, RoutePause) }

// Resume restarts the vCPUs of a paused VM.
func (c *Client) Resume(ctx context.Context) error { return c.put(ctx, RouteResume) }

// PowerButton presses the VM's ACPI power button.
func (c *Client) PowerButton(ctx context.Context) error { return c.put(ctx, RoutePowerButton) }

// Delete deletes the VM; a new one may then be created.
func (c *Client) Delete(ctx context.Context) error { return c.put(ctx, RouteDelete) }

// ShutdownVMM asks the VMM process to exit.
func (c *Client) ShutdownVMM(ctx context.Context) error { return c.put(ctx, RouteShutdownVMM) }

// put sends a body-less PUT to route, the request of every VM action.
func (c *Client) put(ctx context.Context, route string) error {
	return c.Call(ctx, http1.MethodPut, route, nil, nil)
}

// Call sends one request to /api/v1/<route> and decodes a 2xx reply's body
// into out (when out is not nil). body is sent as is when it is a []byte or
// json.RawMessage, JSON-encoded otherwise, and omitted when nil. A non-2xx
// reply is returned as an *APIError.
func (c *Client) Call(ctx context.Context, method, route string, body, out any) error {
	var data []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		data = b
	case json.RawMessage:
		data = b
	default:
		var err error
		if data, err = json.Marshal(body); err != nil {
			return fmt.Errorf("%s: encode request: %w", route, err)
		}
	}
	status, reply, err := c.Do(ctx, method, route, data)
	if err != nil {
		return err
	}
	if !Succeeded(status) {
		return ReplyError(status, reply)
	}
	if out != nil && len(bytes.TrimSpace(reply)) > 0 {
		if err := json.Unmarshal(reply, out); err != nil {
			return fmt.Errorf("%s: decode reply: %w", route, err)
		}
	}
	return nil
}

// Do sends one raw request, method to /api/v1/<route> with body (none when
// nil, JSON otherwise), and returns the reply's status and body whatever the
// status: only failing to get a reply is an error. It is for requests the
// typed methods cannot make, such as malformed ones; ReplyError reads an
// error reply.
func (c *Client) Do(ctx context.Context, method, route string, body []byte) (status int, reply []byte, err error) {
	wire := requestBytes(method, route, body)
	for {
		cc, reused, err := c.pool.get(ctx, c.socketPath)
		if err != nil {
			return 0, nil, fmt.Errorf("%s %s via %s: %w", method, route, c.socketPath, err)
		}
		rep, replied, err := cc.roundTrip(ctx, method, func() error {
			_, err := cc.Write(wire)
			return err
		})
		if err == nil {
			c.pool.put(cc, rep.Close)
			return rep.Status, rep.Body, nil
		}
		cc.Close()
		// A kept connection that the server closed while it sat idle
		// ends before any reply: the request never reached a handler,
		// and goes again on a new connection, as net/http does.
		if reused && !replied && ctx.Err() == nil {
			continue
		}
		return 0, nil, fmt.Errorf("%s %s via %s: %w", method, route, c.socketPath, err)
	}
}

// requestBytes is the request method to /api/v1/<route> with body, as
// sent: a PUT without a body says so with a zero Content-Length.
func requestBytes(method, route string, body []byte) []byte {
	fields := []http1.Field{{Name: "Host", Value: "localhost"}, {Name: "Accept", Value: "application/json"}}
	if body != nil {
		fields = append(fields, http1.Field{Name: "Content-Type", Value: "application/json"})
	} else if method != http1.MethodGet {
		body = []byte{}
	}
	return http1.AppendRequest(nil, method, Prefix+route, fields, body)
}
