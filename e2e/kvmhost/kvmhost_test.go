package kvmhost

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCpioArchiveUnpacksWithCpioTool(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Fatal("cpio not found: apt-get install cpio (make deps does)")
	}
	var buf bytes.Buffer
	c := newCpioWriter(&buf)
	c.file("payload/bin/tool", 0o755, []byte("#!/bin/sh\necho hi\n"))
	c.file("payload/a/b/c.txt", 0o644, []byte("odd-sized"))
	c.file("payload/empty", 0o644, nil)
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command("cpio", "-i", "-d", "--quiet")
	cmd.Dir, cmd.Stdin = dir, &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v: %s", err, out)
	}
	for name, want := range map[string]string{"payload/bin/tool": "#!/bin/sh\necho hi\n", "payload/a/b/c.txt": "odd-sized", "payload/empty": ""} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "payload/bin/tool")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("tool mode = %v, %v; want 0755", st.Mode(), err)
	}
}

func TestScriptQuotesArgumentsButExpandsVariables(t *testing.T) {
	s := script(Options{
		Env:     map[string]string{"VMM_BIN": "$PAYLOAD/bin/vmm"},
		Command: []string{"./bin/e2e.test", "-ginkgo.focus=boot it", "it's", "$RESULTS/junit.xml"},
	})
	cmd := exec.Command("sh", "-c", strings.Replace(s, "exec ./bin/e2e.test", "printf '%s|' \"$VMM_BIN\"", 1))
	cmd.Env = append(os.Environ(), "PAYLOAD=/p", "RESULTS=/r")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("script: %v\n%s", err, s)
	}
	want := "/p/bin/vmm|-ginkgo.focus=boot it|it's|/r/junit.xml|"
	if string(out) != want {
		t.Errorf("script ran as %q, want %q\n%s", out, want, s)
	}
}

func TestConsoleDecodesResultFilesAndExitMarker(t *testing.T) {
	dir := t.TempDir()
	var shown bytes.Buffer
	c := &console{out: &shown, log: io.Discard, results: dir, start: time.Now()}
	in := "boot noise\r\n@@KVMHOST-START\r\nspec output\r\n@@KVMHOST-ALIVE\r\n@@KVMHOST-FILE junit.xml\r\nPHhtbC8+\r\n@@KVMHOST-END\r\n@@KVMHOST-EXIT 3\r\n"
	if err := c.read(strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	if c.exit == nil || *c.exit != 3 {
		t.Fatalf("exit = %v, want 3", c.exit)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "junit.xml")); string(got) != "<xml/>" {
		t.Errorf("junit.xml = %q", got)
	}
	if strings.Contains(shown.String(), "PHhtbC8+") {
		t.Errorf("file contents were shown on the console:\n%s", shown.String())
	}
	if strings.Contains(shown.String(), "ALIVE") {
		t.Errorf("the heartbeat was shown on the console:\n%s", shown.String())
	}
	if !strings.Contains(shown.String(), "spec output") {
		t.Errorf("console output lost:\n%s", shown.String())
	}
}

// fakeQEMU writes a shell script that stands in for qemu-system-x86_64 and
// prints body on its console.
func fakeQEMU(t *testing.T, body string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	path := filepath.Join(dir, "qemu")
	script := "#!/bin/sh\necho x >> " + count + "\n" + body + "\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, count
}

func runWithFakeQEMU(t *testing.T, body string, timeout time.Duration) (Result, int, error) {
	t.Helper()
	return runWithFakeQEMUOpts(t, body, Options{Timeout: timeout})
}

// runWithFakeQEMUOpts runs a fake qemu with the timeouts of o.
func runWithFakeQEMUOpts(t *testing.T, body string, o Options) (Result, int, error) {
	t.Helper()
	qemu, count := fakeQEMU(t, body)
	base := filepath.Join(t.TempDir(), "base.cpio")
	if err := os.WriteFile(base, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), Options{
		Mode: ModeNested, Command: []string{"true"}, ResultsDir: t.TempDir(), Timeout: o.Timeout,
		Console: io.Discard, Logger: slog.New(slog.DiscardHandler), QEMU: qemu, Kernel: "unused", Initramfs: base,
		BrokenGrace: o.BrokenGrace, Silence: o.Silence,
	})
	data, _ := os.ReadFile(count)
	return res, strings.Count(string(data), "x"), err
}

