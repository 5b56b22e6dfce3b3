package lua

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Reporter hears about a run as it happens. Calls come from the goroutine
// that runs the script, in order.
type Reporter interface {
	// ScriptStarted is called before a script is loaded.
	ScriptStarted(script string)
	// StepStarted is called when a step begins; path ends with its name.
	StepStarted(script string, path []string)
	// StepFinished is called when a step ends, passed or failed.
	StepFinished(script string, step StepResult)
	// Note tells what the script did or said.
	Note(script string, n Note)
	// ScriptFinished is called once the script's VMs are stopped.
	ScriptFinished(r *Result)
}

// NoteKind says what a note is about.
type NoteKind int

// Note kinds.
const (
	// NoteSay is the script's own narration: say(...) and print(...).
	NoteSay NoteKind = iota
	// NoteGuest is what the guest reports about itself: CPUs, memory.
	NoteGuest
	// NoteAction is a VM operation: start, resize, reboot, API calls.
	NoteAction
	// NoteCommand is a command sent to the guest's shell.
	NoteCommand
	// NoteOutput is a guest command's output.
	NoteOutput
)

// Note is one thing a script did or said.
type Note struct {
	Kind NoteKind
	// VM names the VM concerned, if any.
	VM string
	// Text is what happened.
	Text string
	// Step is the path of the step it happened in.
	Step []string
}

// TextReporter writes a live, human-readable report. Narration (say) and
// the guest's views are always shown; VM operations, guest commands and
// their output only when Verbose. It is safe for concurrent use.
type TextReporter struct {
	W       io.Writer
	Verbose bool

	mu sync.Mutex
}

var _ Reporter = (*TextReporter)(nil)

func (t *TextReporter) printf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.W, format, args...)
}

func indent(depth int) string { return strings.Repeat("  ", depth) }

// ScriptStarted implements Reporter.
func (t *TextReporter) ScriptStarted(script string) {
	t.printf("=== RUN  %s\n", script)
}

// StepStarted implements Reporter.
func (t *TextReporter) StepStarted(_ string, path []string) {
	t.printf("%s> %s\n", indent(len(path)), path[len(path)-1])
}

// StepFinished implements Reporter.
func (t *TextReporter) StepFinished(_ string, s StepResult) {
	verdict := "ok  "
	if s.Err != nil {
		verdict = "FAIL"
	}
	t.printf("%s%s %s (%s)\n", indent(len(s.Path)), verdict, s.Path[len(s.Path)-1], roundDuration(s.Duration))
}

// Note implements Reporter.
func (t *TextReporter) Note(_ string, n Note) {
	pad := indent(len(n.Step) + 1)
	switch n.Kind {
	case NoteSay:
		t.printf("%s%s\n", pad, indentLines(n.Text, pad))
	case NoteGuest:
		t.printf("%s%s sees: %s\n", pad, n.VM, n.Text)
	case NoteAction:
		if t.Verbose {
			t.printf("%s%s: %s\n", pad, n.VM, n.Text)
		}
	case NoteCommand:
		if t.Verbose {
			t.printf("%s%s # %s\n", pad, n.VM, indentLines(n.Text, pad+"    "))
		}
	case NoteOutput:
		if t.Verbose && n.Text != "" {
			p := pad + n.VM + " | "
			t.printf("%s%s\n", p, indentLines(n.Text, p))
		}
	}
}

// ScriptFinished implements Reporter.
func (t *TextReporter) ScriptFinished(r *Result) {
	if r.Passed() {
		t.printf("--- PASS %s (%s)\n", r.Script, roundDuration(r.Duration))
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "--- FAIL %s (%s)\n", r.Script, roundDuration(r.Duration))
	fmt.Fprintf(&b, "    %s\n", indentLines(r.Err.Error(), "    "))
	for _, e := range r.Cleanup {
		if r.Err != nil && !strings.Contains(r.Err.Error(), e.Error()) {
			fmt.Fprintf(&b, "    also: %s\n", indentLines(e.Error(), "    "))
		}
	}
	if se, ok := r.Err.(*ScriptError); ok && t.Verbose && se.Trace != "" {
		fmt.Fprintf(&b, "    %s\n", indentLines(se.Trace, "    "))
	}
	for _, vm := range r.VMs {
		if vm.ConsoleTail != "" {
			fmt.Fprintf(&b, "    %s console (last lines):\n      %s\n", vm.Name, indentLines(vm.ConsoleTail, "      "))
		}
	}
	t.printf("%s", b.String())
}

// indentLines puts pad before every line but the first.
func indentLines(s, pad string) string {
	return strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+pad)
}

func roundDuration(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}
