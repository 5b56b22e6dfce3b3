// Package kvmhost runs a command where a real KVM is: directly on this
// machine when its /dev/kvm runs ordinary guests, otherwise inside a "KVM
// host", a Debian kernel under QEMU's software emulation (-cpu max offers
// nested SVM, so the kernel loads kvm-amd and has a real /dev/kvm).
//
// Either way the command runs in a payload directory holding the files it
// was given, with $PAYLOAD naming that directory and $RESULTS a directory
// whose files come back to the caller. In the KVM host the payload is a
// second cpio archive appended to the host's initramfs, and the results and
// the exit status come back over the serial console as marker lines (see
// images/kvmhost-init).
package kvmhost

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Mode says where a command runs.
type Mode string

// Modes.
const (
	// ModeAuto runs directly when /dev/kvm is usable, nested otherwise.
	ModeAuto Mode = "auto"
	// ModeDirect runs on this machine.
	ModeDirect Mode = "direct"
	// ModeNested runs inside an emulated KVM host.
	ModeNested Mode = "nested"
)

// DefaultLockFile is the lock every KVM host run on this machine takes
// (Options.LockFile), so that only one runs at a time whoever starts it.
func DefaultLockFile() string { return filepath.Join(os.TempDir(), "vmm-kvmhost.lock") }

// ParseMode reads a mode's name: auto, direct or nested.
func ParseMode(name string) (Mode, error) {
	switch m := Mode(name); m {
	case ModeAuto, ModeDirect, ModeNested:
		return m, nil
	}
	return "", fmt.Errorf("-mode %q: want auto, direct or nested", name)
}

// Console marker lines printed by images/kvmhost-init.
const (
	markerStart = "@@KVMHOST-START"
	markerExit  = "@@KVMHOST-EXIT "
	markerFile  = "@@KVMHOST-FILE "
	markerEnd   = "@@KVMHOST-END"
	// markerAlive is the KVM host's heartbeat, a line every 15 s while
	// its payload runs; console.log keeps it, the console does not show it.
	markerAlive = "@@KVMHOST-ALIVE"
)

// File is one file of the payload.
type File struct {
	Src string // path on this machine
	Dst string // path relative to the payload directory
}