func TestRunWithFakeQEMUReturnsACommandFailureWithoutRetry(t *testing.T) {
	res, boots, err := runWithFakeQEMU(t, "echo @@KVMHOST-START; echo FAIL; echo @@KVMHOST-EXIT 1", time.Minute)
	if err != nil || res.ExitCode != 1 || boots != 1 {
		t.Fatalf("res=%+v err=%v boots=%d; want exit 1, one boot", res, err, boots)
	}
}

func TestRunWithFakeQEMURetriesOnceWhenTheHostPanics(t *testing.T) {
	res, boots, err := runWithFakeQEMU(t, "echo @@KVMHOST-START; echo '[  165.894039] Kernel panic - not syncing: Fatal exception'", time.Minute)
	if !errors.Is(err, ErrHostBroken) || boots != 2 || len(res.Broken) != 2 {
		t.Fatalf("res=%+v err=%v boots=%d; want ErrHostBroken after 2 boots", res, err, boots)
	}
	if !strings.Contains(err.Error(), "Kernel panic") {
		t.Errorf("error does not say why: %v", err)
	}
}

func TestRunWithFakeQEMUKillsAHungHostAtTheTimeout(t *testing.T) {
	start := time.Now()
	_, boots, err := runWithFakeQEMU(t, "echo @@KVMHOST-START; sleep 60", 500*time.Millisecond)
	if !errors.Is(err, ErrHostBroken) || boots != 2 {
		t.Fatalf("err=%v boots=%d; want ErrHostBroken after 2 boots", err, boots)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %v: the hung fake was not killed", d)
	}
}

func TestRunWithFakeQEMUStopsAHostThatReportsALockupAfterTheGrace(t *testing.T) {
	start := time.Now()
	res, boots, err := runWithFakeQEMUOpts(t,
		"echo @@KVMHOST-START; echo '[  233.222661] watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [vmm:119]'; sleep 60",
		Options{Timeout: time.Minute, BrokenGrace: 300 * time.Millisecond})
	if !errors.Is(err, ErrHostBroken) || boots != 2 {
		t.Fatalf("res=%+v err=%v boots=%d; want ErrHostBroken after 2 boots", res, err, boots)
	}
	if !strings.Contains(err.Error(), "soft lockup") {
		t.Errorf("error does not say why: %v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %v: the locked-up fake was not stopped after its grace", d)
	}
}

func TestRunWithFakeQEMUIgnoresAGuestsLockupBehindItsPrefix(t *testing.T) {
	res, boots, err := runWithFakeQEMUOpts(t,
		"echo @@KVMHOST-START; echo '  vm1 | [   35.397817] rcu: INFO: rcu_preempt self-detected stall on CPU'; sleep 1; echo @@KVMHOST-EXIT 0",
		Options{Timeout: time.Minute, BrokenGrace: 100 * time.Millisecond})
	if err != nil || res.ExitCode != 0 || boots != 1 {
		t.Fatalf("res=%+v err=%v boots=%d; want exit 0 after one boot", res, err, boots)
	}
}

func TestRunWithFakeQEMUStopsAHostThatFallsSilent(t *testing.T) {
	start := time.Now()
	res, boots, err := runWithFakeQEMUOpts(t, "echo @@KVMHOST-START; echo busy; sleep 60",
		Options{Timeout: time.Minute, Silence: 300 * time.Millisecond})
	if !errors.Is(err, ErrHostBroken) || boots != 2 {
		t.Fatalf("res=%+v err=%v boots=%d; want ErrHostBroken after 2 boots", res, err, boots)
	}
	if !strings.Contains(err.Error(), "printed nothing") {
		t.Errorf("error does not say why: %v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %v: the silent fake was not stopped", d)
	}
}

func TestRunWithFakeQEMUKeepsAHostThatPrintsSlowly(t *testing.T) {
	res, boots, err := runWithFakeQEMUOpts(t,
		"echo @@KVMHOST-START; for i in 1 2 3 4 5; do echo tick; sleep 0.2; done; echo @@KVMHOST-EXIT 0",
		Options{Timeout: time.Minute, Silence: 700 * time.Millisecond})
	if err != nil || res.ExitCode != 0 || boots != 1 {
		t.Fatalf("res=%+v err=%v boots=%d; want exit 0 after one boot", res, err, boots)
	}
}
