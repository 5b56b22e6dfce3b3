package guest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
)

// maxCommandLine bounds each line of a command. busybox's line editor keeps
// at most CONFIG_FEATURE_EDITING_MAX_LEN (1024) bytes of a line, and the
// wrapper adds its markers to the last line of the command.
const maxCommandLine = 900

// interrupt is the byte a terminal turns into SIGINT (Ctrl-C).
const interrupt = "\x03"

// tailOnError is how many console lines a failure message quotes.
const tailOnError = 20

// Shell drives an interactive POSIX shell (busybox ash) through a terminal:
// commands are typed into in and their output is read back from console.
// The terminal may echo what is typed; it does not matter, because each
// command's output is found between markers the echo cannot contain.
//
// A command cmd with tag T is typed as
//
//	printf '@@%s@@\n' BT; ( eval '__vmm_syntax() {
//	cmd
//	}' ) && eval 'cmd'; printf '\n@@%s@@%d\n' ET $?
//
// and its output is what comes between the line "@@BT@@" and "\n@@ET@@",
// followed by the exit status. printf splits each marker across its format
// and argument, so the echoed command line never contains a marker. The
// subshell parses cmd as a function body first: an interactive ash abandons
// the rest of the line on a syntax error, which would lose the end marker;
// this way a syntax error is reported as exit status 2 and the shell's own
// message becomes the output. eval lets cmd use comments, "&" and several
// lines, and runs it in the shell itself, so cd and variables persist.
//
// Commands run one at a time; Shell is safe for concurrent use.
type Shell struct {
	mu      sync.Mutex
	in      io.Writer
	console *Console
	nonce   string
	seq     int
}

// NewShell returns a driver for the shell whose input is in and whose
// terminal output is recorded by console.
func NewShell(in io.Writer, console *Console) *Shell {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return &Shell{in: in, console: console, nonce: hex.EncodeToString(b[:])}
}

// ExitError is a command's non-zero exit status, for callers that want one
// error for "did not succeed" (see Shell.Check).
type ExitError struct {
	Cmd    string
	Status int
	Output string
}

// Error names the command and its status, then what it printed.
func (e *ExitError) Error() string {
	msg := fmt.Sprintf("guest command %q exited with status %d", e.Cmd, e.Status)
	if e.Output != "" {
		msg += ": " + e.Output
	}
	return msg
}

// Run types cmd into the shell and waits for it to finish. It returns what
// the command printed (stdout and stderr, both on the terminal), with
// carriage returns, escape sequences and trailing newlines removed, as
// $(...) would, and its exit status. A non-zero status is not an error. If
// ctx ends first, Run types Ctrl-C to interrupt the command and returns the
// context's error.
func (s *Shell) Run(ctx context.Context, cmd string) (string, int, error) {
	if err := checkCommand(cmd); err != nil {
		return "", 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	tag := fmt.Sprintf("%s.%d", s.nonce, s.seq)
	from := s.console.Len()
	if err := s.write(wrapCommand(cmd, tag)); err != nil {
		return "", 0, fmt.Errorf("guest command %q: %w", cmd, err)
	}
	f := newMarkerFinder(tag, from)
	if err := s.console.Wait(ctx, f.find); err != nil {
		// Interrupt the command, unless its shell is gone with the boot
		// it ran in: the new shell would take Ctrl-C as typed input.
		if ctx.Err() != nil && !errors.Is(context.Cause(ctx), ErrGuestRebooted) {
			_ = s.write(interrupt)
		}
		return "", 0, fmt.Errorf("guest command %q: %w\nconsole (last lines):\n%s", cmd, err, s.console.Tail(tailOnError))
	}
	status, err := strconv.Atoi(f.status)
	if err != nil {
		return f.output, 0, fmt.Errorf("guest command %q: bad exit status %q after its end marker", cmd, f.status)
	}
	return f.output, status, nil
}

// Check is Run that turns a non-zero exit status into an *ExitError. It
// returns the output either way.
func (s *Shell) Check(ctx context.Context, cmd string) (string, error) {
	return check(ctx, s, cmd)
}

// Send types line and a newline without waiting for anything, for commands
// that do not come back, such as "reboot -f".
func (s *Shell) Send(line string) error {
	if err := checkCommand(line); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.write(line + "\n"); err != nil {
		return fmt.Errorf("guest command %q: %w", line, err)
	}
	return nil
}

func (s *Shell) write(text string) error {
	if _, err := io.WriteString(s.in, text); err != nil {
		return fmt.Errorf("write to the console: %w", err)
	}
	return nil
}

// checkCommand refuses what the terminal would not pass through as typed.
func checkCommand(cmd string) error {
	if strings.TrimSpace(cmd) == "" {
		return errors.New("empty guest command")
	}
	for _, line := range strings.Split(cmd, "\n") {
		if len(line) > maxCommandLine {
			return fmt.Errorf("guest command line of %d bytes: the console takes at most %d per line", len(line), maxCommandLine)
		}
	}
	for _, r := range cmd {
		if r < 0x20 && r != '\n' || r == 0x7f {
			return fmt.Errorf("guest command %q: control character %q would be taken as a key press", cmd, r)
		}
	}
	return nil
}

// wrapCommand is what Run types for cmd: see Shell.
func wrapCommand(cmd, tag string) string {
	q := strings.ReplaceAll(cmd, "'", `'\''`)
	return "printf '@@%s@@\\n' B" + tag + "; ( eval '__vmm_syntax() {\n" + q + "\n}' ) && eval '" + q +
		"'; printf '\\n@@%s@@%d\\n' E" + tag + " $?\n"
}

// markerFinder finds a command's output between its markers in the console
// text, scanning each byte a bounded number of times.
type markerFinder struct {
	begin, end []byte
	scanB      int // where to look for the begin marker next
	scanE      int // where to look for the end marker next, once out >= 0
	out        int // start of the output, or -1
	output     string
	status     string
}

func newMarkerFinder(tag string, from int) *markerFinder {
	return &markerFinder{
		begin: []byte("@@B" + tag + "@@"),
		end:   []byte("\n@@E" + tag + "@@"),
		scanB: from,
		out:   -1,
	}
}

// find is a Console.Wait condition.
func (f *markerFinder) find(text []byte) bool {
	if f.out < 0 {
		i := bytes.Index(text[f.scanB:], f.begin)
		if i < 0 {
			f.scanB = max(f.scanB, len(text)-len(f.begin)+1)
			return false
		}
		after := f.scanB + i + len(f.begin)
		nl := bytes.IndexByte(text[after:], '\n')
		if nl < 0 {
			return false
		}
		f.out = after + nl + 1
		// The end marker starts with the newline printed before it, which
		// is the first byte after the begin line when the output is empty.
		f.scanE = f.out
	}
	i := bytes.Index(text[f.scanE:], f.end)
	if i < 0 {
		f.scanE = max(f.scanE, len(text)-len(f.end)+1)
		return false
	}
	endAt := f.scanE + i
	rest := endAt + len(f.end)
	nl := bytes.IndexByte(text[rest:], '\n')
	if nl < 0 {
		return false
	}
	f.output = strings.TrimRight(string(text[f.out:endAt]), "\n")
	f.status = strings.TrimSpace(string(text[rest : rest+nl]))
	return true
}
