package guest

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vmmdev/vmm/guest/agent"
	"github.com/vmmdev/vmm/vm/config"
)

// The guest agent as Sh's way into the guest: a VM with a vsock device
// (Options.Agent adds one, or the config has one) runs its commands
// through the agent (cmd/vmm-agent, which the test guest's init starts)
// over the vmm's hybrid vsock socket; without one, or while the agent of
// the current boot does not answer, they go to the console's shell.

// Agent defaults.
const (
	// DefaultAgentCID is the guest CID a VM started with Options.Agent
	// gets.
	DefaultAgentCID = 3
	// agentSocketName is the hybrid vsock socket Start makes in the
	// machine's directory for a vsock device given without a socket.
	agentSocketName = "vsock.sock"
	// agentWait bounds how long a command waits for the agent of a new
	// boot to answer before the console takes it, and every later
	// command of that boot.
	agentWait = 3 * time.Second
	// agentWaitUp is the same bound once the agent of the boot has
	// answered: a guest busy elsewhere (vCPUs being ejected) may leave a
	// connection unanswered for the vmm's 2 s. Past it the console takes
	// that command alone.
	agentWaitUp = 10 * time.Second
	// agentRetry is how often the agent is tried meanwhile.
	agentRetry = 100 * time.Millisecond
)

// withAgent gives cfg the vsock device Options.Agent asks for, and a
// vsock device without a socket the socket in dir.
func withAgent(cfg config.VM, want bool, dir string) config.VM {
	if cfg.Vsock == nil && want {
		cfg.Vsock = &config.Vsock{CID: DefaultAgentCID}
	}
	if cfg.Vsock != nil && cfg.Vsock.Socket == "" {
		v := *cfg.Vsock
		v.Socket = filepath.Join(dir, agentSocketName)
		cfg.Vsock = &v
	}
	return cfg
}

// machineAgent is a Machine's use of its guest's agent.
type machineAgent struct {
	client agent.Client
	wait   time.Duration // agentWait, shorter in tests
	waitUp time.Duration // agentWaitUp, shorter in tests

	mu       sync.Mutex
	downBoot int // a boot whose agent did not answer in time (0: none)
	upBoot   int // the last boot whose agent answered
}

// newMachineAgent is the agent of a VM whose config is cfg, or nil
// without a vsock device.
func newMachineAgent(cfg config.VM) *machineAgent {
	if cfg.Vsock == nil {
		return nil
	}
	return &machineAgent{client: agent.Client{Socket: cfg.Vsock.Socket}, wait: agentWait, waitUp: agentWaitUp}
}

// Agent is the client of the guest's agent, or nil when the VM has no
// vsock device. Sh prefers it by itself; specs use it to talk to the
// agent alone.
func (m *Machine) Agent() *agent.Client {
	if m.agent == nil {
		return nil
	}
	c := m.agent.client
	return &c
}

// VsockSocket is the vmm's hybrid vsock socket, or "" without a vsock
// device.
func (m *Machine) VsockSocket() string {
	if m.cfg.Vsock == nil {
		return ""
	}
	return m.cfg.Vsock.Socket
}

// Run runs cmd in the guest as it is now, without waiting for it to be
// ready (Sh does): through the agent when it answers, else in the
// console's shell. It implements Runner.
func (m *Machine) Run(ctx context.Context, cmd string) (string, int, error) {
	if a := m.agent; a != nil {
		m.mu.Lock()
		boot := m.boots
		m.mu.Unlock()
		if out, status, ok, err := a.run(ctx, cmd, boot); ok {
			if errors.Is(err, agent.ErrNoAnswer) {
				err = fmt.Errorf("%w (the guest's console: %s)", err, m.agentPostmortem(ctx))
			}
			return out, status, err
		}
	}
	return m.shell.Run(ctx, cmd)
}

// run runs cmd through the agent of boot. ok is false when the console
// is to run cmd: the agent of this boot never answered within agentWait
// (then neither it nor later commands of the boot wait for it again), or
// it answered before but not within agentWaitUp this time. Once
// connected, whatever happens is the command's.
func (a *machineAgent) run(ctx context.Context, cmd string, boot int) (out string, status int, ok bool, err error) {
	a.mu.Lock()
	down, up := a.downBoot == boot, a.upBoot == boot
	a.mu.Unlock()
	if down {
		return "", 0, false, nil
	}
	wait := a.wait
	if up {
		wait = a.waitUp
	}
	deadline := time.Now().Add(wait)
	for {
		conn, derr := a.client.Dial(ctx)
		if derr == nil {
			a.mu.Lock()
			a.upBoot = boot
			a.mu.Unlock()
			out, status, err = agent.RunOn(ctx, conn, cmd)
			return out, status, true, err
		}
		if ctx.Err() != nil {
			return "", 0, true, fmt.Errorf("guest command %q: %w", cmd, derr)
		}
		if time.Now().After(deadline) {
			if !up {
				a.mu.Lock()
				a.downBoot = boot
				a.mu.Unlock()
			}
			return "", 0, false, nil
		}
		t := time.NewTimer(agentRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", 0, true, fmt.Errorf("guest command %q: %w", cmd, errors.Join(context.Cause(ctx), derr))
		case <-t.C:
		}
	}
}

// agentPostmortem asks the console's shell what became of the agent after
// a connection it closed without answering: whether it still runs, the
// end of its log and of the kernel's.
func (m *Machine) agentPostmortem(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, _, err := m.shell.Run(ctx, "echo agent pid: $(pidof vmm-agent); tail -n 5 /tmp/vmm-agent.log; dmesg | tail -n 5")
	if err != nil {
		return fmt.Sprintf("not readable: %v", err)
	}
	return strings.Join(strings.Fields(strings.ReplaceAll(out, "\n", " | ")), " ")
}
