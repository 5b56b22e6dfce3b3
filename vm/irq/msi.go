package irq

import (
	"errors"
	"fmt"

	"github.com/vmmdev/vmm/kvm"
)

// MSI is a message signalled interrupt: a GSI of its own, routed by KVM
// to the message a PCI function's MSI or MSI-X vector holds, and raised
// through an irqfd. It implements vm/pci.MSIVector.
type MSI struct {
	r  *Router
	fd *irqfd
}

// GSI is the interrupt's GSI.
func (v *MSI) GSI() uint32 { return v.fd.gsi }

// SetMessage routes the GSI to the message: address and data as the guest
// wrote them into the vector. It replaces the routing table only when the
// message changed.
func (v *MSI) SetMessage(address uint64, data uint32) error {
	r := v.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || v.fd.closed {
		return ErrClosed
	}
	gsi := v.fd.gsi
	msg := kvm.MSIMessage{Address: address, Data: data}
	old, routed := r.msi[gsi]
	if routed && old == msg {
		return nil
	}
	r.msi[gsi] = msg
	if err := r.commit(); err != nil {
		if routed {
			r.msi[gsi] = old
		} else {
			delete(r.msi, gsi)
		}
		return fmt.Errorf("route GSI %d to MSI address %#x data %#x: %w", gsi, address, data, err)
	}
	return nil
}

// Trigger sends the message: KVM delivers it to the local APICs it
// addresses. It never blocks. Before SetMessage it raises nothing.
func (v *MSI) Trigger() error { return v.fd.signal() }

// Close removes the irqfd and the route and gives the GSI back. Safe to
// call more than once, and after the router closed.
func (v *MSI) Close() error {
	r := v.r
	r.mu.Lock()
	defer r.mu.Unlock()
	gsi := v.fd.gsi
	if !r.used[gsi] {
		return nil
	}
	uerr := r.unbind(v.fd)
	delete(r.used, gsi)
	r.free = append(r.free, gsi)
	if _, routed := r.msi[gsi]; routed {
		delete(r.msi, gsi)
		if !r.closed {
			if err := r.commit(); err != nil {
				return errors.Join(uerr, fmt.Errorf("drop the route of GSI %d: %w", gsi, err))
			}
		}
	}
	return uerr
}
