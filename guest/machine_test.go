package guest

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/api"
	"github.com/vmmdev/vmm/vm/config"
)

// The test binary doubles as a fake vmm: with fakeVmmEnv set it parses the
// vmm's command line, serves a small API on --api-socket, and puts a local
// busybox shell on its stdin/stdout after printing the ready marker, which
// is enough to test Machine without a VM.
const (
	fakeVmmEnv = "GUEST_TEST_FAKE_VMM"
	// fakeVmmMode selects a misbehaviour: "exit3" exits at once with status
	// 3; "stubborn" ignores SIGTERM and vmm.shutdown.
	fakeVmmMode = "GUEST_TEST_FAKE_VMM_MODE"
)

func TestMain(m *testing.M) {
	if os.Getenv(fakeVmmEnv) == "1" {
		os.Exit(runFakeVmm(os.Args[1:]))
	}
	os.Exit(m.Run())
}

type fakeVmm struct {
	mu    sync.Mutex
	shell *exec.Cmd
	cfg   config.VM
}

func runFakeVmm(args []string) int {
	fs := flag.NewFlagSet("fake-vmm", flag.ContinueOnError)
	kernel := fs.String("kernel", "", "")
	initramfs := fs.String("initramfs", "", "")
	cmdline := fs.String("cmdline", "", "")
	cpus := fs.String("cpus", "", "")
	memory := fs.String("memory", "", "")
	serial := fs.String("serial", "", "")
	socket := fs.String("api-socket", "", "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	mode := os.Getenv(fakeVmmMode)
	if mode == "exit3" {
		fmt.Fprintln(os.Stderr, "fake vmm: failing on purpose")
		return 3
	}
	if mode == "stubborn" {
		signal.Ignore(syscall.SIGTERM)
	}
	fmt.Fprintf(os.Stderr, "fake vmm: serial=%s\n", *serial)
	f := &fakeVmm{}
	f.cfg.Payload = config.Payload{Kernel: *kernel, Initramfs: *initramfs, Cmdline: *cmdline}
	var err error
	if f.cfg.CPUs, err = config.ParseCPUs(*cpus); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if f.cfg.Memory, err = config.ParseMemory(*memory); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("unix", *socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	quit := make(chan struct{})
	var once sync.Once
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/vmm.ping", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(api.PingResponse{Version: "fake", Pid: int64(os.Getpid())})
	})
	mux.HandleFunc("GET /api/v1/vm.info", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(vm.Info{Config: f.cfg, State: vm.StateRunning, MemoryActualSize: f.cfg.Memory.Size})
	})
	mux.HandleFunc("PUT /api/v1/vm.resize", func(w http.ResponseWriter, r *http.Request) {
		var req vm.ResizeRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode([]string{"bad body", err.Error()})
			return
		}
		if req.DesiredVCPUs != nil && *req.DesiredVCPUs < 1 {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode([]string{"The VM could not be resized", "desired_vcpus must be at least 1"})
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /api/v1/vm.reboot", func(w http.ResponseWriter, _ *http.Request) {
		f.killShell()
		go f.boot()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /api/v1/vmm.shutdown", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
		if mode != "stubborn" {
			once.Do(func() { close(quit) })
		}
	})
	go func() { _ = http.Serve(ln, mux) }()
	go f.boot()
	term := make(chan os.Signal, 1)
	if mode != "stubborn" {
		signal.Notify(term, syscall.SIGTERM)
	}
	select {
	case <-quit:
	case <-term:
	}
	f.killShell()
	ln.Close()
	return 0
}

// boot prints the ready marker and starts a shell on the fake's console.
func (f *fakeVmm) boot() {
	time.Sleep(50 * time.Millisecond)
	fmt.Fprintln(os.Stdout, ReadyMarker)
	cmd := exec.Command(busyboxPath, "sh", "-i")
	cmd.Env = shellEnv()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stdout
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	f.shell = cmd
}

func (f *fakeVmm) killShell() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.shell != nil {
		_ = f.shell.Process.Kill()
		_ = f.shell.Wait()
		f.shell = nil
	}
}

