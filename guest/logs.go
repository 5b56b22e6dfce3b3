package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stderrKeep is how much of the vmm's standard error a Machine keeps for
// failure messages.
const stderrKeep = 64 << 10

// StateDumpLines returns the lines of the vmm's state dumps (vm.DumpState,
// logged on SIGUSR1) in the part of its log kept so far, oldest first.
func (m *Machine) StateDumpLines() []string { return stateDumpLines(m.stderr.String()) }

// stateDumpLines returns the state dump lines in a vmm's log.
func stateDumpLines(vmmLog string) []string {
	var lines []string
	for _, l := range strings.Split(vmmLog, "\n") {
		if strings.Contains(l, `msg="state dump"`) {
			lines = append(lines, l)
		}
	}
	return lines
}

// stateDumpWait is how long a state dump is given to reach the vmm's log.
const stateDumpWait = 3 * time.Second

// StateDump asks the vmm for its state dump (SIGUSR1) and returns the dump's
// lines from its log: for a guest that stopped answering, where its vCPUs
// are and what its interrupt controllers and virtio queues hold.
func (m *Machine) StateDump() string {
	if m.exited() {
		return ""
	}
	return fmt.Sprintf("\n%s%s", m.name, DumpState(m.cmd.Process, m.stderr.String, 2+m.cfg.CPUs.BootVCPUs))
}

// DumpState asks the vmm process p for its state dump (SIGUSR1) and waits
// until log, the vmm's log as kept so far, holds want more dump lines (the
// serial port, the I/O APIC and each vCPU), stateDumpWait at most. It
// returns the new lines under a heading, or a line saying none came.
func DumpState(p *os.Process, log func() string, want int) string {
	before := len(stateDumpLines(log()))
	if p.Signal(syscall.SIGUSR1) != nil {
		return ": no state dump from the vmm (it could not be signalled)"
	}
	var lines []string
	for deadline := time.Now().Add(stateDumpWait); time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		lines = stateDumpLines(log())
		if len(lines)-before >= want {
			break
		}
	}
	if len(lines) <= before {
		return ": no state dump from the vmm"
	}
	return " vmm state dump:\n" + strings.Join(lines[before:], "\n")
}

// dumpIfTimedOut is StateDump when err is a deadline that passed, which
// may mean a guest that stopped answering, and "" otherwise.
func (m *Machine) dumpIfTimedOut(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return m.StateDump()
	}
	return ""
}

// vmmLogTail is the end of the vmm's log for failure messages, which often
// says why a guest went away.
func (m *Machine) vmmLogTail() string {
	if t := tailLines([]byte(m.stderr.String()), 5); t != "" {
		return fmt.Sprintf("\n%s vmm log (last lines):\n%s", m.name, t)
	}
	return ""
}

// logs is the tail of the console and of the vmm's log, for failure
// messages.
func (m *Machine) logs() string {
	var b strings.Builder
	if t := m.console.Tail(tailOnError); t != "" {
		fmt.Fprintf(&b, "\n%s console (last lines):\n%s", m.name, t)
	}
	if t := tailLines([]byte(m.stderr.String()), tailOnError); t != "" {
		fmt.Fprintf(&b, "\n%s vmm log (last lines):\n%s", m.name, t)
	}
	b.WriteString(m.emulationNote())
	return b.String()
}

// tailBuffer keeps the last max bytes written to it and copies every write
// to tee, when tee is not nil.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
	tee io.Writer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.mu.Unlock()
	if t.tee != nil {
		_, _ = t.tee.Write(p)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
