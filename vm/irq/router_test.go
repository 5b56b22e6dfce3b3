package irq

import (
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vmmdev/vmm/kvm"
	"github.com/vmmdev/vmm/vm/layout"
)

// fakeVM records the routing table and the irqfds as KVM would hold them.
type fakeVM struct {
	routes  []kvm.IRQRoute
	commits int
	irqfds  map[int]uint32 // eventfd -> GSI
	failSet bool
}

func newFakeVM() *fakeVM { return &fakeVM{irqfds: map[int]uint32{}} }

func (f *fakeVM) SetGSIRouting(routes []kvm.IRQRoute) error {
	if f.failSet {
		return errors.New("EINVAL")
	}
	f.routes = append([]kvm.IRQRoute(nil), routes...)
	f.commits++
	return nil
}

func (f *fakeVM) IRQFD(fd int, gsi uint32) error {
	f.irqfds[fd] = gsi
	return nil
}

func (f *fakeVM) RemoveIRQFD(fd int, gsi uint32) error {
	if f.irqfds[fd] != gsi {
		return errors.New("no such irqfd")
	}
	delete(f.irqfds, fd)
	return nil
}

// msiRoutes is the MSI part of the table.
func (f *fakeVM) msiRoutes() map[uint32]kvm.MSIMessage {
	out := map[uint32]kvm.MSIMessage{}
	for _, r := range f.routes {
		if r.MSI != nil {
			out[r.GSI] = *r.MSI
		}
	}
	return out
}

// ioapicRoutes is the IOAPIC part of the table.
func (f *fakeVM) ioapicRoutes() []kvm.IRQRoute {
	var out []kvm.IRQRoute
	for _, r := range f.routes {
		if r.MSI == nil {
			out = append(out, r)
		}
	}
	return out
}

// signalled reads and resets the eventfd's counter.
func signalled(t *testing.T, e *irqfd) uint64 {
	t.Helper()
	var b [8]byte
	n, err := unix.Read(e.fd, b[:])
	if errors.Is(err, unix.EAGAIN) {
		return 0
	}
	if err != nil || n != 8 {
		t.Fatalf("read eventfd: %d, %v", n, err)
	}
	return binary.NativeEndian.Uint64(b[:])
}

func TestIOAPICRoutesSendThePITToPin2AndSkipGSI2(t *testing.T) {
	r := IOAPICRoutes()
	if len(r) != layout.IOAPICPins-1 {
		t.Fatalf("%d routes, want %d", len(r), layout.IOAPICPins-1)
	}
	if r[0] != (kvm.IRQRoute{GSI: 0, Chip: kvm.IRQChipIOAPIC, Pin: 2}) {
		t.Errorf("GSI 0 routed %+v, want IOAPIC pin 2", r[0])
	}
	for _, x := range r[1:] {
		if x.GSI == 2 || x.Pin != x.GSI || x.Chip != kvm.IRQChipIOAPIC {
			t.Errorf("route %+v", x)
		}
	}
}

