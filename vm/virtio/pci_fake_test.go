package virtio

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/vmmdev/vmm/vm/pci"
)

// fakeVector is an MSI-X vector that counts what it sends.
type fakeVector struct {
	sent    atomic.Int64
	mu      sync.Mutex
	message string
}

func (v *fakeVector) SetMessage(address uint64, data uint32) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.message = fmt.Sprintf("%#x/%#x", address, data)
	return nil
}

func (v *fakeVector) Trigger() error { v.sent.Add(1); return nil }
func (v *fakeVector) Close() error   { return nil }

// fakeRegistry stands for KVM's ioeventfd registrations.
type fakeRegistry struct {
	mu  sync.Mutex
	fds map[uint64]IOEventFD // by address
}

func (r *fakeRegistry) AddIOEventFD(e IOEventFD) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.fds[e.Addr]; ok {
		return fmt.Errorf("EEXIST at %#x", e.Addr)
	}
	r.fds[e.Addr] = e
	return nil
}

func (r *fakeRegistry) RemoveIOEventFD(e IOEventFD) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fds[e.Addr] != e {
		return fmt.Errorf("ENOENT at %#x", e.Addr)
	}
	delete(r.fds, e.Addr)
	return nil
}

func (r *fakeRegistry) addrs() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []uint64
	for a := range r.fds {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// The fake guest's PCI: segment 0's windows, and the device at 00:01.0.
var testSegment = pci.SegmentConfig{
	ECAM:     0xe000_0000,
	Window32: pci.Window{Base: 0xc000_0000, Size: 16 << 20},
	Window64: pci.Window{Base: 0x1_0000_0000, Size: 16 << 30},
	ConfigIO: true,
}

const testDevice = 1

// fakePCI is the virtio-pci half of the fake driver: it finds the virtio
// structures through the capabilities, as Linux's virtio_pci_modern does,
// and programs them through the segment's ECAM and window.
type fakePCI struct {
	d       *fakeDriver
	tr      *PCI
	seg     *pci.Segment
	events  *fakeRegistry
	vectors []*fakeVector
	caps    map[byte]uint64 // cfg_type -> offset in the BAR
	capOff  map[byte]uint64 // cfg_type -> capability's offset in configuration space
	mult    uint32
}

// newFakePCIDriver puts dev behind a virtio-pci transport at 00:01.0 of a
// fresh segment, finds its structures and enables MSI-X with every vector
// unmasked (vector v sends data 0x30+v).
func newFakePCIDriver(t testing.TB, dev Device) *fakeDriver {
	t.Helper()
	d := &fakeDriver{t: t, mem: newFakeMemory(testRAMBase, testRAMSize), irq: &fakeInterrupt{}, next: testRAMBase, queues: map[int]*fakeQueue{}}
	p := &fakePCI{d: d, events: &fakeRegistry{fds: map[uint64]IOEventFD{}}, caps: map[byte]uint64{}, capOff: map[byte]uint64{}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tr, err := NewPCI(dev, PCIConfig{Memory: d.mem, IOEvents: p.events, Log: log,
		MSI: func() (pci.MSIVector, error) {
			v := &fakeVector{}
			p.vectors = append(p.vectors, v)
			return v, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	cfg := testSegment
	cfg.Log = log
	if p.seg, err = pci.NewSegment(cfg); err != nil {
		t.Fatal(err)
	}
	if err := p.seg.Add(testDevice, tr.Function()); err != nil {
		t.Fatal(err)
	}
	p.tr = tr
	d.pci = p
	p.probe()
	return d
}

// cfg reads n bytes of the device's configuration space through the ECAM.
func (p *fakePCI) cfg(reg uint64, n int) uint32 {
	b := make([]byte, 4)
	p.seg.ECAMDevice().Read(testDevice<<15|reg, b[:n])
	return binary.LittleEndian.Uint32(b)
}

func (p *fakePCI) setCfg(reg uint64, n int, v uint32) {
	b := binary.LittleEndian.AppendUint32(nil, v)
	p.seg.ECAMDevice().Write(testDevice<<15|reg, b[:n])
}

// bar is BAR 0's address as the configuration space holds it.
func (p *fakePCI) bar() uint64 {
	return uint64(p.cfg(pci.RegBAR0, 4)&^0xf) | uint64(p.cfg(pci.RegBAR0+4, 4))<<32
}

// rd and wr access n bytes at offset of BAR 0 through the 64-bit window.
func (p *fakePCI) rd(offset uint64, n int) uint64 {
	b := make([]byte, 8)
	p.seg.WindowDevice(testSegment.Window64).Read(p.bar()-testSegment.Window64.Base+offset, b[:n])
	return binary.LittleEndian.Uint64(b)
}

func (p *fakePCI) wr(offset uint64, n int, v uint64) {
	b := binary.LittleEndian.AppendUint64(nil, v)
	p.seg.WindowDevice(testSegment.Window64).Write(p.bar()-testSegment.Window64.Base+offset, b[:n])
}

// probe walks the capabilities and turns MSI-X on.
func (p *fakePCI) probe() {
	t := p.d.t
	var msix uint64
	for off := uint64(p.cfg(pci.RegCapabilities, 1)); off != 0; off = uint64(p.cfg(off+1, 1)) {
		switch p.cfg(off, 1) {
		case pci.CapVendor:
			typ := byte(p.cfg(off+3, 1))
			if bar := p.cfg(off+4, 1); bar != 0 && typ != pciCapPCICfg {
				t.Fatalf("capability type %d in BAR %d", typ, bar)
			}
			p.caps[typ] = uint64(p.cfg(off+8, 4))
			p.capOff[typ] = off
			if typ == pciCapNotify {
				p.mult = p.cfg(off+16, 4)
			}
		case pci.CapMSIX:
			msix = off
		}
	}
	for _, typ := range []byte{pciCapCommon, pciCapNotify, pciCapISR, pciCapPCICfg} {
		if _, ok := p.caps[typ]; !ok {
			t.Fatalf("no virtio capability of type %d: %v", typ, p.caps)
		}
	}
	if msix == 0 {
		t.Fatal("no MSI-X capability")
	}
	p.setCfg(msix+2, 2, 1<<15)
	table := uint64(p.cfg(msix+4, 4))
	for v := range p.vectors {
		e := table + uint64(v)*pci.MSIXEntrySize
		p.wr(e, 4, 0xfee0_0000)
		p.wr(e+8, 4, 0x30+uint64(v))
		p.wr(e+12, 4, 0)
	}
}

func (p *fakePCI) common(field uint64, n int) uint64 { return p.rd(p.caps[pciCapCommon]+field, n) }
func (p *fakePCI) setCommon(field uint64, n int, v uint64) {
	p.wr(p.caps[pciCapCommon]+field, n, v)
}

func (p *fakePCI) deviceFeatures() uint64 {
	p.setCommon(commonDeviceFeatureSelect, 4, 0)
	lo := p.common(commonDeviceFeature, 4)
	p.setCommon(commonDeviceFeatureSelect, 4, 1)
	return p.common(commonDeviceFeature, 4)<<32 | lo
}

// setDriverFeatures also picks vector 0 for configuration changes, as
// Linux does right after a reset.
func (p *fakePCI) setDriverFeatures(f uint64) {
	p.setCommon(commonDriverFeatureSelect, 4, 0)
	p.setCommon(commonDriverFeature, 4, f&0xffffffff)
	p.setCommon(commonDriverFeatureSelect, 4, 1)
	p.setCommon(commonDriverFeature, 4, f>>32)
	p.setCommon(commonConfigMSIXVector, 2, 0)
}

func (p *fakePCI) status() uint32     { return uint32(p.common(commonDeviceStatus, 1)) }
func (p *fakePCI) setStatus(v uint32) { p.setCommon(commonDeviceStatus, 1, uint64(v)) }

// setupQueue programs queue q with vector q.index+1.
func (p *fakePCI) setupQueue(q *fakeQueue) {
	t := p.d.t
	p.setCommon(commonQueueSelect, 2, uint64(q.index))
	if p.common(commonQueueEnable, 2) != 0 {
		t.Fatalf("queue %d enabled before setup", q.index)
	}
	if max := p.common(commonQueueSize, 2); max < uint64(q.size) {
		t.Fatalf("queue %d: queue_size %d below %d", q.index, max, q.size)
	}
	p.setCommon(commonQueueSize, 2, uint64(q.size))
	for _, r := range []struct {
		field uint64
		addr  uint64
	}{{commonQueueDesc, q.desc}, {commonQueueDriver, q.avail}, {commonQueueDevice, q.used}} {
		p.setCommon(r.field, 4, r.addr&0xffffffff)
		p.setCommon(r.field+4, 4, r.addr>>32)
	}
	p.setCommon(commonQueueMSIXVector, 2, uint64(q.index+1))
	if got := p.common(commonQueueMSIXVector, 2); got != uint64(q.index+1) {
		t.Fatalf("queue %d: vector %#x, want %d", q.index, got, q.index+1)
	}
	p.setCommon(commonQueueEnable, 2, 1)
}

// notify writes the queue's index at its notify address.
func (p *fakePCI) notify(i int) {
	p.setCommon(commonQueueSelect, 2, uint64(i))
	off := p.common(commonQueueNotifyOff, 2)
	p.wr(p.caps[pciCapNotify]+off*uint64(p.mult), 2, uint64(i))
}

// sent is how many messages vector v sent.
func (p *fakePCI) sent(v int) int64 { return p.vectors[v].sent.Load() }
