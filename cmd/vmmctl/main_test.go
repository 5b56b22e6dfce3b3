package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/api"
	"github.com/vmmdev/vmm/vm/config"
)

// fakeVM is an api.Backend recording calls; the tests below run vmmctl
// against a real API server over a unix socket with it behind.
type fakeVM struct {
	mu      sync.Mutex
	calls   []string
	fail    map[string]error
	resize  vm.ResizeRequest
	created config.VM
	added   []any // devices added, ids removed
}

func (f *fakeVM) rec(m string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, m)
	return f.fail[m]
}

func (f *fakeVM) Create(cfg config.VM) error {
	f.mu.Lock()
	f.created = cfg
	f.mu.Unlock()
	return f.rec("Create")
}
func (f *fakeVM) Boot() error        { return f.rec("Boot") }
func (f *fakeVM) Shutdown() error    { return f.rec("Shutdown") }
func (f *fakeVM) Reboot() error      { return f.rec("Reboot") }
func (f *fakeVM) Pause() error       { return f.rec("Pause") }
func (f *fakeVM) Resume() error      { return f.rec("Resume") }
func (f *fakeVM) PowerButton() error { return f.rec("PowerButton") }
func (f *fakeVM) Delete() error      { return f.rec("Delete") }
func (f *fakeVM) Resize(_ context.Context, req vm.ResizeRequest) error {
	f.mu.Lock()
	f.resize = req
	f.mu.Unlock()
	return f.rec("Resize")
}
func (f *fakeVM) AddDisk(d config.Disk) (*vm.PCIDeviceInfo, error) {
	f.mu.Lock()
	f.added = append(f.added, d)
	f.mu.Unlock()
	return &vm.PCIDeviceInfo{ID: "_disk1", BDF: "0000:00:05.0"}, f.rec("AddDisk")
}
func (f *fakeVM) AddNet(n config.Net) (*vm.PCIDeviceInfo, error) {
	f.mu.Lock()
	f.added = append(f.added, n)
	f.mu.Unlock()
	return nil, f.rec("AddNet")
}
func (f *fakeVM) AddVsock(v config.Vsock) (*vm.PCIDeviceInfo, error) {
	f.mu.Lock()
	f.added = append(f.added, v)
	f.mu.Unlock()
	return &vm.PCIDeviceInfo{ID: "_vsock2", BDF: "0000:00:06.0"}, f.rec("AddVsock")
}
func (f *fakeVM) RemoveDevice(id string) error {
	f.mu.Lock()
	f.added = append(f.added, id)
	f.mu.Unlock()
	return f.rec("RemoveDevice")
}
func (f *fakeVM) Info() (vm.Info, error) {
	if err := f.rec("Info"); err != nil {
		return vm.Info{}, err
	}
	cfg := config.Default()
	cfg.Payload = config.Payload{Kernel: "/boot/bzImage", Cmdline: "console=ttyS0"}
	cfg.CPUs = config.CPUs{BootVCPUs: 4, MaxVCPUs: 8}
	cfg.Memory = config.Memory{Size: 1 << 30, HotplugSize: 8 << 30}
	cfg.Disks = []config.Disk{{Path: "disk.img"}}
	return vm.Info{Config: cfg, State: vm.StateRunning, MemoryActualSize: 3 << 30, ActiveVCPUs: 4}, nil
}

// startFake serves a fakeVM on a socket in a short temporary directory.
func startFake(t *testing.T) (*fakeVM, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "ctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	fv := &fakeVM{fail: map[string]error{}}
	sock := filepath.Join(dir, "api.sock")
	s, err := api.NewServer(sock, fv, api.Options{Version: "v9", Logger: slog.New(slog.DiscardHandler), ShutdownVMM: func() {}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return fv, sock
}

// runCtl runs vmmctl with args and returns its exit status and output.
func runCtl(t *testing.T, env map[string]string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut, func(k string) string { return env[k] })
	return code, out.String(), errOut.String()
}

func TestRunMisuseExits2WithUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"--no-such-flag", "ping"},
		{"ping", "extra"},
		{"info", "--bogus"},
		{"resize"},
		{"resize", "--cpus", "0"},
		{"resize", "--cpus", "eight"},
		{"resize", "--memory", "12Q"},
		{"resize", "--memory", "0"},
		{"resize", "--cpus", "2", "more"},
		{"create", "a.json", "b.json"},
		{"create"}, // and nothing on standard input
		{"add-disk"},
		{"add-disk", "pth=/d.img"},
		{"remove-device"},
		{"remove-device", "a", "b"},
		{"--timeout", "-1s", "ping"},
		{"pause", "now"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, out, errOut := runCtl(t, nil, "", args...)
			if code != exitMisuse {
				t.Errorf("exit %d, want 2 (stderr %q)", code, errOut)
			}
			if out != "" {
				t.Errorf("stdout %q on misuse", out)
			}
			if !strings.HasPrefix(errOut, "vmmctl: ") || !strings.Contains(errOut, "usage: vmmctl") {
				t.Errorf("stderr lacks a message and the usage: %q", errOut)
			}
		})
	}
}

