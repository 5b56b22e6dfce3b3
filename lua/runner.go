package lua

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	glua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"

	"github.com/vmmdev/vmm/guest"
)

// Default bounds of what a script waits for (see Timeouts). They are
// generous because the KVM host runs under emulation.
const (
	DefaultBootTimeout    = 2 * time.Minute
	DefaultCommandTimeout = 2 * time.Minute
	DefaultAPITimeout     = 30 * time.Second
	DefaultWaitForTimeout = time.Minute
)

// consoleTailLines is how much of each VM's console a Result keeps.
const consoleTailLines = 40

// Timeouts bound what a script waits for. Zero fields take the defaults;
// scripts may pass their own timeout to the calls that wait.
type Timeouts struct {
	// Boot bounds vmm.start up to the guest's ready marker, and each
	// reboot up to the next one.
	Boot time.Duration
	// Command bounds one guest command.
	Command time.Duration
	// API bounds one API request.
	API time.Duration
	// WaitFor bounds wait_for when the script gives no timeout.
	WaitFor time.Duration
}

func (t Timeouts) withDefaults() Timeouts {
	for _, f := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&t.Boot, DefaultBootTimeout}, {&t.Command, DefaultCommandTimeout}, {&t.API, DefaultAPITimeout}, {&t.WaitFor, DefaultWaitForTimeout}} {
		if *f.v <= 0 {
			*f.v = f.def
		}
	}
	return t
}

// Runner runs scenario scripts. Each script gets its own Lua state, runs on
// the calling goroutine, and has every VM it started stopped when it ends,
// fails or is interrupted (ctx cancelled).
type Runner struct {
	// Launcher starts the VMs; GuestLauncher{} runs the real vmm.
	Launcher Launcher
	// Reporter, when not nil, hears about scripts, steps and notes as they
	// happen.
	Reporter Reporter
	// Timeouts bound the waits.
	Timeouts Timeouts
	// NoAgent makes vmm.start leave the vsock device out unless a script
	// asks for it (vsock = true): guest commands then go to the serial
	// console, as before the agent.
	NoAgent bool
}

// Result is the outcome of one script.
type Result struct {
	// Script is the path the script was run from.
	Script string
	// Err is nil when the script passed, else a *ScriptError.
	Err error
	// Steps are the steps that ran, in the order they started.
	Steps []StepResult
	// VMs are the VMs the script started.
	VMs []VMRecord
	// Cleanup holds the errors of stopping the VMs. When the script itself
	// passed, they also make Err.
	Cleanup []error
	// Start and Duration time the script.
	Start    time.Time
	Duration time.Duration
}

// Passed reports whether the script passed.
func (r *Result) Passed() bool { return r.Err == nil }

// StepResult is one step of a script.
type StepResult struct {
	// Path is the step's name after the names of the steps around it.
	Path []string
	// Err is nil when the step passed, else a *ScriptError.
	Err error
	// Duration is how long the step ran.
	Duration time.Duration
	// done is false while the step runs.
	done bool
}

// Name is the step's path joined with " > ".
func (s StepResult) Name() string { return strings.Join(s.Path, " > ") }

// VMRecord is what a Result keeps of a VM.
type VMRecord struct {
	// Name is the VM's name in the script.
	Name string
	// Pid is the vmm's process id.
	Pid int
	// ConsoleTail is the end of the VM's console when the script ended.
	ConsoleTail string
}

// ScriptError is why a script failed: where, in which step, and what.
type ScriptError struct {
	// Script is the script that failed.
	Script string
	// File and Line are where the error was raised, when known: the
	// script, or a file it loaded. Line is 0 when unknown.
	File string
	Line int
	// Step is the innermost step that was running, if any.
	Step []string
	// Message says what went wrong, without the location.
	Message string
	// Trace is the Lua stack traceback, when there is one.
	Trace string
}

