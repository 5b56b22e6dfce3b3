package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// busyboxPath is the busybox the shell driver tests run; they are skipped
// without it.
const busyboxPath = "/bin/busybox"

// localShell is a busybox "sh -i" on this machine, standing in for the
// guest's console shell.
type localShell struct {
	console *Console
	shell   *Shell
	cmd     *exec.Cmd
	done    chan struct{}
}

// startBusyboxOnPty runs busybox sh -i on a new pseudo-terminal, as the
// guest's setsid cttyhack sh runs on ttyS0: the terminal echoes, and Ctrl-C
// interrupts.
func startBusyboxOnPty(t *testing.T) *localShell {
	t.Helper()
	requireBusybox(t)
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty slave: %v", err)
	}
	cmd := exec.Command(busyboxPath, "sh", "-i")
	cmd.Env = shellEnv()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start busybox: %v", err)
	}
	slave.Close()
	ls := &localShell{console: NewConsole(nil), cmd: cmd, done: make(chan struct{})}
	ls.shell = NewShell(master, ls.console)
	go func() {
		_, err := io.Copy(ls.console, master)
		ls.console.Close(err)
		close(ls.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		master.Close()
		<-ls.done
	})
	return ls
}

// startBusyboxOnPipes runs busybox sh -i with pipes for its input and
// output: no echo, no job control.
func startBusyboxOnPipes(t *testing.T) *localShell {
	t.Helper()
	requireBusybox(t)
	cmd := exec.Command(busyboxPath, "sh", "-i")
	cmd.Env = shellEnv()
	ls := &localShell{console: NewConsole(nil), cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = ls.console, ls.console
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start busybox: %v", err)
	}
	ls.shell = NewShell(in, ls.console)
	go func() {
		err := cmd.Wait()
		ls.console.Close(err)
		close(ls.done)
	}()
	t.Cleanup(func() {
		in.Close()
		_ = cmd.Process.Kill()
		<-ls.done
	})
	return ls
}

func requireBusybox(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(busyboxPath); err != nil {
		t.Skipf("%s not installed: %v", busyboxPath, err)
	}
}

func shellEnv() []string {
	return []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/tmp", "TERM=linux", "PS1=# "}
}

type shellCase struct {
	name       string
	cmd        string
	wantOut    string
	wantStatus int
	contains   bool // wantOut is a substring of the output
}

var shellCases = []shellCase{
	{name: "output", cmd: "echo hello", wantOut: "hello"},
	{name: "no output", cmd: "true", wantOut: ""},
	{name: "exit status", cmd: "false", wantStatus: 1},
	{name: "exit status of a subshell", cmd: "(exit 7)", wantStatus: 7},
	{name: "output without a final newline", cmd: "printf abc", wantOut: "abc"},
	{name: "blank lines inside the output are kept", cmd: "printf 'a\\n\\nb\\n\\n'", wantOut: "a\n\nb"},
	{name: "several lines", cmd: "echo one; echo two; echo three", wantOut: "one\ntwo\nthree"},
	{name: "single quotes", cmd: `echo 'it'"'"'s a test'`, wantOut: "it's a test"},
	{name: "comment", cmd: "echo hi # a comment", wantOut: "hi"},
	{name: "background job", cmd: "sleep 0.1 & wait", wantOut: ""},
	{name: "stderr", cmd: "echo oops >&2; exit_code=3; (exit $exit_code)", wantOut: "oops", wantStatus: 3},
	{name: "command on several lines", cmd: "for i in 1 2; do\necho $i\ndone", wantOut: "1\n2"},
	{name: "output that looks like a marker", cmd: "echo @@B1@@; echo @@E1@@0", wantOut: "@@B1@@\n@@E1@@0"},
	{name: "escape sequences are stripped", cmd: `printf '\033[1mbold\033[0m\n'`, wantOut: "bold"},
	{name: "syntax error", cmd: `echo "unterminated`, wantOut: "syntax error", contains: true, wantStatus: 2},
	{name: "syntax error after valid commands", cmd: "echo not run; if", wantOut: "syntax error", contains: true, wantStatus: 2},
	{name: "line longer than the terminal", cmd: "echo " + strings.Repeat("x", 300), wantOut: strings.Repeat("x", 300)},
	{name: "line at the length limit", cmd: "echo " + strings.Repeat("z", maxCommandLine-5), wantOut: strings.Repeat("z", maxCommandLine-5)},
}

