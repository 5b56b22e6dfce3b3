package guest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestConsoleTextDropsEscapesAndCarriageReturns(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "hello\r\n", "hello\n"},
		{"cursor query", "/ # \x1b[6necho hi\r\n", "/ # echo hi\n"},
		{"colours", "\x1b[1;31mred\x1b[0m\n", "red\n"},
		{"title", "\x1b]0;title\x07text\n", "text\n"},
		{"title ended by ST", "\x1b]0;title\x1b\\text\n", "text\n"},
		{"charset", "\x1b(Btext\n", "text\n"},
		{"two-byte escape", "\x1b7saved\x1b8\n", "saved\n"},
		{"bell, backspace and NUL", "a\x07b\x08c\x00d\n", "abcd\n"},
		{"tab kept", "a\tb\n", "a\tb\n"},
		{"malformed CSI keeps the newline", "\x1b[12\nnext\n", "\nnext\n"},
		{"utf-8 kept", "héllo\n", "héllo\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Byte by byte, so that every sequence spans writes.
			c := NewConsole(nil)
			for i := range len(tc.in) {
				_, _ = c.Write([]byte{tc.in[i]})
			}
			if got := c.String(); got != tc.want {
				t.Errorf("text = %q, want %q", got, tc.want)
			}
			if got := string(c.Bytes()); got != tc.in {
				t.Errorf("raw = %q, want %q", got, tc.in)
			}
		})
	}
}

func TestConsoleUnterminatedStringSequenceEnds(t *testing.T) {
	c := NewConsole(nil)
	_, _ = c.Write([]byte("\x1b]" + strings.Repeat("x", maxStringSeq+10) + "\nvisible\n"))
	if !strings.Contains(c.String(), "visible") {
		t.Errorf("a stray ESC ] swallowed the output: %q", c.String())
	}
}

func TestConsoleTeeGetsText(t *testing.T) {
	var b strings.Builder
	c := NewConsole(&b)
	_, _ = c.Write([]byte("a\x1b[6nb\r\n"))
	if b.String() != "ab\n" {
		t.Errorf("tee got %q", b.String())
	}
}

