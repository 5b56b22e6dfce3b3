// Package api is vmm's HTTP API: a server on a unix socket that speaks
// Cloud Hypervisor's REST API (paths /api/v1/<name>, JSON bodies, error
// bodies as JSON arrays of strings), and a Go client for it.
//
// The server drives a Backend (the vm.VMM) and maps the kinds of its errors
// to statuses as Cloud Hypervisor's development head does: vm.ErrInvalid
// 400, vm.ErrNoVM 404, vm.ErrConflict 409, vm.ErrBusy 429, anything else
// (vm.ErrState included) 500; vm.ErrNotFound (an unknown device) 404. Error bodies have Cloud Hypervisor's shape
// ("Error from API", what failed, the error chain). The API is described in
// openapi.yaml (OpenAPIDocument).
//
// Server and client speak HTTP/1.1 through package http1, not net/http,
// which with its TLS and certificate code was 40% of the vmm binary.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/config"
)

// Backend is the VM the API drives; vm.VMM implements it. Its methods are
// called from concurrent request goroutines and must be safe for that.
// Errors should wrap vmm's kinds (vm.ErrInvalid, vm.ErrBusy, vm.ErrNoVM,
// vm.ErrState) so that the API can pick the status.
type Backend interface {
	Create(cfg config.VM) error
	Boot() error
	Shutdown() error
	Reboot() error
	Pause() error
	Resume() error
	PowerButton() error
	Resize(ctx context.Context, req vm.ResizeRequest) error
	Info() (vm.Info, error)
	Delete() error
	AddDisk(d config.Disk) (*vm.PCIDeviceInfo, error)
	AddNet(n config.Net) (*vm.PCIDeviceInfo, error)
	AddVsock(v config.Vsock) (*vm.PCIDeviceInfo, error)
	RemoveDevice(id string) error
}

// Defaults of Options.
const (
	// DefaultMaxBodyBytes bounds a request body (1 MiB); a larger one gets
	// 413 Request Entity Too Large.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultReadHeaderTimeout bounds how long a client may take to send
	// its request line and headers.
	DefaultReadHeaderTimeout = 5 * time.Second
	// DefaultReadTimeout bounds how long a client may take to send a whole
	// request, body included.
	DefaultReadTimeout = 30 * time.Second
	// DefaultIdleTimeout is how long a kept-alive connection may sit idle.
	DefaultIdleTimeout = 120 * time.Second
	// DefaultMaxConns bounds the connections open at once; more wait in
	// the socket's backlog until one closes.
	DefaultMaxConns = 128
	// maxHeaderBytes bounds the request line and headers.
	maxHeaderBytes = 64 << 10
)

// Options configure a Server. The zero value is usable.
type Options struct {
	// Version and BuildVersion are reported by vmm.ping; they default to
	// the main module's version and VCS revision.
	Version      string
	BuildVersion string
	// Features is vmm.ping's feature list.
	Features []string
	// ShutdownVMM is called once, on its own goroutine, after a vmm.shutdown
	// request has been answered: it should make the process shut its VM down,
	// close the server and exit. Without it vmm.shutdown fails with 500.
	ShutdownVMM func()
	// Logger receives one line per failed request; slog.Default when nil.
	Logger *slog.Logger
	// MaxBodyBytes, ReadHeaderTimeout, ReadTimeout, IdleTimeout and
	// MaxConns override the defaults above when positive.
	MaxBodyBytes      int64
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	IdleTimeout       time.Duration
	MaxConns          int
}

// Server is an API server listening on a unix socket.
type Server struct {
	backend Backend
	opts    Options
	log     *slog.Logger
	ping    []byte // vm.ping's reply, the same for the server's life
	routes  map[string]route

	sock  *unixSocket
	ln    *limitListener
	conns conns
	// ctx lives as long as the server; backend calls that take a context
	// get it, so a client that hangs up does not cut a resize in half.
	ctx    context.Context
	cancel context.CancelFunc

	done            chan struct{}
	serveErr        error
	shutOnce        sync.Once
	shutdownVMMOnce sync.Once
}