// Error renders "file:line: in step "a > b": message".
func (e *ScriptError) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		fmt.Fprintf(&b, "%s: ", e.File)
	case e.Script != "":
		fmt.Fprintf(&b, "%s: ", e.Script)
	}
	if len(e.Step) > 0 {
		fmt.Fprintf(&b, "in step %q: ", strings.Join(e.Step, " > "))
	}
	b.WriteString(e.Message)
	return b.String()
}

// RunFiles runs the scripts one after another. Once ctx ends, the scripts
// left are reported as not run.
func (r *Runner) RunFiles(ctx context.Context, paths []string) []*Result {
	var out []*Result
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			res := &Result{Script: p, Start: time.Now(), Err: &ScriptError{Script: p, Message: "not run: " + context.Cause(ctx).Error()}}
			r.report(func(rep Reporter) { rep.ScriptStarted(p); rep.ScriptFinished(res) })
			out = append(out, res)
			continue
		}
		out = append(out, r.RunFile(ctx, p))
	}
	return out
}

// RunFile runs one script and stops every VM it started.
func (r *Runner) RunFile(ctx context.Context, path string) *Result {
	res := &Result{Script: path, Start: time.Now()}
	r.report(func(rep Reporter) { rep.ScriptStarted(path) })
	rn := newRun(r, path, res)
	defer rn.L.Close()

	err := rn.exec(ctx)
	if se, ok := err.(*ScriptError); ok {
		rn.diagnose(se)
	}
	res.Cleanup = rn.stopAll()
	if rn.tmp != "" {
		if rerr := os.RemoveAll(rn.tmp); rerr != nil {
			res.Cleanup = append(res.Cleanup, rerr)
		}
	}
	if err == nil && len(res.Cleanup) > 0 {
		err = &ScriptError{Script: path, File: path, Message: "cleanup: " + errors.Join(res.Cleanup...).Error()}
	}
	if err != nil {
		res.Err = err
	}
	res.Duration = time.Since(res.Start)
	r.report(func(rep Reporter) { rep.ScriptFinished(res) })
	return res
}

func (r *Runner) report(f func(Reporter)) {
	if r.Reporter != nil {
		f(r.Reporter)
	}
}

// exec loads and runs the script; the error is a *ScriptError.
func (rn *run) exec(ctx context.Context) error {
	fn, err := rn.L.LoadFile(rn.script)
	if err != nil {
		return loadError(rn.script, err)
	}
	rn.L.SetContext(ctx)
	rn.L.Push(fn)
	if err := rn.L.PCall(0, 0, nil); err != nil {
		return rn.scriptError(err)
	}
	return nil
}

// loadError turns a failure to read or compile a script into a
// *ScriptError naming the file and line.
func loadError(script string, err error) *ScriptError {
	se := &ScriptError{Script: script, File: script, Message: err.Error()}
	var ae *glua.ApiError
	if !errors.As(err, &ae) || ae.Cause == nil {
		return se
	}
	var pe *parse.Error
	var ce *glua.CompileError
	switch {
	case errors.As(ae.Cause, &pe):
		se.Message = strings.TrimSpace(pe.Message)
		if !strings.HasPrefix(se.Message, "syntax error") {
			se.Message = "syntax error: " + se.Message
		}
		if pe.Pos.Line == parse.EOF {
			se.Message += " at the end of the file"
			se.Line = lineCount(script)
		} else {
			se.Line = pe.Pos.Line
			if pe.Token != "" {
				se.Message += fmt.Sprintf(" near '%s'", pe.Token)
			}
		}
	case errors.As(ae.Cause, &ce):
		se.Line, se.Message = ce.Line, "compile error: "+ce.Message
	default:
		se.Message = ae.Cause.Error()
	}
	return se
}

// lineCount is the number of the last line of the file at path, 0 when it
// cannot be read.
func lineCount(path string) int {
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 {
		return 0
	}
	return bytes.Count(bytes.TrimRight(data, "\n"), []byte("\n")) + 1
}

// locationRE splits "file:line: message" as Lua writes errors.
var locationRE = regexp.MustCompile(`(?s)^([^\n]*?):(\d+): (.*)$`)

