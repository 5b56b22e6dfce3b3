package guest

import (
	"context"
	"fmt"

	"github.com/vmmdev/vmm/vm"
)

// Reboot asks the API for vm.reboot. WaitReady then waits for the new boot.
// The reset cuts the old boot's output where it was: the console forgets
// a sequence left unfinished (Console.CutSequence), since the old
// machine's last bytes are written before vm.reboot answers.
func (m *Machine) Reboot(ctx context.Context) error {
	if err := m.client.Reboot(ctx); err != nil {
		return fmt.Errorf("%s: reboot: %w", m.name, err)
	}
	m.console.CutSequence()
	m.addBoot()
	return nil
}

// Shutdown asks the API for vm.shutdown: the VM stops, the vmm stays.
func (m *Machine) Shutdown(ctx context.Context) error {
	if err := m.client.Shutdown(ctx); err != nil {
		return fmt.Errorf("%s: shutdown: %w", m.name, err)
	}
	return nil
}

// Info asks the API for vm.info.
func (m *Machine) Info(ctx context.Context) (vm.Info, error) {
	info, err := m.client.Info(ctx)
	if err != nil {
		return info, fmt.Errorf("%s: info: %w", m.name, err)
	}
	return info, nil
}

// Resize asks the API for vm.resize.
func (m *Machine) Resize(ctx context.Context, req vm.ResizeRequest) error {
	if err := m.client.Resize(ctx, req); err != nil {
		return fmt.Errorf("%s: resize: %w", m.name, err)
	}
	return nil
}

// Request sends one raw API request, method to /api/v1/<route> with body
// (none when nil), and returns the reply's status and body whatever the
// status (see api.Client.Do). Only failing to get a reply is an error. It is
// for requests the typed client cannot make, such as malformed ones.
func (m *Machine) Request(ctx context.Context, method, route string, body []byte) (int, []byte, error) {
	status, reply, err := m.client.Do(ctx, method, route, body)
	if err != nil {
		return status, reply, fmt.Errorf("%s: %w", m.name, err)
	}
	return status, reply, nil
}
