// Package guest runs the real vmm binary for a VmConfig and drives its guest:
// the serial console is recorded and the guest's root shell is driven one
// command at a time (see Shell), the API is reached through a private socket,
// and Stop always leaves no process behind. The e2e suites and the Lua
// scenarios start their VMs through it.
//
// The guest is the project's test image (images/guest-init): its /init
// prints ReadyMarker on ttyS0 and then runs a root busybox shell there.
package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vmmdev/vmm/vm/api"
	"github.com/vmmdev/vmm/vm/config"
)

// Default bounds; Options override them.
const (
	// DefaultStartTimeout bounds how long Start waits for the API socket.
	DefaultStartTimeout = 60 * time.Second
	// DefaultStopTimeout bounds each stage of Stop: the API's vmm.shutdown,
	// then SIGTERM, then SIGKILL.
	DefaultStopTimeout = 10 * time.Second
)

// apiPollInterval is how often Start tries the API socket while the vmm
// comes up.
const apiPollInterval = 50 * time.Millisecond

// waitDelay bounds how long reaping waits for the vmm's output pipes to close
// after the vmm exits.
const waitDelay = 5 * time.Second

// Options tune Start. The zero value is usable.
type Options struct {
	// Name labels the machine in logs and errors; default "vm".
	Name string
	// Binary is the vmm binary; default ResolvePaths().Vmm.
	Binary string
	// ConsoleLog receives the console's text as it arrives (see Console).
	ConsoleLog io.Writer
	// VmmLog receives the vmm's standard error (its log) as it arrives.
	VmmLog io.Writer
	// ExtraArgs are appended to the vmm's command line.
	ExtraArgs []string
	// StartTimeout bounds the wait for the API socket; default
	// DefaultStartTimeout. The context given to Start also bounds it.
	StartTimeout time.Duration
	// StopTimeout bounds each stage of Stop; default DefaultStopTimeout.
	StopTimeout time.Duration
	// Agent gives the VM a vsock device (guest CID DefaultAgentCID, its
	// socket in the machine's directory) when the config has none, so
	// that Sh runs commands through the guest agent (agentrun.go).
	Agent bool
}

// Machine is one running vmm process and its guest.
type Machine struct {
	name    string
	cfg     config.VM
	args    []string
	dir     string
	socket  string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	console *Console
	stderr  *tailBuffer
	shell   *Shell
	agent   *machineAgent // nil without a vsock device
	client  *api.Client
	stopT   time.Duration
	emu     *EmulationSignatures // nil outside the emulated KVM host

	done    chan struct{} // closed once the process is reaped
	waitErr error         // cmd.Wait's result, set before done closes

	mu       sync.Mutex
	boots    int // boots expected so far: 1 + reboots asked for
	waitFrom int // where the next WaitFor starts in the console text

	stopOnce sync.Once
	stopErr  error
}

// Start runs the vmm binary for cfg with its serial console on pipes (the
// guest's ttyS0) and its API on a socket in a private temporary directory,
// and returns once the API answers. Empty payload fields take the project's
// guest: ResolvePaths' kernel and initramfs, and DefaultCmdline. The serial
// mode must be Tty or empty. A vsock device without a socket gets one in
// the machine's directory (see Options.Agent). The process runs in its own process group and
// is killed if the caller dies; call Stop when done with it.
func Start(ctx context.Context, cfg config.VM, opts Options) (*Machine, error) {
	name := opts.Name
	if name == "" {
		name = "vm"
	}
	cfg, bin, err := completeConfig(cfg, opts.Binary)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	dir, err := os.MkdirTemp("", "vmm-guest-")
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	socket := filepath.Join(dir, "api.sock")
	cfg = withAgent(cfg, opts.Agent, dir)
	m := &Machine{
		name:    name,
		cfg:     cfg,
		args:    append(append(cfg.Args(), "--api-socket", socket), opts.ExtraArgs...),
		dir:     dir,
		socket:  socket,
		console: NewConsole(opts.ConsoleLog),
		stderr:  &tailBuffer{max: stderrKeep, tee: opts.VmmLog},
		agent:   newMachineAgent(cfg),
		client:  api.NewClient(socket),
		stopT:   opts.StopTimeout,
		emu:     LoadEmulationSignatures(),
		done:    make(chan struct{}),
		boots:   1,
	}
	if m.stopT <= 0 {
		m.stopT = DefaultStopTimeout
	}
	m.cmd = exec.Command(bin, m.args...)
	m.cmd.Stdout = m.console
	m.cmd.Stderr = m.stderr
	// Should the vmm leave a child holding its output open, Wait still
	// returns this long after the vmm itself exits.
	m.cmd.WaitDelay = waitDelay
	// Own process group: a Ctrl-C at the terminal reaches the caller, which
	// stops the vmm in order. Pdeathsig: a vmm never outlives its caller.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if m.stdin, err = m.cmd.StdinPipe(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	m.shell = NewShell(m.stdin, m.console)
	if err := m.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %s: %w", name, bin, err)
	}
	go m.reap()

	startT := opts.StartTimeout
	if startT <= 0 {
		startT = DefaultStartTimeout
	}
	wctx, cancel := context.WithTimeout(ctx, startT)
	defer cancel()
	if err := m.waitAPI(wctx); err != nil {
		_ = m.Stop()
		return nil, fmt.Errorf("start %s: %w%s", name, err, m.logs())
	}
	return m, nil
}