func TestMSIRoutesKeepTheIOAPICRoutesAndEachOther(t *testing.T) {
	vm := newFakeVM()
	r, err := NewRouter(vm)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ioapic := IOAPICRoutes()
	a, err := r.NewMSI()
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.NewMSI()
	if err != nil {
		t.Fatal(err)
	}
	if a.GSI() != layout.MSIGSIStart || b.GSI() != layout.MSIGSIStart+1 {
		t.Errorf("GSIs %d, %d, want %d, %d", a.GSI(), b.GSI(), layout.MSIGSIStart, layout.MSIGSIStart+1)
	}
	if len(vm.msiRoutes()) != 0 {
		t.Errorf("MSIs routed before SetMessage: %v", vm.msiRoutes())
	}
	if err := a.SetMessage(0xfee0_0000, 0x41); err != nil {
		t.Fatal(err)
	}
	if err := b.SetMessage(0xfee0_1000, 0x42); err != nil {
		t.Fatal(err)
	}
	want := map[uint32]kvm.MSIMessage{a.GSI(): {Address: 0xfee0_0000, Data: 0x41}, b.GSI(): {Address: 0xfee0_1000, Data: 0x42}}
	if got := vm.msiRoutes(); !reflect.DeepEqual(got, want) {
		t.Errorf("MSI routes %v, want %v", got, want)
	}
	if !reflect.DeepEqual(vm.ioapicRoutes(), ioapic) {
		t.Errorf("IOAPIC routes lost: %v", vm.ioapicRoutes())
	}

	commits := vm.commits
	if err := a.SetMessage(0xfee0_0000, 0x41); err != nil || vm.commits != commits {
		t.Errorf("the same message again: %v, %d commits (want none)", err, vm.commits-commits)
	}
	if err := a.SetMessage(0xfee0_2000, 0x51); err != nil {
		t.Fatal(err)
	}
	if got := vm.msiRoutes()[a.GSI()]; got != (kvm.MSIMessage{Address: 0xfee0_2000, Data: 0x51}) {
		t.Errorf("moved message %+v", got)
	}

	vm.failSet = true
	if err := b.SetMessage(0xfee0_3000, 0x60); err == nil {
		t.Error("a refused table reported success")
	}
	vm.failSet = false
	if err := a.SetMessage(0xfee0_2000, 0x52); err != nil {
		t.Fatal(err)
	}
	if got := vm.msiRoutes()[b.GSI()]; got != (kvm.MSIMessage{Address: 0xfee0_1000, Data: 0x42}) {
		t.Errorf("after a refused update, b's route is %+v, want the old one", got)
	}

	// Close gives the GSI back: its route and irqfd go, the next MSI gets it.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := vm.msiRoutes()[b.GSI()]; ok {
		t.Error("a closed MSI is still routed")
	}
	for _, g := range vm.irqfds {
		if g == b.GSI() {
			t.Error("a closed MSI keeps its irqfd")
		}
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	c, err := r.NewMSI()
	if err != nil {
		t.Fatal(err)
	}
	if c.GSI() != b.GSI() {
		t.Errorf("new MSI on GSI %d, want the freed %d", c.GSI(), b.GSI())
	}
}

func TestTriggerWritesTheIRQFDsEventfd(t *testing.T) {
	vm := newFakeVM()
	r, err := NewRouter(vm)
	if err != nil {
		t.Fatal(err)
	}
	l, err := r.Line(5)
	if err != nil {
		t.Fatal(err)
	}
	v, err := r.NewMSI()
	if err != nil {
		t.Fatal(err)
	}
	if vm.irqfds[l.fd.fd] != 5 || vm.irqfds[v.fd.fd] != v.GSI() {
		t.Errorf("irqfds %v: want the line on GSI 5 and the MSI on %d", vm.irqfds, v.GSI())
	}
	for range 3 {
		if err := l.Trigger(); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.Trigger(); err != nil {
		t.Fatal(err)
	}
	if n := signalled(t, l.fd); n != 3 {
		t.Errorf("line signalled %d times, want 3", n)
	}
	if n := signalled(t, v.fd); n != 1 {
		t.Errorf("MSI signalled %d times, want 1", n)
	}
	if _, err := r.Line(layout.IOAPICPins); err == nil {
		t.Error("a line beyond the IOAPIC's pins was made")
	}
	r.Close()
	if len(vm.irqfds) != 0 {
		t.Errorf("irqfds left after Close: %v", vm.irqfds)
	}
	if err := l.Trigger(); err != nil {
		t.Errorf("Trigger after Close: %v, want a silent no-op", err)
	}
	if err := v.Close(); err != nil {
		t.Errorf("MSI Close after the router's: %v", err)
	}
	if _, err := r.NewMSI(); !errors.Is(err, ErrClosed) {
		t.Errorf("NewMSI after Close: %v, want ErrClosed", err)
	}
}