// scriptError turns what PCall returned into a *ScriptError with the step
// the error was first seen in.
func (rn *run) scriptError(err error) *ScriptError {
	var ae *glua.ApiError
	if !errors.As(err, &ae) {
		return &ScriptError{Script: rn.script, File: rn.script, Message: err.Error()}
	}
	se := rn.toScriptError(ae.Object, nil)
	if c, ok := rn.claims[ae.Object]; ok {
		se.Step, se.Trace = c.path, c.trace
	} else {
		se.Trace = ae.StackTrace
	}
	return se
}

// toScriptError splits an error value into location and message.
func (rn *run) toScriptError(obj glua.LValue, step []string) *ScriptError {
	msg := ""
	if s, ok := obj.(glua.LString); ok {
		msg = string(s)
	} else {
		msg = "error object: " + render(obj)
	}
	se := &ScriptError{Script: rn.script, Step: step, Message: msg}
	if m := locationRE.FindStringSubmatch(msg); m != nil {
		if line, err := strconv.Atoi(m[2]); err == nil {
			se.File, se.Line, se.Message = m[1], line, m[3]
		}
	}
	return se
}

// claim is the step an error value was first seen failing, and its trace.
type claim struct {
	path  []string
	trace string
}

// run is the state of one script's run.
type run struct {
	r      *Runner
	t      Timeouts
	L      *glua.LState
	script string
	res    *Result
	steps  []string              // the path of the running step
	claims map[glua.LValue]claim // error values already caught by a step
	vms    []*vmHandle
	tmp    string // the script's temporary directory, made on first use
	names  map[string]bool
	quiet  int // > 0 while wait_for polls: notes would repeat each try
}

func newRun(r *Runner, script string, res *Result) *run {
	rn := &run{
		r:      r,
		t:      r.Timeouts.withDefaults(),
		L:      glua.NewState(glua.Options{IncludeGoStackTrace: false}),
		script: script,
		res:    res,
		claims: map[glua.LValue]claim{},
		names:  map[string]bool{},
	}
	rn.install()
	return rn
}

// diagnose adds to a failure the signature of an emulation fault that one
// of the script's VMs shows, unless the message names one already: the
// e2e runner retries such a failure (guest.EmulationFaultMarker).
func (rn *run) diagnose(se *ScriptError) {
	if strings.Contains(se.Message, guest.EmulationFaultMarker) {
		return
	}
	for _, h := range rn.vms {
		if why := h.vm.Diagnose(); why != "" {
			se.Message += fmt.Sprintf("\n%s%s (%s)", guest.EmulationFaultMarker, why, h.name)
			return
		}
	}
}

// stopAll stops every VM, last started first, and records them.
func (rn *run) stopAll() []error {
	var errs []error
	for i := len(rn.vms) - 1; i >= 0; i-- {
		h := rn.vms[i]
		if err := h.vm.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", h.name, err))
		}
	}
	for _, h := range rn.vms {
		rn.res.VMs = append(rn.res.VMs, VMRecord{Name: h.name, Pid: h.vm.Pid(), ConsoleTail: lastLines(h.vm.ConsoleText(), consoleTailLines)})
	}
	return errs
}

// tempDir is the script's temporary directory, removed when it ends.
func (rn *run) tempDir() (string, error) {
	if rn.tmp == "" {
		d, err := os.MkdirTemp("", "vmm-scenario-")
		if err != nil {
			return "", err
		}
		rn.tmp = d
	}
	return rn.tmp, nil
}

// note tells the reporter something that happened.
func (rn *run) note(kind NoteKind, vm, text string) {
	if rn.quiet > 0 {
		return
	}
	n := Note{Kind: kind, VM: vm, Text: text, Step: append([]string(nil), rn.steps...)}
	rn.r.report(func(rep Reporter) { rep.Note(rn.script, n) })
}

// ctx is the script's context bounded by d.
func (rn *run) ctx(d time.Duration) (context.Context, context.CancelFunc) {
	base := rn.L.Context()
	if base == nil {
		base = context.Background()
	}
	return context.WithTimeout(base, d)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
