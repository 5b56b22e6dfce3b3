package lua

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"sync"

	"github.com/vmmdev/vmm/guest"
	"github.com/vmmdev/vmm/vm/config"
)

// VM is one machine a script drives. *guest.Machine is the real one; unit
// tests use a fake.
type VM interface {
	// Pid is the vmm process's id.
	Pid() int
	// WaitReady waits for the guest of the current boot to be ready.
	WaitReady(ctx context.Context) error
	// WaitFor waits for re in the console after the previous match.
	WaitFor(ctx context.Context, re *regexp.Regexp) (string, error)
	// Sh runs a command in the guest's shell: output and exit status.
	Sh(ctx context.Context, cmd string) (string, int, error)
	// Request sends a raw API request and returns the reply's status and
	// body, whatever the status.
	Request(ctx context.Context, method, route string, body []byte) (int, []byte, error)
	// Reboot reboots through the API; RebootFromGuest from inside.
	Reboot(ctx context.Context) error
	RebootFromGuest(ctx context.Context) error
	// Shutdown shuts the VM down through the API; PowerOffFromGuest from
	// inside.
	Shutdown(ctx context.Context) error
	PowerOffFromGuest(ctx context.Context) error
	// CPUs and MemTotal are the guest's view of its CPUs and memory.
	CPUs(ctx context.Context) (guest.CPUs, error)
	MemTotal(ctx context.Context) (uint64, error)
	// ConsoleText is the console output so far.
	ConsoleText() string
	// VmmLog is the vmm's own log (its standard error) so far, or its
	// end when it is long.
	VmmLog() string
	// Wait waits for the vmm to exit and returns its exit status.
	Wait(ctx context.Context) (int, error)
	// Stop ends the vmm process; it is safe to call more than once.
	Stop() error
	// Diagnose returns the signature of an emulation fault of the KVM host
	// that the vmm's state shows, or "" (see guest.Machine.Diagnose).
	Diagnose() string
}

var _ VM = (*guest.Machine)(nil)

// Launcher starts the VMs of a script.
type Launcher interface {
	// Launch starts a VM named name for cfg, whose empty payload fields
	// mean the project's guest. It returns once the VM's API answers.
	Launch(ctx context.Context, name string, cfg config.VM) (VM, error)
}

// GuestLauncher starts real vmm processes with guest.Start.
type GuestLauncher struct {
	// Binary is the vmm binary; empty means guest.ResolvePaths().Vmm.
	Binary string
	// ConsoleLog, when not nil, receives every VM's console text, each
	// line prefixed with the VM's name.
	ConsoleLog io.Writer
	// VmmLog, when not nil, receives every vmm's own log the same way.
	VmmLog io.Writer
}

// Launch implements Launcher.
func (g GuestLauncher) Launch(ctx context.Context, name string, cfg config.VM) (VM, error) {
	opts := guest.Options{Name: name, Binary: g.Binary}
	if g.ConsoleLog != nil {
		opts.ConsoleLog = newLinePrefixer(g.ConsoleLog, name+" | ")
	}
	if g.VmmLog != nil {
		opts.VmmLog = newLinePrefixer(g.VmmLog, name+" vmm: ")
	}
	m, err := guest.Start(ctx, cfg, opts)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// linePrefixer writes each complete line to w with a prefix, so that the
// output of several VMs stays readable when it interleaves.
type linePrefixer struct {
	mu     sync.Mutex
	w      io.Writer
	prefix []byte
	buf    []byte
}

func newLinePrefixer(w io.Writer, prefix string) *linePrefixer {
	return &linePrefixer{w: w, prefix: []byte(prefix)}
}

// maxPartialLine is how much of an unterminated line linePrefixer holds back
// before writing it anyway.
const maxPartialLine = 4096

func (p *linePrefixer) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 && len(p.buf) < maxPartialLine {
			break
		}
		if i < 0 {
			i = len(p.buf) - 1
		}
		line := append(append(append([]byte(nil), p.prefix...), bytes.TrimRight(p.buf[:i+1], "\n")...), '\n')
		_, _ = p.w.Write(line)
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}