// completeConfig fills in the project's guest and checks the files exist.
func completeConfig(cfg config.VM, bin string) (config.VM, string, error) {
	p := ResolvePaths()
	if bin == "" {
		bin = p.Vmm
	}
	if cfg.Payload.Kernel == "" {
		cfg.Payload.Kernel = p.Kernel
	}
	if err := checkFile("guest kernel", cfg.Payload.Kernel, EnvKernel); err != nil {
		return cfg, "", err
	}
	if cfg.Payload.Initramfs == "" {
		cfg.Payload.Initramfs = p.Initramfs
	}
	if err := checkFile("guest initramfs", cfg.Payload.Initramfs, EnvInitramfs); err != nil {
		return cfg, "", err
	}
	if cfg.Payload.Cmdline == "" {
		cfg.Payload.Cmdline = DefaultCmdline
	}
	switch cfg.Serial.Mode {
	case "", config.ModeTty:
		cfg.Serial = config.Serial{Mode: config.ModeTty}
	default:
		return cfg, "", fmt.Errorf("serial mode %q: the guest's shell needs the serial console on tty", cfg.Serial.Mode)
	}
	if strings.ContainsRune(bin, os.PathSeparator) {
		if err := checkFile("vmm binary", bin, EnvVmmBin); err != nil {
			return cfg, "", err
		}
	}
	return cfg, bin, nil
}

// reap waits for the process and closes the console, failing waits on it.
func (m *Machine) reap() {
	err := m.cmd.Wait()
	m.waitErr = err
	cause := errors.New("vmm exited")
	if err != nil {
		cause = fmt.Errorf("vmm exited: %w", err)
	}
	m.console.Close(cause)
	close(m.done)
}

// waitAPI polls vmm.ping until it answers, the process exits or ctx ends.
func (m *Machine) waitAPI(ctx context.Context) error {
	t := time.NewTicker(apiPollInterval)
	defer t.Stop()
	var last error
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := m.client.Ping(pctx)
		cancel()
		var ae *api.APIError
		if err == nil || errors.As(err, &ae) {
			return nil // any reply means the API is up
		}
		last = err
		select {
		case <-m.done:
			return fmt.Errorf("vmm exited before its API answered: %s", exitText(m.waitErr))
		case <-ctx.Done():
			return fmt.Errorf("API socket %s did not answer: %w (last error: %w)", m.socket, context.Cause(ctx), last)
		case <-t.C:
		}
	}
}

// Name is the label given in Options.
func (m *Machine) Name() string { return m.name }

// Config is the configuration the vmm was started with, defaults filled in.
func (m *Machine) Config() config.VM { return m.cfg }

// Args is the vmm's command line, without the binary.
func (m *Machine) Args() []string { return append([]string(nil), m.args...) }

// Pid is the vmm's process id.
func (m *Machine) Pid() int { return m.cmd.Process.Pid }

// SocketPath is the vmm's API socket.
func (m *Machine) SocketPath() string { return m.socket }

// API is a client for the vmm's API.
func (m *Machine) API() *api.Client { return m.client }

// Console is the recorder of the guest's serial console.
func (m *Machine) Console() *Console { return m.console }

// ConsoleText is the console's text so far.
func (m *Machine) ConsoleText() string { return m.console.String() }

// Shell is the driver of the guest's console shell. Prefer Machine.Sh, which
// waits for the guest to be ready first.
func (m *Machine) Shell() *Shell { return m.shell }

// VmmLog is the end of the vmm's standard error.
func (m *Machine) VmmLog() string { return m.stderr.String() }

// Exited is closed once the vmm process has exited and been reaped.
func (m *Machine) Exited() <-chan struct{} { return m.done }

// Wait waits for the vmm to exit and returns its exit status: the exit code,
// or -1 when a signal killed it.
func (m *Machine) Wait(ctx context.Context) (int, error) {
	select {
	case <-m.done:
		return m.cmd.ProcessState.ExitCode(), nil
	case <-ctx.Done():
		return 0, fmt.Errorf("%s: waiting for the vmm to exit: %w", m.name, context.Cause(ctx))
	}
}

// Stop ends the vmm: it asks the API for vmm.shutdown and waits, then sends
// SIGTERM to the process group and waits, then SIGKILL; each wait is bounded
// by Options.StopTimeout. It always reaps the process, closes the console
// input and removes the temporary directory. It returns nil when the vmm
// exited on one of the polite requests, and an error when it had to be
// killed or could not be reaped. Calling it again returns the same result.
func (m *Machine) Stop() error {
	m.stopOnce.Do(func() { m.stopErr = m.stop() })
	return m.stopErr
}

func (m *Machine) stop() error {
	defer func() {
		m.stdin.Close()
		m.client.CloseIdleConnections()
		os.RemoveAll(m.dir)
	}()
	if m.exited() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.stopT)
	err := m.client.ShutdownVMM(ctx)
	cancel()
	if err == nil && m.waitExit(m.stopT) {
		return nil
	}
	pgid := m.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	if m.waitExit(m.stopT) {
		return nil
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if !m.waitExit(m.stopT) {
		return fmt.Errorf("%s: vmm (pid %d) was sent SIGKILL but not reaped within %v", m.name, pgid, m.stopT)
	}
	reason := "vmm.shutdown failed"
	if err == nil {
		reason = "vmm.shutdown was accepted"
	}
	return fmt.Errorf("%s: vmm (pid %d) had to be killed: %s, then SIGTERM went unheeded for %v%s", m.name, pgid, reason, m.stopT, m.logs())
}

func (m *Machine) exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

func (m *Machine) waitExit(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-m.done:
		return true
	case <-t.C:
		return false
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