func runShellCases(t *testing.T, ls *localShell) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, tc := range shellCases {
		t.Run(tc.name, func(t *testing.T) {
			out, status, err := ls.shell.Run(ctx, tc.cmd)
			if err != nil {
				t.Fatalf("Run(%q): %v", tc.cmd, err)
			}
			if status != tc.wantStatus {
				t.Errorf("Run(%q) status = %d, want %d (output %q)", tc.cmd, status, tc.wantStatus, out)
			}
			if tc.contains && !strings.Contains(out, tc.wantOut) || !tc.contains && out != tc.wantOut {
				t.Errorf("Run(%q) output = %q, want %q", tc.cmd, out, tc.wantOut)
			}
		})
	}
	t.Run("state persists between commands", func(t *testing.T) {
		for _, c := range []string{"cd /tmp", "X=5"} {
			if _, err := ls.shell.Check(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		out, err := ls.shell.Check(ctx, "echo $X $(pwd)")
		if err != nil || out != "5 /tmp" {
			t.Errorf("got %q, %v; want %q", out, err, "5 /tmp")
		}
	})
	t.Run("large output", func(t *testing.T) {
		out, err := ls.shell.Check(ctx, "seq 1 3000")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(out, "\n")
		if len(lines) != 3000 || lines[0] != "1" || lines[2999] != "3000" {
			t.Errorf("got %d lines, first %q, last %q", len(lines), lines[0], lines[len(lines)-1])
		}
	})
	t.Run("Check reports a non-zero status", func(t *testing.T) {
		_, err := ls.shell.Check(ctx, "echo bad; false")
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Status != 1 || ee.Output != "bad" {
			t.Errorf("Check error = %v, want an ExitError with status 1 and output %q", err, "bad")
		}
	})
}

func TestShellDriverAgainstLocalBusyboxOnPty(t *testing.T) {
	runShellCases(t, startBusyboxOnPty(t))
}

func TestShellDriverAgainstLocalBusyboxOnPipes(t *testing.T) {
	runShellCases(t, startBusyboxOnPipes(t))
}

func TestShellDriverAgainstLocalBusyboxInterruptsOnTimeout(t *testing.T) {
	ls := startBusyboxOnPty(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := ls.shell.Run(ctx, "sleep 30")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run(sleep 30) error = %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %v after its deadline", d)
	}
	// Ctrl-C ended the sleep: the shell answers the next command at once.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	out, err := ls.shell.Check(ctx2, "echo back")
	if err != nil || out != "back" {
		t.Fatalf("after the interrupt: got %q, %v", out, err)
	}
}

func TestShellDriverAgainstLocalBusyboxFailsWhenTheShellExits(t *testing.T) {
	ls := startBusyboxOnPipes(t)
	if err := ls.shell.Send("exit"); err != nil {
		t.Fatal(err)
	}
	<-ls.done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := ls.shell.Run(ctx, "echo never")
	if err == nil {
		t.Fatal("Run after the shell exited succeeded")
	}
	if ctx.Err() != nil {
		t.Fatalf("Run waited for its deadline instead of failing: %v", err)
	}
}

func TestShellRefusesCommandsTheTerminalWouldMangle(t *testing.T) {
	sh := NewShell(io.Discard, NewConsole(nil))
	for _, cmd := range []string{"", "  ", "echo a\tb", "echo \x03", "echo " + strings.Repeat("y", maxCommandLine)} {
		if _, _, err := sh.Run(context.Background(), cmd); err == nil {
			t.Errorf("Run(%q) succeeded, want an error", cmd)
		}
	}
}
