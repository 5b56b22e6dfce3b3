package pci

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
)

// fakeVector records what a vector was routed to and what it sent.
type fakeVector struct {
	mu      sync.Mutex
	routes  []string // "address/data" per SetMessage
	sent    []string // the message routed at each Trigger
	fail    bool
	closed  bool
	current string
}

func (v *fakeVector) SetMessage(address uint64, data uint32) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.fail {
		return errors.New("route refused")
	}
	v.current = fmt.Sprintf("%#x/%#x", address, data)
	v.routes = append(v.routes, v.current)
	return nil
}

func (v *fakeVector) Trigger() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.sent = append(v.sent, v.current)
	return nil
}

func (v *fakeVector) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.closed = true
	return nil
}

func (v *fakeVector) take() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := v.sent
	v.sent = nil
	return s
}

// Where the test function's MSI-X lives: in BAR 0 (16 KiB).
const (
	testMSIXTable = 0x2000
	testMSIXPBA   = 0x3000
)

// newMSIXFunction returns a function with n vectors and the fakes behind
// them.
func newMSIXFunction(t *testing.T, n int) (*Function, *MSIX, []*fakeVector) {
	t.Helper()
	f := NewFunction(testHeader, &recordingHandler{})
	if err := f.SetBAR(0, BAR{Size: 16 << 10, Kind: BARMem64}); err != nil {
		t.Fatal(err)
	}
	var vecs []*fakeVector
	m, err := f.AddMSIX(MSIXConfig{Vectors: n, BAR: 0, TableOffset: testMSIXTable, PBAOffset: testMSIXPBA,
		Alloc: func() (MSIVector, error) {
			v := &fakeVector{}
			vecs = append(vecs, v)
			return v, nil
		},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return f, m, vecs
}

func barW32(f *Function, off uint64, v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	f.WriteBAR(0, off, b[:])
}

func barR32(f *Function, off uint64) uint32 {
	var b [4]byte
	f.ReadBAR(0, off, b[:])
	return binary.LittleEndian.Uint32(b[:])
}

// msixCap finds the MSI-X capability's offset.
func msixCap(t *testing.T, f *Function) uint64 {
	t.Helper()
	ids, offs := capList(t, f)
	i := slices.Index(ids, CapMSIX)
	if i < 0 {
		t.Fatalf("no MSI-X capability in %v", ids)
	}
	return offs[i]
}

func TestMSIXCapabilityDescribesTheTable(t *testing.T) {
	f, _, vecs := newMSIXFunction(t, 3)
	if len(vecs) != 3 {
		t.Fatalf("%d vectors allocated, want 3", len(vecs))
	}
	cp := msixCap(t, f)
	if got := cfgRead(f, cp+2, 2); got != 2 {
		t.Errorf("message control %#x, want table size 3 (2), disabled, unmasked", got)
	}
	if got := cfgRead(f, cp+4, 4); got != testMSIXTable { // BIR 0
		t.Errorf("table offset/BIR %#x", got)
	}
	if got := cfgRead(f, cp+8, 4); got != testMSIXPBA { // BIR 0
		t.Errorf("PBA offset/BIR %#x", got)
	}
	cfgWrite(f, cp+2, 2, 0xffff)
	if got := cfgRead(f, cp+2, 2); got != 0xc002 {
		t.Errorf("message control %#x after all ones, want enable and function mask set, table size kept", got)
	}
	for v := range 3 {
		if got := barR32(f, testMSIXTable+uint64(v)*16+12); got != 1 {
			t.Errorf("vector %d control %#x at reset, want masked", v, got)
		}
	}
}

// msixStep is one guest action on the test function, or a device event.
type msixStep struct {
	do   string // "enable", "disable", "fmask", "funmask", "mask", "unmask", "msg", "fire"
	v    int
	want []string // messages sent by vector v after the step (fire, unmask...)
	pend bool     // vector v's pending bit after the step
}

func TestMSIXMaskingAndPendingBits(t *testing.T) {
	const msg0 = "0xfee00000/0x41"
	for _, c := range []struct {
		name  string
		steps []msixStep
	}{
		{"disabled: events are dropped", []msixStep{
			{do: "msg"}, {do: "unmask"}, {do: "fire"},
		}},
		{"enabled and unmasked: delivered at once", []msixStep{
			{do: "msg"}, {do: "enable"}, {do: "unmask"}, {do: "fire", want: []string{msg0}},
		}},
		{"vector masked: pending, then delivered once on unmask", []msixStep{
			{do: "msg"}, {do: "enable"}, {do: "fire", pend: true}, {do: "fire", pend: true},
			{do: "unmask", want: []string{msg0}}, {do: "fire", want: []string{msg0}},
		}},
		{"function mask: pending, delivered when the function unmasks", []msixStep{
			{do: "msg"}, {do: "enable"}, {do: "unmask"}, {do: "fmask"}, {do: "fire", pend: true},
			{do: "funmask", want: []string{msg0}},
		}},
		{"a pending vector waits for both masks", []msixStep{
			{do: "msg"}, {do: "enable"}, {do: "fmask"}, {do: "fire", pend: true},
			{do: "unmask", pend: true}, {do: "funmask", want: []string{msg0}},
		}},
		{"a message rewritten while masked is the one sent", []msixStep{
			{do: "enable"}, {do: "msg"}, {do: "unmask"}, {do: "mask"}, {do: "msg2"}, {do: "fire", pend: true},
			{do: "unmask", want: []string{"0xfee01000/0x52"}},
		}},
		{"another vector's events stay its own", []msixStep{
			{do: "msg"}, {do: "enable"}, {do: "unmask"}, {do: "fire", v: 1, pend: true}, {do: "fire", want: []string{msg0}},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, m, vecs := newMSIXFunction(t, 2)
			cp := msixCap(t, f)
			ctrl := uint32(0)
			for i, s := range c.steps {
				entry := testMSIXTable + uint64(s.v)*16
				switch s.do {
				case "enable":
					ctrl |= msixControlEnable
					cfgWrite(f, cp+2, 2, ctrl)
				case "disable":
					ctrl &^= msixControlEnable
					cfgWrite(f, cp+2, 2, ctrl)
				case "fmask":
					ctrl |= msixControlFunctionMask
					cfgWrite(f, cp+2, 2, ctrl)
				case "funmask":
					ctrl &^= msixControlFunctionMask
					cfgWrite(f, cp+2, 2, ctrl)
				case "mask":
					barW32(f, entry+12, 1)
				case "unmask":
					barW32(f, entry+12, 0)
				case "msg":
					barW32(f, entry, 0xfee0_0000)
					barW32(f, entry+4, 0)
					barW32(f, entry+8, 0x41)
				case "msg2":
					barW32(f, entry, 0xfee0_1000)
					barW32(f, entry+8, 0x52)
				case "fire":
					m.Trigger(s.v)
				}
				if got := vecs[s.v].take(); !slices.Equal(got, s.want) {
					t.Fatalf("step %d (%s): vector %d sent %v, want %v", i, s.do, s.v, got, s.want)
				}
				if got := m.Pending(s.v); got != s.pend {
					t.Fatalf("step %d (%s): pending %v, want %v", i, s.do, got, s.pend)
				}
				pba := barR32(f, testMSIXPBA)
				if got := pba&(1<<s.v) != 0; got != s.pend {
					t.Fatalf("step %d (%s): PBA %#x", i, s.do, pba)
				}
			}
		})
	}
}

func TestMSIXTableAccessesAndRouting(t *testing.T) {
	f, m, vecs := newMSIXFunction(t, 2)
	cp := msixCap(t, f)
	cfgWrite(f, cp+2, 2, msixControlEnable)
	// A qword write of the address, as some drivers do.
	var q [8]byte
	binary.LittleEndian.PutUint64(q[:], 0x1_fee0_2003)
	f.WriteBAR(0, testMSIXTable+16, q[:])
	barW32(f, testMSIXTable+16+8, 0x60)
	if got := barR32(f, testMSIXTable+16); got != 0xfee0_2000 {
		t.Errorf("address low %#x: the low two bits are reserved", got)
	}
	if got := barR32(f, testMSIXTable+16+4); got != 1 {
		t.Errorf("address high %#x", got)
	}
	// Odd accesses are ignored, and read as zero.
	f.WriteBAR(0, testMSIXTable+16+8, []byte{0xff})
	f.WriteBAR(0, testMSIXTable+16+2, q[:4])
	if got := barR32(f, testMSIXTable+16+8); got != 0x60 {
		t.Errorf("data %#x after odd writes", got)
	}
	var b [2]byte
	f.ReadBAR(0, testMSIXTable+16, b[:])
	if b != [2]byte{} {
		t.Errorf("a 2-byte table read gave %x", b)
	}
	if len(vecs[1].routes) != 0 {
		t.Errorf("a masked vector was routed: %v", vecs[1].routes)
	}
	barW32(f, testMSIXTable+16+12, 0)
	if !slices.Equal(vecs[1].routes, []string{"0x1fee02000/0x60"}) {
		t.Errorf("routes on unmask %v", vecs[1].routes)
	}
	// Unmasking again with the same message routes nothing new.
	barW32(f, testMSIXTable+16+12, 1)
	barW32(f, testMSIXTable+16+12, 0)
	if len(vecs[1].routes) != 1 {
		t.Errorf("the same message routed again: %v", vecs[1].routes)
	}
	// A refused route: nothing is sent, and the next unmask tries again.
	vecs[0].fail = true
	barW32(f, testMSIXTable+12, 0)
	m.Trigger(0)
	if got := vecs[0].take(); len(got) != 0 {
		t.Errorf("sent %v without a route", got)
	}
	vecs[0].fail = false
	m.Trigger(0)
	if got := vecs[0].take(); len(got) != 1 {
		t.Errorf("sent %v once routed, want one message", got)
	}
	// The PBA is read-only; out-of-range vectors are ignored.
	barW32(f, testMSIXPBA, 0xffffffff)
	if got := barR32(f, testMSIXPBA); got != 0 {
		t.Errorf("PBA %#x after a write", got)
	}
	m.Trigger(-1)
	m.Trigger(2)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m.Trigger(0)
	for i, v := range vecs {
		if !v.closed {
			t.Errorf("vector %d not closed", i)
		}
	}
}

func TestAddMSIXRefusesBadLayouts(t *testing.T) {
	alloc := func() (MSIVector, error) { return &fakeVector{}, nil }
	for _, c := range []struct {
		name string
		cfg  MSIXConfig
	}{
		{"no vectors", MSIXConfig{Vectors: 0, TableOffset: 0x2000, PBAOffset: 0x3000, Alloc: alloc}},
		{"too many vectors", MSIXConfig{Vectors: MaxMSIXVectors + 1, TableOffset: 0x2000, PBAOffset: 0x3000, Alloc: alloc}},
		{"undefined BAR", MSIXConfig{Vectors: 2, BAR: 1, TableOffset: 0x2000, PBAOffset: 0x3000, Alloc: alloc}},
		{"misaligned table", MSIXConfig{Vectors: 2, TableOffset: 0x2004, PBAOffset: 0x3000, Alloc: alloc}},
		{"table past the BAR", MSIXConfig{Vectors: 2, TableOffset: 0x3ff8, PBAOffset: 0x3000, Alloc: alloc}},
		{"overlap", MSIXConfig{Vectors: 2, TableOffset: 0x2000, PBAOffset: 0x2010, Alloc: alloc}},
		{"no allocator", MSIXConfig{Vectors: 2, TableOffset: 0x2000, PBAOffset: 0x3000}},
		{"allocator fails", MSIXConfig{Vectors: 2, TableOffset: 0x2000, PBAOffset: 0x3000,
			Alloc: func() (MSIVector, error) { return nil, errors.New("no GSI") }}},
	} {
		f := NewFunction(testHeader, nil)
		if err := f.SetBAR(0, BAR{Size: 16 << 10, Kind: BARMem64}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.AddMSIX(c.cfg); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}