// DirFiles lists the files under the directory src as payload files under
// dst, keeping their relative paths.
func DirFiles(src, dst string) ([]File, error) {
	var files []File
	err := filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		files = append(files, File{Src: p, Dst: filepath.Join(dst, rel)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("payload directory %s: %w", src, err)
	}
	return files, nil
}

// Options describe one run.
type Options struct {
	Mode    Mode
	Command []string          // run in the payload directory
	Env     map[string]string // exported before Command; values may use $PAYLOAD and $RESULTS
	Files   []File
	// ResultsDir receives the files the command leaves in $RESULTS, and
	// console.log of the KVM host (every attempt's, appended).
	ResultsDir string
	Timeout    time.Duration // hard limit for one attempt
	Console    io.Writer     // live console (stdout when nil)

	// For the KVM host.
	QEMU      string // qemu-system-x86_64 when empty
	Kernel    string // the KVM host's bzImage
	Initramfs string // its base initramfs (images/kvmhost-init)
	MemoryMiB int    // RAM of the KVM host
	CPUs      int    // its vCPUs
	TCGThread string // QEMU's -accel tcg,thread=: "multi" (default) or "single"
	// Append is added to the KVM host kernel's command line, such as
	// kvm_amd.npt=0 (its init passes M.param=value to module M).
	Append   string
	LockFile string // held while a KVM host runs, so only one runs at a time
	// BrokenGrace bounds how long a KVM host that reported itself broken
	// may go on (DefaultBrokenGrace when 0).
	BrokenGrace time.Duration
	// Silence is how long a KVM host may print nothing before it is taken
	// for frozen (DefaultSilence when 0).
	Silence time.Duration
	// MaxAttempts is how many KVM hosts one run may boot when they break
	// (2, one retry, when 0).
	MaxAttempts int
	Logger      *slog.Logger
}

// Result is the outcome of a run.
type Result struct {
	Mode     Mode
	ExitCode int
	Attempts int           // KVM host boots, more than 1 when one broke
	Broken   []string      // why each broken attempt was judged broken
	Overhead time.Duration // KVM host start to payload start (last attempt)
	Elapsed  time.Duration
}

// ErrHostBroken is returned when every KVM host a run was allowed to boot
// (Options.MaxAttempts) broke itself (a panic, a lockup, no exit status):
// not a verdict on the command.
var ErrHostBroken = errors.New("the KVM host broke (not a test failure)")

// brokenHost matches console lines of the KVM host's own kernel (they
// start with its printk time stamp; a guest's console reaches the KVM
// host's console only behind a prefix) that show it failing: its own
// kernel panicking, locking up or stalling under the emulation.
var brokenHost = regexp.MustCompile(`^\[ *[0-9]+\.[0-9]+\] .*(Kernel panic|soft lockup|hard LOCKUP|BUG: |self-detected stall|general protection fault)`)

// DefaultBrokenGrace is how long a KVM host that reported itself broken
// gets to end by itself (an emulated soft lockup sometimes passes) before
// it is stopped and the run retried.
const DefaultBrokenGrace = 90 * time.Second

// DefaultSilence is how long a KVM host may print nothing before it is
// taken for frozen: an emulated host sometimes stops dead, its vCPUs busy
// and its console silent (seen several times a day, in boot, hot plug and
// network specs alike). Its init prints a heartbeat (markerAlive) every
// 15 s while the payload runs, so a minute of silence is four beats
// missed, however quiet the specs are.
const DefaultSilence = time.Minute

// Resolve turns ModeAuto into the mode to use on this machine, with the
// reason.
func Resolve(m Mode) (Mode, string) {
	switch m {
	case ModeDirect, ModeNested:
		return m, "asked for"
	}
	if _, err := os.Stat("/sys/module/kvm_pvm"); err == nil {
		return ModeNested, "/dev/kvm is a PVM KVM, which runs only PVM-aware guests"
	}
	if err := Usable("/dev/kvm"); err != nil {
		return ModeNested, err.Error()
	}
	return ModeDirect, "/dev/kvm runs guests"
}

// Run runs opts.Command in the mode chosen, booting another KVM host when
// one breaks, up to opts.MaxAttempts in all. A command that fails is never
// retried.
func Run(ctx context.Context, opts Options) (Result, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Console == nil {
		opts.Console = os.Stdout
	}
	if opts.Timeout == 0 {
		opts.Timeout = 25 * time.Minute
	}
	if err := os.MkdirAll(opts.ResultsDir, 0o755); err != nil {
		return Result{}, fmt.Errorf("results dir: %w", err)
	}
	mode, why := Resolve(opts.Mode)
	opts.Logger.Info("kvmhost: mode chosen", "mode", mode, "why", why)
	start := time.Now()
	res := Result{Mode: mode}
	if mode == ModeDirect {
		res.Attempts = 1
		code, err := runDirect(ctx, opts)
		res.ExitCode, res.Elapsed = code, time.Since(start)
		return res, err
	}
	unlock, err := lock(ctx, opts)
	if err != nil {
		return res, err
	}
	defer unlock()
	maxAttempts := opts.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = 2
	}
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		res.Attempts = attempt
		a, err := runNested(ctx, opts)
		res.Overhead = a.overhead
		if err != nil {
			return res, err
		}
		if a.broken == "" {
			res.ExitCode, res.Elapsed = a.exitCode, time.Since(start)
			return res, nil
		}
		res.Broken = append(res.Broken, a.broken)
		opts.Logger.Warn("kvmhost: the KVM host broke; this is not a test failure", "attempt", attempt, "why", a.broken)
		if ctx.Err() != nil {
			break
		}
	}
	res.Elapsed = time.Since(start)
	return res, fmt.Errorf("%w: %s", ErrHostBroken, strings.Join(res.Broken, "; then "))
}

// script is run.sh: the environment, then the command.
func script(opts Options) string {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n# Written by the kvmhost harness.\nset -u\n")
	for _, k := range sortedKeys(opts.Env) {
		fmt.Fprintf(&b, "export %s=\"%s\"\n", k, opts.Env[k])
	}
	b.WriteString("exec")
	for _, a := range opts.Command {
		b.WriteString(" " + shellQuote(a))
	}
	b.WriteString("\n")
	return b.String()
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r == '=' || r == ':' || r == '$' || r == ',' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9'))
	}) < 0 {
		return s // plain words, and $VAR references meant to expand
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// runDirect lays the payload out as links in a temporary directory and runs
// the script there.
func runDirect(ctx context.Context, opts Options) (int, error) {
	dir, err := os.MkdirTemp("", "vmm-payload-")
	if err != nil {
		return 0, fmt.Errorf("payload dir: %w", err)
	}
	defer os.RemoveAll(dir)
	for _, f := range opts.Files {
		abs, err := filepath.Abs(f.Src)
		if err != nil {
			return 0, fmt.Errorf("payload %s: %w", f.Src, err)
		}
		dst := filepath.Join(dir, f.Dst)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return 0, fmt.Errorf("payload %s: %w", f.Dst, err)
		}
		if err := os.Symlink(abs, dst); err != nil {
			return 0, fmt.Errorf("payload %s: %w", f.Dst, err)
		}
	}
	results, err := filepath.Abs(opts.ResultsDir)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", script(opts))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PAYLOAD="+dir, "RESULTS="+results)
	cmd.Stdout, cmd.Stderr = opts.Console, opts.Console
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) && ctx.Err() == nil {
		return exit.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("run: %w", err)
	}
	return 0, nil
}

