package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/config"
)

// fakeBackend is a Backend that records its calls and returns the errors a
// test sets. It stands in for vm.VMM in the unit tests (hence the
// "WithFakeBackend" in their names).
type fakeBackend struct {
	mu      sync.Mutex
	calls   []string
	errs    map[string]error
	created *config.VM
	resized *vm.ResizeRequest
	info    vm.Info
	// added are the devices added, removed the ids removed; addReply is
	// what the adds answer (nil: only the configuration changed).
	added    []any
	removed  []string
	addReply *vm.PCIDeviceInfo
	// netFDs are the inodes of the descriptors each AddNet got, read
	// while the call runs (the server closes them after the request).
	netFDs [][]uint64
	// block, when not nil, makes Resize wait until it is closed or its
	// context is done.
	block chan struct{}
}

func newFakeBackend() *fakeBackend {
	cfg := config.Default()
	cfg.Payload.Kernel = "/boot/bzImage"
	cfg.CPUs = config.CPUs{BootVCPUs: 2, MaxVCPUs: 8}
	cfg.Memory = config.Memory{Size: 1 << 30, HotplugSize: 8 << 30}
	return &fakeBackend{
		errs: map[string]error{},
		info: vm.Info{Config: cfg, State: vm.StateRunning, MemoryActualSize: 1 << 30, ActiveVCPUs: 2},
	}
}

// fail makes method return err.
func (f *fakeBackend) fail(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[method] = err
}

func (f *fakeBackend) record(method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, method)
	return f.errs[method]
}

// called returns the methods called so far.
func (f *fakeBackend) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeBackend) Create(cfg config.VM) error {
	if err := f.record("Create"); err != nil {
		return err
	}
	f.mu.Lock()
	f.created = &cfg
	f.mu.Unlock()
	return nil
}

func (f *fakeBackend) Boot() error        { return f.record("Boot") }
func (f *fakeBackend) Shutdown() error    { return f.record("Shutdown") }
func (f *fakeBackend) Reboot() error      { return f.record("Reboot") }
func (f *fakeBackend) Pause() error       { return f.record("Pause") }
func (f *fakeBackend) Resume() error      { return f.record("Resume") }
func (f *fakeBackend) PowerButton() error { return f.record("PowerButton") }
func (f *fakeBackend) Delete() error      { return f.record("Delete") }

func (f *fakeBackend) Resize(ctx context.Context, req vm.ResizeRequest) error {
	if err := f.record("Resize"); err != nil {
		return err
	}
	f.mu.Lock()
	f.resized = &req
	block := f.block
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return fmt.Errorf("resize: %w", ctx.Err())
		}
	}
	return nil
}

// add records a device add.
func (f *fakeBackend) add(method string, dev any) (*vm.PCIDeviceInfo, error) {
	if err := f.record(method); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.added = append(f.added, dev)
	return f.addReply, nil
}

func (f *fakeBackend) AddDisk(d config.Disk) (*vm.PCIDeviceInfo, error) { return f.add("AddDisk", d) }
func (f *fakeBackend) AddNet(n config.Net) (*vm.PCIDeviceInfo, error) {
	var inodes []uint64
	for _, fd := range n.FDs {
		var st syscall.Stat_t
		if err := syscall.Fstat(fd, &st); err != nil {
			return nil, fmt.Errorf("fd %d: %w", fd, err)
		}
		inodes = append(inodes, st.Ino)
	}
	f.mu.Lock()
	f.netFDs = append(f.netFDs, inodes)
	f.mu.Unlock()
	return f.add("AddNet", n)
}
func (f *fakeBackend) AddVsock(v config.Vsock) (*vm.PCIDeviceInfo, error) {
	return f.add("AddVsock", v)
}

func (f *fakeBackend) RemoveDevice(id string) error {
	if err := f.record("RemoveDevice"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, id)
	return nil
}

func (f *fakeBackend) Info() (vm.Info, error) {
	if err := f.record("Info"); err != nil {
		return vm.Info{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.info, nil
}

// shortTempDir is a fresh directory with a short path: a unix socket path
// must fit in 108 bytes, and t.TempDir's paths grow with the test name.
func shortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "api")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startFakeServer serves a fakeBackend on a socket in a fresh directory.
func startFakeServer(t testing.TB, opts Options) (*Server, *fakeBackend) {
	t.Helper()
	fb := newFakeBackend()
	if opts.Logger == nil {
		opts.Logger = discardLogger()
	}
	s, err := NewServer(filepath.Join(shortTempDir(t), "api.sock"), fb, opts)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, fb
}

// reply is a raw HTTP reply.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// messages decodes an error body, failing the test if it is not a JSON
// array of strings.
func (r reply) messages(t testing.TB) []string {
	t.Helper()
	var msgs []string
	if err := json.Unmarshal(r.body, &msgs); err != nil {
		t.Fatalf("error body %q is not a JSON array of strings: %v", r.body, err)
	}
	return msgs
}

// rawClient is an http.Client dialling socket, one request per connection.
func rawClient(socket string) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", socket)
			},
		},
	}
}

// do sends one request to path (a full URL path) and returns the reply.
func do(t testing.TB, socket, method, path string, body []byte) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://localhost"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rawClient(socket).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: data}
}