// NewServer creates the API socket at socketPath (mode 0600, replacing a
// stale socket, refusing a path that is not a socket) and serves the API on
// it in the background until Shutdown or Close.
func NewServer(socketPath string, b Backend, opts Options) (*Server, error) {
	return listenAndServe(func() (*unixSocket, error) { return listenUnix(socketPath) }, socketPath, b, opts)
}

// NewServerFD serves the API on fd, a unix socket already listening
// (--api-socket fd=N), until Shutdown or Close, which closes it.
func NewServerFD(fd int, b Backend, opts Options) (*Server, error) {
	return listenAndServe(func() (*unixSocket, error) { return listenFD(fd) }, fmt.Sprintf("fd %d", fd), b, opts)
}

// listenAndServe refuses a nil backend, then serves the API in the
// background on the socket that listen opens; name is the socket's path,
// or what stands for it.
func listenAndServe(listen func() (*unixSocket, error), name string, b Backend, opts Options) (*Server, error) {
	if b == nil {
		return nil, errors.New("api: nil backend")
	}
	sock, err := listen()
	if err != nil {
		return nil, err
	}
	return serveOn(sock, name, b, opts), nil
}

// serveOn serves the API on sock in the background.
func serveOn(sock *unixSocket, socketPath string, b Backend, opts Options) *Server {
	s := newServer(b, opts)
	s.sock = sock
	s.ln = newLimitListener(fdListener{sock}, s.opts.MaxConns)
	go func() {
		defer close(s.done)
		if err := s.accept(s.ln); err != nil {
			s.serveErr = fmt.Errorf("api server on %s: %w", socketPath, err)
		}
	}()
	return s
}

// newServer builds the handler side of a Server, without a socket.
func newServer(b Backend, opts Options) *Server {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.ReadHeaderTimeout <= 0 {
		opts.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = DefaultReadTimeout
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = DefaultMaxConns
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	version, build := buildVersion()
	if opts.Version != "" {
		version = opts.Version
	}
	if opts.BuildVersion != "" {
		build = opts.BuildVersion
	}
	// Strings, a number and a list of strings: encoding cannot fail.
	ping, _ := json.Marshal(PingResponse{
		BuildVersion: build,
		Version:      version,
		Pid:          int64(os.Getpid()),
		Features:     opts.Features,
	})
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		ping:    ping,
		backend: b,
		opts:    opts,
		log:     log,
		routes:  map[string]route{},
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	for _, r := range routes() {
		s.routes[r.name] = r
	}
	return s
}

// buildVersion reads the main module's version and VCS revision.
func buildVersion() (version, build string) {
	version, build = "dev", ""
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return version, build
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		version = v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			build = s.Value
		}
	}
	return version, build
}

// SocketPath is the path of the API socket.
func (s *Server) SocketPath() string { return s.sock.path }

// Done is closed when the server has stopped serving.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err is why the server stopped serving, once Done is closed; nil after
// Shutdown or Close.
func (s *Server) Err() error {
	select {
	case <-s.done:
		return s.serveErr
	default:
		return nil
	}
}

// Shutdown stops accepting, removes the socket, cancels the context of
// backend calls in flight, and waits for open requests to finish until ctx
// is done; then it closes the remaining connections.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.shutOnce.Do(func() {
		s.cancel()
		err = s.ln.Close() // and the socket, removing its file
		<-s.done
		s.conns.close(false)
		if werr := s.conns.wait(ctx); werr != nil {
			s.conns.close(true)
			s.conns.wait(context.Background()) //nolint:errcheck // cannot fail
			err = werr
		}
	})
	if err != nil {
		return fmt.Errorf("api server shutdown: %w", err)
	}
	return nil
}

// Close shuts the server down, giving open requests five seconds.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Shutdown(ctx)
}

// checkBody applies the route's body rule.
func checkBody(rt route, body []byte) error {
	empty := len(bytes.TrimSpace(body)) == 0
	switch {
	case rt.body == bodyNone && !empty:
		return badRequest("%s takes no request body", rt.name)
	case rt.body == bodyJSON && empty:
		return badRequest("%s needs a JSON request body", rt.name)
	}
	return nil
}