type attempt struct {
	exitCode int
	broken   string
	overhead time.Duration
}

// payload builds the initramfs of one run: the base archive followed by a
// second archive with the files and run.sh.
func payload(opts Options) (string, error) {
	out, err := os.CreateTemp("", "vmm-kvmhost-*.cpio")
	if err != nil {
		return "", fmt.Errorf("initramfs: %w", err)
	}
	defer out.Close()
	base, err := os.Open(opts.Initramfs)
	if err != nil {
		return "", fmt.Errorf("KVM host initramfs (run make images): %w", err)
	}
	defer base.Close()
	if _, err := io.Copy(out, base); err != nil {
		return "", fmt.Errorf("initramfs: %w", err)
	}
	w := bufio.NewWriterSize(out, 1<<20)
	c := newCpioWriter(w)
	for _, f := range opts.Files {
		data, err := os.ReadFile(f.Src)
		if err != nil {
			return "", fmt.Errorf("payload: %w", err)
		}
		perm := uint32(0o644)
		if st, err := os.Stat(f.Src); err == nil && st.Mode()&0o111 != 0 {
			perm = 0o755
		}
		c.file(filepath.Join("payload", f.Dst), perm, data)
	}
	c.file("payload/run.sh", 0o755, []byte(script(opts)))
	if err := c.close(); err != nil {
		return "", fmt.Errorf("payload: %w", err)
	}
	if err := w.Flush(); err != nil {
		return "", fmt.Errorf("payload: %w", err)
	}
	return out.Name(), nil
}

