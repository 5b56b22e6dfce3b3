package vm

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/vmmdev/vmm/kvm"
	"github.com/vmmdev/vmm/vm/layout"
)

// gsiRoutes is the VM's interrupt routing: every GSI to the IOAPIC pin of
// the same number, except GSI 0 (the PIT) to pin 2, as the MADT's interrupt
// source override says. No GSI reaches the legacy PIC, which a
// hardware-reduced guest never programs.
func gsiRoutes() []kvm.IRQRoute {
	var r []kvm.IRQRoute
	for gsi := uint32(0); gsi < layout.IOAPICPins; gsi++ {
		switch gsi {
		case 0:
			r = append(r, kvm.IRQRoute{GSI: 0, Chip: kvm.IRQChipIOAPIC, Pin: 2})
		case 2:
		default:
			r = append(r, kvm.IRQRoute{GSI: gsi, Chip: kvm.IRQChipIOAPIC, Pin: gsi})
		}
	}
	return r
}

// irqLine is an edge-triggered GSI raised through an irqfd: one eventfd
// write, no exit to KVM_IRQ_LINE.
type irqLine struct {
	vm  *kvm.VM
	gsi uint32
	fd  int
}

// newIRQLine binds a new eventfd to gsi; the machine closes it on close.
func (m *machine) newIRQLine(gsi uint32) (*irqLine, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd for GSI %d: %w", gsi, err)
	}
	if err := m.vm.IRQFD(fd, gsi); err != nil {
		unix.Close(fd)
		return nil, err
	}
	l := &irqLine{vm: m.vm, gsi: gsi, fd: fd}
	m.irqfds = append(m.irqfds, l)
	return l, nil
}

// Trigger implements devices.Interrupt.
func (l *irqLine) Trigger() error {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, err := unix.Write(l.fd, one[:])
	if errors.Is(err, unix.EAGAIN) {
		return nil // the counter is saturated: an edge is pending anyway
	}
	if err != nil {
		return fmt.Errorf("raise GSI %d: %w", l.gsi, err)
	}
	return nil
}

func (l *irqLine) close() {
	_ = l.vm.RemoveIRQFD(l.fd, l.gsi)
	unix.Close(l.fd)
}