// startFake starts a Machine on the fake vmm in mode.
func startFake(t *testing.T, mode string, cfg config.VM, opts Options) (*Machine, error) {
	t.Helper()
	requireBusybox(t)
	t.Setenv(fakeVmmEnv, "1")
	t.Setenv(fakeVmmMode, mode)
	dir := t.TempDir()
	for _, p := range []*string{&cfg.Payload.Kernel, &cfg.Payload.Initramfs} {
		if *p == "" {
			*p = filepath.Join(dir, fmt.Sprintf("image%p", p))
			if err := os.WriteFile(*p, []byte("not an image"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	opts.Binary = exe
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := Start(ctx, cfg, opts)
	if m != nil {
		t.Cleanup(func() { _ = m.Stop() })
	}
	return m, err
}

func testConfig() config.VM {
	cfg := config.Default()
	cfg.CPUs = config.CPUs{BootVCPUs: 4, MaxVCPUs: 8}
	cfg.Memory = config.Memory{Size: 1 << 30, HotplugSize: 8 << 30}
	return cfg
}

// processGroupGone reports whether no live process is left in group pgid,
// giving killed processes a moment to exit. Zombies do not count: the
// fake's shell, killed with it, is reaped by whatever init this machine has,
// which may be slow to do it or never do it.
func processGroupGone(pgid int) bool {
	for range 40 {
		if liveInGroup(pgid) == 0 {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// liveInGroup counts the processes of group pgid that are not zombies,
// from /proc/PID/stat ("pid (comm) state ppid pgrp ...").
func liveInGroup(pgid int) int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	n := 0
	for _, p := range stats {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) >= 3 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			n++
		}
	}
	return n
}

func TestMachineWithFakeVmmRunsCommandsAndAPI(t *testing.T) {
	var log strings.Builder
	var logMu sync.Mutex
	m, err := startFake(t, "", testConfig(), Options{Name: "fake", ConsoleLog: lockedWriter{&logMu, &log}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if err := m.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	out, status, err := m.Sh(ctx, "echo hello; (exit 4)")
	if err != nil || out != "hello" || status != 4 {
		t.Fatalf("Sh = %q, %d, %v; want hello, 4, nil", out, status, err)
	}
	info, err := m.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := info.Config.CPUs; c.BootVCPUs != 4 || c.MaxVCPUs != 8 || info.Config.Memory.HotplugSize != 8<<30 {
		t.Errorf("the vmm got cpus %+v, memory %+v from the flags", info.Config.CPUs, info.Config.Memory)
	}
	if info.Config.Payload.Cmdline != DefaultCmdline {
		t.Errorf("cmdline = %q, want the default %q", info.Config.Payload.Cmdline, DefaultCmdline)
	}
	status, body, err := m.Request(ctx, http.MethodPut, api.RouteResize, []byte(`{"desired_vcpus":0}`))
	if err != nil || status != http.StatusBadRequest || !strings.Contains(string(body), "at least 1") {
		t.Errorf("Request(resize to 0) = %d, %s, %v; want 400 with the message", status, body, err)
	}
	if err := m.Resize(ctx, vm.ResizeRequest{DesiredVCPUs: new(int64(8))}); err != nil {
		t.Errorf("Resize(8): %v", err)
	}
	// The CPU and memory views parse what this machine's kernel reports.
	cpus, err := m.CPUs(ctx)
	if err != nil || len(cpus.Online) == 0 || len(cpus.Present) == 0 {
		t.Errorf("CPUs = %+v, %v", cpus, err)
	}
	if mem, err := m.MemTotal(ctx); err != nil || mem == 0 {
		t.Errorf("MemTotal = %d, %v", mem, err)
	}
	if got, err := m.WaitFor(ctx, regexp.MustCompile(`hel+o`)); err != nil || got != "hello" {
		t.Errorf("WaitFor(hel+o) = %q, %v", got, err)
	}

	// A reboot through the API: the next WaitReady waits for the second
	// marker, and commands reach the new shell.
	if _, _, err := m.Sh(ctx, "X=before"); err != nil {
		t.Fatal(err)
	}
	if err := m.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if n := m.Console().CountLinesEndingWith(ReadyMarker); n != 2 {
		t.Errorf("ready markers after a reboot = %d, want 2", n)
	}
	if out, _, err := m.Sh(ctx, "echo X=$X"); err != nil || out != "X=" {
		t.Errorf("after the reboot: %q, %v; want a fresh shell", out, err)
	}

	pid := m.Pid()
	if err := m.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if code, err := m.Wait(ctx); err != nil || code != 0 {
		t.Errorf("Wait = %d, %v; want 0", code, err)
	}
	if !processGroupGone(pid) {
		t.Errorf("processes of group %d survived Stop", pid)
	}
	if _, err := os.Stat(m.SocketPath()); !os.IsNotExist(err) {
		t.Errorf("the API socket's directory survived Stop: %v", err)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(log.String(), ReadyMarker) || strings.Contains(log.String(), "\x1b") {
		t.Errorf("console log lacks the marker or keeps escapes: %q", log.String())
	}
}

func TestMachineWithFakeVmmReportsAnEarlyExit(t *testing.T) {
	_, err := startFake(t, "exit3", testConfig(), Options{})
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "failing on purpose") {
		t.Fatalf("Start error = %v; want the exit status and the vmm's log", err)
	}
}

func TestMachineWithFakeVmmKillsAStubbornVmm(t *testing.T) {
	m, err := startFake(t, "stubborn", testConfig(), Options{StopTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	pid := m.Pid()
	start := time.Now()
	err = m.Stop()
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Stop = %v; want an error saying the vmm had to be killed", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Stop took %v", d)
	}
	if !processGroupGone(pid) {
		t.Errorf("processes of group %d survived Stop", pid)
	}
	if code, _ := m.Wait(context.Background()); code != -1 {
		t.Errorf("exit status = %d, want -1 (killed)", code)
	}
	if m.Stop() == nil {
		t.Error("a second Stop forgot the first one's result")
	}
}

func TestMachineWithFakeVmmFailsCommandsOnceTheVmmIsGone(t *testing.T) {
	m, err := startFake(t, "", testConfig(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := m.Sh(ctx, "echo never"); err == nil || ctx.Err() != nil {
		t.Errorf("Sh after Stop = %v; want a prompt error", err)
	}
}

func TestStartRefusesAMissingKernelOrASerialNotOnTty(t *testing.T) {
	cfg := testConfig()
	cfg.Payload.Kernel = filepath.Join(t.TempDir(), "missing")
	cfg.Payload.Initramfs = cfg.Payload.Kernel
	if _, err := Start(context.Background(), cfg, Options{Binary: "/bin/true"}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Start with a missing kernel: %v", err)
	}
	cfg = testConfig()
	cfg.Payload.Kernel, cfg.Payload.Initramfs = "/bin/true", "/bin/true"
	cfg.Serial = config.Serial{Mode: config.ModeOff}
	if _, err := Start(context.Background(), cfg, Options{Binary: "/bin/true"}); err == nil || !strings.Contains(err.Error(), "tty") {
		t.Errorf("Start with serial off: %v", err)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestMachineWithFakeVmmFailsACommandWhenTheGuestRebootsByItself(t *testing.T) {
	m, err := startFake(t, "", testConfig(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		// A raw request: Machine does not expect this boot.
		_, _, _ = m.Request(ctx, http.MethodPut, api.RouteReboot, nil)
	}()
	start := time.Now()
	_, _, err = m.Sh(ctx, "read line")
	if !errors.Is(err, ErrGuestRebooted) {
		t.Fatalf("Sh across an unasked reboot = %v, want ErrGuestRebooted", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Sh took %v to notice", d)
	}
	// Later commands go to the new boot.
	if out, _, err := m.Sh(ctx, "echo again"); err != nil || out != "again" {
		t.Errorf("Sh after the reboot = %q, %v", out, err)
	}
}