// runNested boots one KVM host and reads its console until the exit
// marker.
func runNested(ctx context.Context, opts Options) (attempt, error) {
	var a attempt
	initrd, err := payload(opts)
	if err != nil {
		return a, err
	}
	defer os.Remove(initrd)
	qemu := opts.QEMU
	if qemu == "" {
		qemu = "qemu-system-x86_64"
		// Its races kill and hang guests under load, whatever the VMM
		// (docs/testing.md): a run on it says nothing about vmm.
		opts.Logger.Warn("kvmhost: the emulator is the distribution's stock QEMU, whose TCG SVM races triple-fault and hang guests under load; make emulator builds the patched one (KVMHOST_QEMU=$(cat .build/emulator))")
	}
	tcgThread := opts.TCGThread
	if tcgThread == "" {
		tcgThread = "multi"
	}
	if tcgThread != "multi" && tcgThread != "single" {
		return a, fmt.Errorf("TCG threading %q: want multi or single", tcgThread)
	}
	mem, cpus := opts.MemoryMiB, opts.CPUs
	if mem == 0 {
		mem = 8192
	}
	if cpus == 0 {
		cpus = 2
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	// A KVM host that reports itself broken gets a grace period, then is
	// stopped: waiting for the whole timeout would waste it.
	hostCtx, stopHost := context.WithCancel(ctx)
	defer stopHost()
	grace := opts.BrokenGrace
	if grace <= 0 {
		grace = DefaultBrokenGrace
	}
	silence := opts.Silence
	if silence <= 0 {
		silence = DefaultSilence
	}
	cmd := exec.CommandContext(hostCtx, qemu,
		"-M", "q35", "-cpu", "max", "-accel", "tcg,thread="+tcgThread,
		"-smp", strconv.Itoa(cpus), "-m", strconv.Itoa(mem),
		"-nodefaults", "-display", "none", "-no-reboot", "-serial", "stdio",
		"-kernel", opts.Kernel, "-initrd", initrd,
		"-append", strings.TrimSpace("console=ttyS0 quiet loglevel=4 panic=-1 softlockup_panic=0 "+opts.Append))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return a, err
	}
	cmd.Stderr = cmd.Stdout
	// Appended to, so that a broken attempt's output stays next to the
	// next one's (make bench keeps the samples a broken attempt took).
	logf, err := os.OpenFile(filepath.Join(opts.ResultsDir, "console.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return a, err
	}
	defer logf.Close()
	start := time.Now()
	fmt.Fprintf(logf, "[kvmhost] KVM host boot at %s\n", start.UTC().Format(time.RFC3339))
	opts.Logger.Info("kvmhost: booting the KVM host", "qemu", qemu, "memory_mib", mem, "cpus", cpus)
	if err := cmd.Start(); err != nil {
		return a, fmt.Errorf("start %s (apt-get install qemu-system-x86): %w", qemu, err)
	}
	con := &console{out: opts.Console, log: logf, results: opts.ResultsDir, start: start,
		broken: make(chan struct{}), heard: make(chan struct{}, 1)}
	var silent atomic.Bool
	go func() {
		t := time.NewTimer(silence)
		defer t.Stop()
		for {
			select {
			case <-con.heard:
				t.Reset(silence)
			case <-t.C:
				opts.Logger.Warn("kvmhost: stopping a KVM host that printed nothing", "for", silence)
				silent.Store(true)
				stopHost()
				return
			case <-hostCtx.Done():
				return
			}
		}
	}()
	go func() {
		select {
		case <-con.broken:
		case <-hostCtx.Done():
			return
		}
		select {
		case <-time.After(grace):
			opts.Logger.Warn("kvmhost: stopping a KVM host that reported itself broken", "grace", grace)
			stopHost()
		case <-hostCtx.Done():
		}
	}()
	readErr := con.read(stdout)
	waitErr := cmd.Wait()
	a.overhead = con.overhead
	switch {
	case con.exit != nil:
		a.exitCode = *con.exit
	case ctx.Err() == nil && silent.Load():
		a.broken = fmt.Sprintf("the KVM host printed nothing for %s (frozen)%s", silence, con.why())
	case ctx.Err() == nil && hostCtx.Err() != nil:
		a.broken = fmt.Sprintf("stopped %s after it reported itself broken%s", grace, con.why())
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		a.broken = fmt.Sprintf("no exit status within %s%s", opts.Timeout, con.why())
	case ctx.Err() != nil:
		return a, fmt.Errorf("interrupted: %w", ctx.Err())
	case !con.started && con.brokenBy == "" && waitErr != nil:
		// The emulator itself failed before the KVM host ran anything
		// (a missing firmware file, a bad option): a setup error, not
		// a KVM host that broke, so not retried.
		return a, fmt.Errorf("%s failed before the KVM host started: %w (see %s)", qemu, waitErr, filepath.Join(opts.ResultsDir, "console.log"))
	default:
		a.broken = fmt.Sprintf("the KVM host ended without an exit status (%v)%s", errors.Join(waitErr, readErr), con.why())
	}
	if con.fileErr != nil && a.broken == "" {
		return a, con.fileErr
	}
	return a, nil
}

// console reads the KVM host's serial output: it streams it, logs it,
// decodes result files and notes the markers.
type console struct {
	out, log io.Writer
	results  string
	start    time.Time

	exit     *int
	started  bool // the payload's start marker was seen
	overhead time.Duration
	brokenBy string
	broken   chan struct{} // closed when brokenBy is set
	heard    chan struct{} // gets a token per line (dropped when full)
	fileErr  error
}

func (c *console) why() string {
	if c.brokenBy == "" {
		return ""
	}
	return ": " + c.brokenBy
}

func (c *console) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	var (
		fileName string
		fileData bytes.Buffer
	)
	for sc.Scan() {
		raw := sc.Text()
		line := strings.TrimRight(raw, "\r")
		select {
		case c.heard <- struct{}{}:
		default:
		}
		fmt.Fprintln(c.log, line)
		switch {
		case fileName != "":
			if line == markerEnd {
				c.saveFile(fileName, fileData.String())
				fileName = ""
				fileData.Reset()
			} else {
				fileData.WriteString(line)
			}
			continue
		case strings.HasPrefix(line, markerFile):
			fileName = filepath.Base(strings.TrimPrefix(line, markerFile))
			continue
		case line == markerAlive:
			continue
		case line == markerStart:
			c.started = true
			c.overhead = time.Since(c.start)
			fmt.Fprintf(c.out, "[kvmhost] payload started %.1fs after the KVM host\n", c.overhead.Seconds())
			continue
		case strings.HasPrefix(line, markerExit):
			if n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, markerExit))); err == nil {
				c.exit = &n
			}
		}
		if c.exit == nil && c.brokenBy == "" && brokenHost.MatchString(line) {
			c.brokenBy = strings.TrimSpace(line)
			if c.broken != nil {
				close(c.broken)
			}
		}
		fmt.Fprintln(c.out, line)
	}
	return sc.Err()
}

func (c *console) saveFile(name, b64 string) {
	data, err := base64.StdEncoding.DecodeString(b64)
	if err == nil {
		err = os.WriteFile(filepath.Join(c.results, name), data, 0o644)
	}
	if err != nil && c.fileErr == nil {
		c.fileErr = fmt.Errorf("result file %s: %w", name, err)
	}
}

// lock takes opts.LockFile, waiting for another KVM host to end.
func lock(ctx context.Context, opts Options) (func(), error) {
	if opts.LockFile == "" {
		return func() {}, nil
	}
	f, err := os.OpenFile(opts.LockFile, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	said := false
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", opts.LockFile, err)
		}
		if !said {
			opts.Logger.Info("kvmhost: waiting for another KVM host to end", "lock", opts.LockFile)
			said = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