func TestConsoleTail(t *testing.T) {
	c := NewConsole(nil)
	_, _ = c.Write([]byte("1\n2\n3\n4\n"))
	for n, want := range map[int]string{0: "", 1: "4", 2: "3\n4", 9: "1\n2\n3\n4"} {
		if got := c.Tail(n); got != want {
			t.Errorf("Tail(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestConsoleCountsLinesEndingWithTheMarker(t *testing.T) {
	c := NewConsole(nil)
	_, _ = c.Write([]byte(ReadyMarker + "\r\n# echo x\n# " + ReadyMarker + "\nnot " + ReadyMarker + " here\n" + ReadyMarker))
	if n := c.CountLinesEndingWith(ReadyMarker); n != 2 {
		t.Errorf("count = %d, want 2: a line without its newline does not count yet", n)
	}
	// A reboot cut the guest off after the marker: the next boot's first
	// message continued the line, so it was no marker after all.
	_, _ = c.Write([]byte("[    3.5] PCI: message\n"))
	if n := c.CountLinesEndingWith(ReadyMarker); n != 2 {
		t.Errorf("count = %d after the line went on, want 2", n)
	}
	_, _ = c.Write([]byte(ReadyMarker + "\r\n"))
	if n := c.CountLinesEndingWith(ReadyMarker); n != 3 {
		t.Errorf("count = %d, want 3", n)
	}
}

func TestConsoleWaitForMatchesLaterOutput(t *testing.T) {
	c := NewConsole(nil)
	go func() {
		time.Sleep(20 * time.Millisecond)
		_, _ = c.Write([]byte("boot\nsmpboot: CPU 4 is "))
		time.Sleep(20 * time.Millisecond)
		_, _ = c.Write([]byte("now online\n"))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, end, err := c.WaitFor(ctx, 0, regexp.MustCompile(`CPU \d+ is now online`))
	if err != nil || m != "CPU 4 is now online" || end != len("boot\nsmpboot: CPU 4 is now online") {
		t.Errorf("WaitFor = %q, %d, %v", m, end, err)
	}
	// From past the match, the same pattern is not found again.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if _, _, err := c.WaitFor(ctx2, end, regexp.MustCompile(`online`)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitFor past the match = %v, want a timeout", err)
	}
}

func TestConsoleWaitFailsWhenClosed(t *testing.T) {
	c := NewConsole(nil)
	cause := errors.New("vmm exited")
	go func() {
		time.Sleep(20 * time.Millisecond)
		c.Close(cause)
	}()
	_, _, err := c.WaitFor(context.Background(), 0, regexp.MustCompile(`never`))
	if !errors.Is(err, ErrConsoleClosed) || !errors.Is(err, cause) {
		t.Errorf("WaitFor on a closed console = %v", err)
	}
}

func TestParseCPUList(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{"", []int{}, false},
		{"\n", []int{}, false},
		{"0", []int{0}, false},
		{"0-3", []int{0, 1, 2, 3}, false},
		{"0-3,5,7-8\n", []int{0, 1, 2, 3, 5, 7, 8}, false},
		{"a", nil, true},
		{"3-1", nil, true},
		{"2,1", nil, true},
		{"-1", nil, true},
		{"0-99999999", nil, true},
	}
	for _, tc := range tests {
		got, err := ParseCPUList(tc.in)
		if (err != nil) != tc.wantErr || !tc.wantErr && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseCPUList(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestParseCPUFiles(t *testing.T) {
	got, err := parseCPUFiles("online=0-3\noffline=4-7\npresent=0-7")
	want := CPUs{Online: []int{0, 1, 2, 3}, Offline: []int{4, 5, 6, 7}, Present: []int{0, 1, 2, 3, 4, 5, 6, 7}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("parseCPUFiles = %+v, %v", got, err)
	}
	got, err = parseCPUFiles("online=0-3\noffline=\npresent=0-3")
	if err != nil || len(got.Offline) != 0 {
		t.Errorf("empty offline list: %+v, %v", got, err)
	}
	if _, err := parseCPUFiles("online=0-3\npresent=0-3"); err == nil {
		t.Error("a missing list was not reported")
	}
}

func TestParseMemTotal(t *testing.T) {
	if n, err := parseMemTotal("MemTotal:        1014548 kB"); err != nil || n != 1014548*1024 {
		t.Errorf("parseMemTotal = %d, %v", n, err)
	}
	for _, bad := range []string{"", "MemTotal: x kB", "MemFree: 1 kB", "MemTotal: 1 MB"} {
		if _, err := parseMemTotal(bad); err == nil {
			t.Errorf("parseMemTotal(%q) succeeded", bad)
		}
	}
}

func TestResolvePathsPrefersTheEnvironment(t *testing.T) {
	t.Setenv(EnvVmmBin, "/x/vmm")
	t.Setenv(EnvKernel, "/x/bzImage")
	p := ResolvePaths()
	if p.Vmm != "/x/vmm" || p.Kernel != "/x/bzImage" {
		t.Errorf("ResolvePaths = %+v", p)
	}
}

func TestResolvePathsFallsBackToTheModuleRoot(t *testing.T) {
	for _, env := range []string{EnvVmmBin, EnvVmmctlBin, EnvKernel, EnvInitramfs, EnvScenarios} {
		t.Setenv(env, "")
	}
	p := ResolvePaths()
	if p.Root == "" {
		t.Fatal("no module root found from the package directory")
	}
	if _, err := os.Stat(filepath.Join(p.Root, "go.mod")); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		p.Vmm: relVmmBin, p.Vmmctl: relVmmctlBin, p.Kernel: relKernel,
		p.Initramfs: relInitramfs, p.Scenarios: relScenarios,
	}
	for got, rel := range want {
		if got != filepath.Join(p.Root, rel) {
			t.Errorf("path %q, want %s under %s", got, rel, p.Root)
		}
	}
}

func TestFindModuleRootNeedsTheVmmModule(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := findModuleRoot(dir); got == dir {
		t.Errorf("findModuleRoot took another module's go.mod")
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("// c\nmodule github.com/vmmdev/vmm\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "a", "b")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := findModuleRoot(sub); got != dir {
		t.Errorf("findModuleRoot(%s) = %q, want %q", sub, got, dir)
	}
}

func TestConsoleCutSequenceKeepsTheNextBootsFirstByte(t *testing.T) {
	// busybox's prompt is followed by ESC [ 6 n; a reset after its ESC
	// leaves the sequence unfinished.
	cut := "# \x1b"
	c := NewConsole(nil)
	_, _ = c.Write([]byte(cut))
	_, _ = c.Write([]byte(ReadyMarker + "\n"))
	if n := c.CountLinesEndingWith(ReadyMarker); n != 0 {
		t.Fatalf("without the cut: %d markers, want 0 (ESC V is a sequence): the test no longer shows the problem", n)
	}
	c = NewConsole(nil)
	_, _ = c.Write([]byte(cut))
	c.CutSequence()
	_, _ = c.Write([]byte(ReadyMarker + "\n"))
	if n := c.CountLinesEndingWith(ReadyMarker); n != 1 {
		t.Errorf("after CutSequence: %d markers, want 1; text %q", n, c.String())
	}
}

func TestCountLinesEndingWith(t *testing.T) {
	for _, c := range []struct {
		name, text string
		want       int
	}{
		{"none", "boot\n# ", 0},
		{"one", "boot\nVMM-GUEST-READY\n# ", 1},
		{"after a prompt, with blanks", "VMM-GUEST-READY\n# reboot -f\n# [    0.0] x\n#  VMM-GUEST-READY \r\n", 2},
		{"a last line without its newline", "VMM-GUEST-READY\nVMM-GUEST-READY", 1},
		{"inside a line", "echo VMM-GUEST-READY > /dev/null\n", 0},
	} {
		if got := CountLinesEndingWith(c.text, "VMM-GUEST-READY"); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}
