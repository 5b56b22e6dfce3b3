package lua

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/vmmdev/vmm/guest"
	"github.com/vmmdev/vmm/vm/config"
)

// fakeVM is a VM without a vmm: canned guest answers and API replies, and a
// record of what the script asked for.
type fakeVM struct {
	name    string
	cfg     config.VM
	cpus    guest.CPUs
	mem     uint64
	console string
	vmmLog  string
	// replies maps "METHOD route" to a status and body.
	replies  map[string]fakeReply
	shOut    map[string]fakeSh
	stopErr  error
	shBlocks bool   // Sh waits for its context to end
	emuFault string // what Diagnose returns

	mu       sync.Mutex
	requests []string
	commands []string
	reboots  []string
	stops    int
	waitFrom int
}

type fakeReply struct {
	status int
	body   string
}

type fakeSh struct {
	out    string
	status int
}

func newFakeVM(name string, cfg config.VM) *fakeVM {
	return &fakeVM{
		name:    name,
		cfg:     cfg,
		cpus:    guest.CPUs{Online: []int{0, 1, 2, 3}, Offline: []int{4, 5, 6, 7}, Present: []int{0, 1, 2, 3}},
		mem:     1 << 30,
		console: "boot\nVMM-GUEST-READY\n# ",
		replies: map[string]fakeReply{
			"GET vm.info":    {200, `{"config":{"cpus":{"boot_vcpus":4,"max_vcpus":8}},"state":"Running","memory_actual_size":1073741824}`},
			"GET vmm.ping":   {200, `{"version":"fake"}`},
			"PUT vm.resize":  {204, ""},
			"PUT vm.reboot":  {204, ""},
			"PUT vmm.create": {404, `["not found"]`},
		},
		shOut: map[string]fakeSh{"nproc": {"4", 0}, "false": {"", 1}},
	}
}

func (f *fakeVM) Pid() int                            { return 4242 }
func (f *fakeVM) WaitReady(ctx context.Context) error { return ctx.Err() }
func (f *fakeVM) ConsoleText() string                 { return f.console }
func (f *fakeVM) VmmLog() string                      { return f.vmmLog }

func (f *fakeVM) WaitFor(ctx context.Context, re *regexp.Regexp) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	loc := re.FindStringIndex(f.console[f.waitFrom:])
	if loc == nil {
		<-ctx.Done()
		return "", fmt.Errorf("waiting for /%s/: %w", re, ctx.Err())
	}
	m := f.console[f.waitFrom+loc[0] : f.waitFrom+loc[1]]
	f.waitFrom += loc[1]
	return m, nil
}

func (f *fakeVM) Sh(ctx context.Context, cmd string) (string, int, error) {
	f.mu.Lock()
	f.commands = append(f.commands, cmd)
	f.mu.Unlock()
	if f.shBlocks {
		<-ctx.Done()
		return "", 0, fmt.Errorf("guest command %q: %w", cmd, ctx.Err())
	}
	if r, ok := f.shOut[cmd]; ok {
		return r.out, r.status, nil
	}
	return "", 127, nil
}

func (f *fakeVM) Request(_ context.Context, method, route string, body []byte) (int, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, strings.TrimSpace(method+" "+route+" "+string(body)))
	r, ok := f.replies[method+" "+route]
	if !ok {
		return http.StatusNotFound, []byte(`["Not found"]`), nil
	}
	return r.status, []byte(r.body), nil
}

func (f *fakeVM) Reboot(context.Context) error { f.reboots = append(f.reboots, "api"); return nil }
func (f *fakeVM) RebootFromGuest(context.Context) error {
	f.reboots = append(f.reboots, "guest")
	return nil
}
func (f *fakeVM) Shutdown(context.Context) error {
	f.reboots = append(f.reboots, "shutdown")
	return nil
}
func (f *fakeVM) PowerOffFromGuest(context.Context) error {
	f.reboots = append(f.reboots, "poweroff")
	return nil
}
func (f *fakeVM) CPUs(context.Context) (guest.CPUs, error) { return f.cpus, nil }
func (f *fakeVM) MemTotal(context.Context) (uint64, error) { return f.mem, nil }
func (f *fakeVM) Wait(context.Context) (int, error)        { return 0, nil }

func (f *fakeVM) Diagnose() string { return f.emuFault }

func (f *fakeVM) Stop() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stops++
	return f.stopErr
}

// fakeLauncher starts fakeVMs and remembers them.
type fakeLauncher struct {
	mu      sync.Mutex
	vms     []*fakeVM
	fail    error
	prepare func(*fakeVM)
}

func (l *fakeLauncher) Launch(_ context.Context, name string, cfg config.VM) (VM, error) {
	if l.fail != nil {
		return nil, l.fail
	}
	vm := newFakeVM(name, cfg)
	if l.prepare != nil {
		l.prepare(vm)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.vms = append(l.vms, vm)
	return vm, nil
}

// recordingReporter keeps the events of a run as text lines.
type recordingReporter struct {
	events []string
}

func (r *recordingReporter) ScriptStarted(s string) { r.events = append(r.events, "start "+s) }
func (r *recordingReporter) StepStarted(_ string, p []string) {
	r.events = append(r.events, "step "+strings.Join(p, " > "))
}
func (r *recordingReporter) StepFinished(_ string, s StepResult) {
	v := "ok"
	if s.Err != nil {
		v = "FAIL"
	}
	r.events = append(r.events, v+" "+s.Name())
}
func (r *recordingReporter) Note(_ string, n Note) {
	if n.Kind == NoteSay {
		r.events = append(r.events, "say "+n.Text)
	}
}
func (r *recordingReporter) ScriptFinished(res *Result) {
	v := "PASS"
	if !res.Passed() {
		v = "FAIL"
	}
	r.events = append(r.events, v+" "+res.Script)
}

// writeScript writes a script into a temporary directory and returns its
// path.
func writeScript(t *testing.T, name, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// runScript runs src with a fake launcher.
func runScript(t *testing.T, src string) (*Result, *fakeLauncher, *recordingReporter) {
	t.Helper()
	l := &fakeLauncher{}
	rep := &recordingReporter{}
	r := &Runner{Launcher: l, Reporter: rep}
	res := r.RunFile(context.Background(), writeScript(t, "test.lua", src))
	return res, l, rep
}

// scriptErr returns the run's *ScriptError, failing the test if it passed.
func scriptErr(t *testing.T, res *Result) *ScriptError {
	t.Helper()
	if res.Err == nil {
		t.Fatal("the script passed, want a failure")
	}
	var se *ScriptError
	if !errors.As(res.Err, &se) {
		t.Fatalf("error %T %v is not a *ScriptError", res.Err, res.Err)
	}
	return se
}
