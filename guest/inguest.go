package guest

import (
	"context"
	"errors"
	"fmt"
	"regexp"
)

// WaitReady waits until the guest of the current boot has printed
// ReadyMarker: its shell is then about to read commands. After Reboot or
// RebootFromGuest it waits for the next boot's marker.
func (m *Machine) WaitReady(ctx context.Context) error {
	m.mu.Lock()
	want := m.boots
	m.mu.Unlock()
	lc := lineCounter{suffix: []byte(ReadyMarker)}
	err := m.console.Wait(ctx, func(text []byte) bool { return lc.count(text) >= want })
	if err != nil {
		dump := m.dumpIfTimedOut(err) // first: the logs then show it too
		return fmt.Errorf("%s: waiting for the guest (boot %d) to print %s: %w%s%s", m.name, want, ReadyMarker, err, m.logs(), dump)
	}
	return nil
}

// WaitFor waits for re in the console text that came after the previous
// WaitFor's match (from the start for the first) and returns the match.
func (m *Machine) WaitFor(ctx context.Context, re *regexp.Regexp) (string, error) {
	m.mu.Lock()
	from := m.waitFrom
	m.mu.Unlock()
	match, end, err := m.console.WaitFor(ctx, from, re)
	if err != nil {
		return "", fmt.Errorf("%s: %w%s", m.name, err, m.logs())
	}
	m.mu.Lock()
	m.waitFrom = end
	m.mu.Unlock()
	return match, nil
}

// Sh waits for the guest to be ready, runs cmd and returns the output and
// the exit status (see Shell.Run): through the guest agent when the VM has
// a vsock device and the agent answers (agentrun.go), else in the console's
// shell. Should the guest reboot by itself meanwhile (a reset, a panic), Sh
// fails at once with ErrGuestRebooted instead of waiting out ctx; later
// calls go to the new boot.
func (m *Machine) Sh(ctx context.Context, cmd string) (string, int, error) {
	var out string
	var status int
	err := m.inGuest(ctx, func(ctx context.Context) error {
		var err error
		out, status, err = m.Run(ctx, cmd)
		return err
	})
	return out, status, err
}

// CPUs returns the guest's online, offline and present CPUs.
func (m *Machine) CPUs(ctx context.Context) (CPUs, error) { return readInGuest(ctx, m, ReadCPUs) }

// MemTotal returns the guest's MemTotal from /proc/meminfo, in bytes.
func (m *Machine) MemTotal(ctx context.Context) (uint64, error) {
	return readInGuest(ctx, m, ReadMemTotal)
}

// readInGuest runs read once the guest is ready, as Sh runs a command,
// and returns what it read.
func readInGuest[T any](ctx context.Context, m *Machine, read func(context.Context, Runner) (T, error)) (T, error) {
	var v T
	err := m.inGuest(ctx, func(ctx context.Context) error {
		var err error
		v, err = read(ctx, m)
		return err
	})
	return v, err
}

// ErrGuestRebooted is the cause of a guest command's failure when the guest
// booted again, unasked, while the command ran.
var ErrGuestRebooted = errors.New("the guest rebooted by itself")

// inGuest waits for the guest to be ready and runs f, whose context ends
// with ErrGuestRebooted if a ready marker beyond the expected boots shows up
// on the console.
func (m *Machine) inGuest(ctx context.Context, f func(ctx context.Context) error) error {
	if err := m.WaitReady(ctx); err != nil {
		return err
	}
	m.mu.Lock()
	want := m.boots
	m.mu.Unlock()
	fctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		lc := lineCounter{suffix: []byte(ReadyMarker)}
		seen := 0
		err := m.console.Wait(fctx, func(text []byte) bool {
			seen = lc.count(text)
			return seen > want
		})
		if err == nil {
			m.mu.Lock()
			m.boots = max(m.boots, seen)
			m.mu.Unlock()
			cancel(fmt.Errorf("%w (boot %d began; see the console)", ErrGuestRebooted, seen))
		}
	}()
	err := f(fctx)
	cancel(nil)
	<-watchDone
	if err != nil {
		dump := m.dumpIfTimedOut(err) // first: the log tail then shows it too
		return fmt.Errorf("%s: %w%s%s%s", m.name, err, m.vmmLogTail(), dump, m.emulationNote())
	}
	return nil
}

// RebootFromGuest has the guest reboot itself at once ("reboot -f"), which
// the vmm sees as a reset. WaitReady then waits for the new boot.
func (m *Machine) RebootFromGuest(ctx context.Context) error {
	if err := m.sendWhenReady(ctx, "reboot -f", "reboot from the guest"); err != nil {
		return err
	}
	m.addBoot()
	return nil
}

// PowerOffFromGuest has the guest power itself off at once ("poweroff -f").
func (m *Machine) PowerOffFromGuest(ctx context.Context) error {
	return m.sendWhenReady(ctx, "poweroff -f", "power off from the guest")
}

// sendWhenReady waits for the guest to be ready and types line into its
// shell without waiting for an answer; what names the action in errors.
func (m *Machine) sendWhenReady(ctx context.Context, line, what string) error {
	if err := m.WaitReady(ctx); err != nil {
		return err
	}
	if err := m.shell.Send(line); err != nil {
		return fmt.Errorf("%s: %s: %w", m.name, what, err)
	}
	return nil
}

func (m *Machine) addBoot() {
	m.mu.Lock()
	m.boots++
	m.mu.Unlock()
}
