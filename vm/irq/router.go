// Package irq owns a VM's interrupt routing: KVM's GSI routing table (the
// IOAPIC pins and the message signalled interrupts of PCI devices) and the
// irqfds that raise GSIs without a trip through KVM_IRQ_LINE. It is the
// only code that calls KVM_SET_GSI_ROUTING, which replaces the whole table:
// every route is kept here, so that adding one never drops another.
//
// A device raises an interrupt by writing an eventfd bound to its GSI
// (KVM_IRQFD):
//
//	r, err := irq.NewRouter(vm)     // the IOAPIC's routes
//	com1, err := r.Line(4)          // an edge on IOAPIC pin 4
//	v, err := r.NewMSI()            // a GSI of its own, not routed yet
//	err = v.SetMessage(addr, data)  // routed to the message
//	err = v.Trigger()
package irq

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/vmmdev/vmm/kvm"
	"github.com/vmmdev/vmm/vm/eventfd"
	"github.com/vmmdev/vmm/vm/layout"
)

// VM is the KVM VM's interrupt ioctls; *kvm.VM implements it.
type VM interface {
	SetGSIRouting(routes []kvm.IRQRoute) error
	IRQFD(eventfd int, gsi uint32) error
	RemoveIRQFD(eventfd int, gsi uint32) error
}

// ErrClosed is returned by the operations of a router that was closed.
var ErrClosed = errors.New("interrupt router closed")

// Router is a VM's GSI routing table and irqfds. Its methods are safe for
// concurrent use.
type Router struct {
	vm VM

	mu     sync.Mutex
	msi    map[uint32]kvm.MSIMessage // routed MSI GSIs and their messages
	used   map[uint32]bool           // allocated MSI GSIs
	next   uint32                    // the next never-used MSI GSI
	free   []uint32                  // MSI GSIs given back, reused first
	fds    []*irqfd                  // every irqfd, for Close
	closed bool
}

// NewRouter installs the IOAPIC's routes (IOAPICRoutes) as the VM's GSI
// routing table.
func NewRouter(vm VM) (*Router, error) {
	r := &Router{vm: vm, msi: map[uint32]kvm.MSIMessage{}, used: map[uint32]bool{}, next: layout.MSIGSIStart}
	if err := r.vm.SetGSIRouting(IOAPICRoutes()); err != nil {
		return nil, fmt.Errorf("interrupt routing: %w", err)
	}
	return r, nil
}

// IOAPICRoutes is the VM's fixed routing: every GSI below
// layout.IOAPICPins to the IOAPIC pin of the same number, except GSI 0
// (the PIT) to pin 2, as the MADT's interrupt source override says. No GSI
// reaches the legacy PIC, which a hardware-reduced guest never programs.
func IOAPICRoutes() []kvm.IRQRoute {
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

// commit installs the whole table: the IOAPIC's routes, then the routed
// MSIs in GSI order. Called with r.mu held.
func (r *Router) commit() error {
	routes := IOAPICRoutes()
	gsis := make([]uint32, 0, len(r.msi))
	for g := range r.msi {
		gsis = append(gsis, g)
	}
	slices.Sort(gsis)
	for _, g := range gsis {
		m := r.msi[g]
		routes = append(routes, kvm.IRQRoute{GSI: g, MSI: &m})
	}
	return r.vm.SetGSIRouting(routes)
}

// Line returns an edge-triggered interrupt on IOAPIC pin gsi, raised
// through an irqfd. The router closes it.
func (r *Router) Line(gsi uint32) (*Line, error) {
	if gsi >= layout.IOAPICPins {
		return nil, fmt.Errorf("GSI %d is not an IOAPIC pin (0-%d)", gsi, layout.IOAPICPins-1)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	fd, err := r.bind(gsi)
	if err != nil {
		return nil, err
	}
	return &Line{fd: fd}, nil
}

// bind creates an eventfd and binds it to gsi. Called with r.mu held.
func (r *Router) bind(gsi uint32) (*irqfd, error) {
	if r.closed {
		return nil, ErrClosed
	}
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd for GSI %d: %w", gsi, err)
	}
	if err := r.vm.IRQFD(fd, gsi); err != nil {
		unix.Close(fd)
		return nil, err
	}
	e := &irqfd{fd: fd, gsi: gsi}
	r.fds = append(r.fds, e)
	return e, nil
}

// unbind removes e's irqfd and closes it. Called with r.mu held.
func (r *Router) unbind(e *irqfd) error {
	err := e.close(r.vm)
	r.fds = slices.DeleteFunc(r.fds, func(x *irqfd) bool { return x == e })
	return err
}

// NewMSI allocates a GSI for a message signalled interrupt and binds an
// irqfd to it. The GSI has no route until SetMessage; Close gives it back.
func (r *Router) NewMSI() (*MSI, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	var gsi uint32
	switch {
	case len(r.free) > 0:
		gsi, r.free = r.free[0], r.free[1:]
	case r.next < layout.MSIGSIEnd:
		gsi = r.next
		r.next++
	default:
		return nil, fmt.Errorf("no GSI left for an MSI (%d in use)", len(r.used))
	}
	fd, err := r.bind(gsi)
	if err != nil {
		r.free = append(r.free, gsi)
		return nil, err
	}
	r.used[gsi] = true
	return &MSI{r: r, fd: fd}, nil
}

// Close removes every irqfd and closes its eventfd; the lines and MSIs
// then raise nothing. The routing table goes with the VM. Safe to call
// more than once. It returns the irqfds KVM failed to remove (closing
// their eventfds releases them all the same).
func (r *Router) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	var errs []error
	for _, e := range r.fds {
		errs = append(errs, e.close(r.vm))
	}
	r.fds = nil
	return errors.Join(errs...)
}

// irqfd is an eventfd bound to a GSI with KVM_IRQFD.
type irqfd struct {
	gsi uint32
	// mu guards fd against close: a trigger must never write to a
	// descriptor number the process reused.
	mu     sync.RWMutex
	fd     int
	closed bool
}

// signal writes the eventfd once: KVM raises the GSI.
func (e *irqfd) signal() error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return nil
	}
	if err := eventfd.Signal(e.fd); err != nil {
		return fmt.Errorf("raise GSI %d: %w", e.gsi, err)
	}
	return nil
}

// close removes the irqfd and closes the eventfd, which releases the
// irqfd in KVM even when its removal failed; that failure is returned.
func (e *irqfd) close(vm VM) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	err := vm.RemoveIRQFD(e.fd, e.gsi)
	if cerr := unix.Close(e.fd); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close the eventfd of GSI %d: %w", e.gsi, cerr))
	}
	return err
}

// Line is an edge-triggered IOAPIC GSI raised through an irqfd: one
// eventfd write, no exit to KVM_IRQ_LINE.
type Line struct {
	fd *irqfd
}

// GSI is the line's GSI.
func (l *Line) GSI() uint32 { return l.fd.gsi }

// Trigger raises one edge; it implements vm/devices.Interrupt and
// virtio.Interrupt. It never blocks.
func (l *Line) Trigger() error { return l.fd.signal() }