func TestRunHelpExits0(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		code, out, _ := runCtl(t, nil, "", args...)
		if code != exitOK || !strings.Contains(out, "usage: vmmctl") || !strings.Contains(out, "shutdown-vmm") {
			t.Errorf("%v: exit %d, stdout %q", args, code, out)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"3221225472", 3221225472, false},
		{"512M", 512 << 20, false},
		{"3G", 3 << 30, false},
		{"4k", 0, true}, // upper case only, as ch-remote
		{"1024K", 1 << 20, false},
		{"0", 0, true},
		{"", 0, true},
		{"-1G", 0, true},
		{"1.5G", 0, true},
		{"12Q", 0, true},
		{"99999999999G", 0, true},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestRunWithFakeBackend_Ping(t *testing.T) {
	_, sock := startFake(t)
	code, out, errOut := runCtl(t, nil, "", "--api-socket", sock, "ping")
	if code != 0 || !strings.HasPrefix(out, "vmm v9") || !strings.Contains(out, fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, _ = runCtl(t, nil, "", "--api-socket", sock, "ping", "--json")
	var p map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &p) != nil || p["version"] != "v9" {
		t.Errorf("--json: exit %d, stdout %q", code, out)
	}
}

func TestRunWithFakeBackend_SocketFromEnvironment(t *testing.T) {
	_, sock := startFake(t)
	code, _, errOut := runCtl(t, map[string]string{socketEnv: sock}, "", "ping")
	if code != 0 {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

func TestRunWithFakeBackend_Info(t *testing.T) {
	_, sock := startFake(t)
	code, out, errOut := runCtl(t, nil, "", "--api-socket", sock, "info")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"state:      Running",
		"vcpus:      4 (boot 4, max 8)",
		"memory:     3 GiB (configured 1 GiB, hotplug 8 GiB)",
		"kernel:     /boot/bzImage",
		"cmdline:    console=ttyS0",
		"disk:       disk.img",
		"serial:     Tty",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("info output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCtl(t, nil, "", "--json", "--api-socket", sock, "info")
	var info vm.Info
	if code != 0 || json.Unmarshal([]byte(out), &info) != nil || info.State != vm.StateRunning || info.Config.CPUs.MaxVCPUs != 8 {
		t.Errorf("--json: exit %d, stdout %q", code, out)
	}
}

func TestRunWithFakeBackend_DeviceHotPlugTakesChRemoteSyntax(t *testing.T) {
	fv, sock := startFake(t)
	code, out, errOut := runCtl(t, nil, "", "--api-socket", sock, "add-disk", "path=/d.img,readonly=on,id=data")
	if code != 0 || !strings.Contains(out, `"bdf": "0000:00:05.0"`) {
		t.Fatalf("add-disk: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if d, ok := fv.added[0].(config.Disk); !ok || d.Path != "/d.img" || !d.Readonly || d.ID != "data" {
		t.Errorf("add-disk sent %+v", fv.added[0])
	}
	code, out, _ = runCtl(t, nil, "", "--api-socket", sock, "add-net", "tap=tap3,mac=52:54:00:00:00:07")
	if n, ok := fv.added[1].(config.Net); code != 0 || out != "" || !ok || n.Tap != "tap3" {
		t.Errorf("add-net: exit %d, stdout %q, sent %+v", code, out, fv.added[1])
	}
	code, _, _ = runCtl(t, nil, "", "--api-socket", sock, "add-vsock", "cid=3,socket=/tmp/v.sock")
	if v, ok := fv.added[2].(config.Vsock); code != 0 || !ok || v.CID != 3 {
		t.Errorf("add-vsock: exit %d, sent %+v", code, fv.added[2])
	}
	code, _, _ = runCtl(t, nil, "", "--api-socket", sock, "remove-device", "data")
	if code != 0 || fv.added[3] != "data" {
		t.Errorf("remove-device: exit %d, sent %v", code, fv.added[3])
	}
}

func TestRunWithFakeBackend_ResizeSendsSizesInBytes(t *testing.T) {
	fv, sock := startFake(t)
	code, out, errOut := runCtl(t, nil, "", "--api-socket", sock, "resize", "--cpus", "8", "--memory", "3G")
	if code != 0 || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	r := fv.resize
	if r.DesiredVCPUs == nil || *r.DesiredVCPUs != 8 || r.DesiredRAM == nil || *r.DesiredRAM != 3<<30 || r.DesiredBalloon != nil {
		t.Errorf("resize request %+v", r)
	}
	code, _, _ = runCtl(t, nil, "", "--api-socket", sock, "resize", "--memory=1073741824")
	if code != 0 || fv.resize.DesiredVCPUs != nil || *fv.resize.DesiredRAM != 1<<30 {
		t.Errorf("memory only: exit %d, request %+v", code, fv.resize)
	}
}

func TestRunWithFakeBackend_CreateSendsTheFile(t *testing.T) {
	fv, sock := startFake(t)
	file := filepath.Join(t.TempDir(), "vm.json")
	if err := os.WriteFile(file, []byte(`{"payload":{"kernel":"/k"},"cpus":{"boot_vcpus":2,"max_vcpus":4}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCtl(t, nil, "", "--api-socket", sock, "create", file); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if fv.created.Payload.Kernel != "/k" || fv.created.CPUs.MaxVCPUs != 4 || fv.created.Memory.Size != 512<<20 {
		t.Errorf("created %+v", fv.created)
	}
	// From stdin, and an unknown field refused by the server with exit 1.
	code, _, errOut := runCtl(t, nil, `{"payload":{"kernel":"/k"},"cpu":{}}`, "--api-socket", sock, "create", "-")
	if code != exitFailed || !strings.Contains(errOut, `unknown field "cpu"`) || !strings.Contains(errOut, "HTTP 400") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCtl(t, nil, "", "--api-socket", sock, "create", filepath.Join(t.TempDir(), "missing.json"))
	if code != exitFailed || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing file: exit %d, stderr %q", code, errOut)
	}
}

func TestRunWithFakeBackend_ActionsCallTheBackend(t *testing.T) {
	fv, sock := startFake(t)
	want := map[string]string{
		"boot": "Boot", "pause": "Pause", "resume": "Resume", "reboot": "Reboot",
		"shutdown": "Shutdown", "power-button": "PowerButton", "delete": "Delete",
	}
	for cmd, method := range want {
		code, out, errOut := runCtl(t, nil, "", "--api-socket", sock, cmd)
		if code != 0 || out != "" || errOut != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", cmd, code, out, errOut)
		}
		if last := fv.calls[len(fv.calls)-1]; last != method {
			t.Errorf("%s called %s, want %s", cmd, last, method)
		}
	}
	if code, _, errOut := runCtl(t, nil, "", "--api-socket", sock, "shutdown-vmm"); code != 0 {
		t.Errorf("shutdown-vmm: exit %d: %s", code, errOut)
	}
}

func TestRunWithFakeBackend_ErrorReplyExits1WithServerMessage(t *testing.T) {
	fv, sock := startFake(t)
	fv.fail["Pause"] = fmt.Errorf("pause: VM is Created: %w", vm.ErrState)
	fv.fail["Resize"] = fmt.Errorf("resize: eject of vCPU 3 pending: %w", vm.ErrBusy)
	fv.fail["Boot"] = fmt.Errorf("boot: %w", vm.ErrNoVM)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"pause"}, "vmmctl: The VM could not be paused: pause: VM is Created: invalid VM state (HTTP 500 Internal Server Error)"},
		{[]string{"resize", "--cpus", "2"}, "eject of vCPU 3 pending: operation in progress (HTTP 429 Too Many Requests)"},
		{[]string{"boot"}, "(HTTP 404 Not Found)"},
	} {
		code, out, errOut := runCtl(t, nil, "", append([]string{"--api-socket", sock}, tc.args...)...)
		if code != exitFailed || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %q", tc.args, code, out, errOut, tc.want)
		}
	}
	code, _, errOut := runCtl(t, nil, "", "--api-socket", sock, "--json", "pause")
	var e struct {
		Status   int      `json:"status"`
		Messages []string `json:"messages"`
	}
	if code != exitFailed || json.Unmarshal([]byte(errOut), &e) != nil || e.Status != 500 || !slices.Contains(e.Messages, "invalid VM state") {
		t.Errorf("--json: exit %d, stderr %q", code, errOut)
	}
}

func TestRunWithoutServerExits1(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	code, _, errOut := runCtl(t, nil, "", "--api-socket", sock, "ping")
	if code != exitFailed || !strings.Contains(errOut, sock) {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}
