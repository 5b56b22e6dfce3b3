package pci

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
)

// DevicesPerBus is a bus's device numbers: 0 is the host bridge, 1 to 31
// take devices.
const DevicesPerBus = 32

// Window is a range of guest physical addresses a host bridge forwards to
// its devices' BARs.
type Window struct {
	Base, Size uint64
}

// End is the first address past the window.
func (w Window) End() uint64 { return w.Base + w.Size }

// contains reports whether [base, base+size) lies inside w.
func (w Window) contains(base, size uint64) bool {
	return base >= w.Base && size <= w.Size && base-w.Base <= w.Size-size
}

// SegmentConfig places a PCI segment (a host bridge and its bus 0) in the
// guest.
type SegmentConfig struct {
	// ID is the segment group number (_SEG, the MCFG entry's segment).
	ID uint16
	// ECAM is where bus 0's configuration space is memory mapped:
	// ECAMSize bytes.
	ECAM uint64
	// Window32 takes 32-bit BARs, below 4 GiB; Window64 takes 64-bit ones.
	Window32, Window64 Window
	// ConfigIO says the segment also answers the legacy configuration
	// ports (0xcf8, 0xcfc); only segment 0 may.
	ConfigIO bool
	// Log receives the segment's warnings; nil means slog.Default().
	Log *slog.Logger
}

// ECAMSize is one segment's ECAM: bus 0's 32 devices of 8 functions.
const ECAMSize = DevicesPerBus * 8 * FunctionECAMSize

// HostBridgeHeader identifies the host bridge at device 0: Red Hat's
// "QEMU PCIe Host bridge" id (1b36:0008), which generic virtual host
// bridges use; a guest needs no driver for it.
var HostBridgeHeader = Header{VendorID: 0x1b36, DeviceID: 0x0008, Class: ClassHostBridge,
	SubsystemVendorID: 0x1b36, SubsystemID: 0x0008}

// barMap is a decoding BAR inside one of the segment's windows.
type barMap struct {
	base, size uint64
	f          *Function
	bar        int
}

// Segment is one PCI segment: a host bridge at device 0 of bus 0 and up to
// 31 devices beside it, their configuration space through the ECAM (and,
// for segment 0, the legacy ports), and their BARs inside the segment's
// windows. It places each device's BARs when the device is added, as a
// firmware would, and follows the guest when it moves them.
type Segment struct {
	cfg SegmentConfig
	log *slog.Logger

	mu     sync.Mutex
	slots  [DevicesPerBus]*Function
	placed [DevicesPerBus]map[int]uint64 // where Add put each device's BARs
	next32 uint64                        // the next free address of each window
	next64 uint64

	// maps is where the BARs decode now, read lock-free by every access.
	maps atomic.Pointer[[]barMap]
}

// NewSegment returns a segment with its host bridge.
func NewSegment(cfg SegmentConfig) (*Segment, error) {
	if cfg.ConfigIO && cfg.ID != 0 {
		return nil, fmt.Errorf("pci: segment %d: only segment 0 has the legacy configuration ports", cfg.ID)
	}
	if cfg.Window32.End() > 1<<32 || cfg.Window32.Size == 0 || cfg.Window64.Size == 0 {
		return nil, fmt.Errorf("pci: segment %d: windows %#x+%#x and %#x+%#x", cfg.ID,
			cfg.Window32.Base, cfg.Window32.Size, cfg.Window64.Base, cfg.Window64.Size)
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Segment{cfg: cfg, log: cfg.Log.With("pci_segment", cfg.ID), next32: cfg.Window32.Base, next64: cfg.Window64.Base}
	s.maps.Store(&[]barMap{})
	hb := NewFunction(HostBridgeHeader, nil)
	hb.bdf = BDF{Segment: cfg.ID}
	s.slots[0] = hb
	return s, nil
}

// Config is the segment's placement.
func (s *Segment) Config() SegmentConfig { return s.cfg }

// Function is the function at device dev, or nil.
func (s *Segment) Function(dev int) *Function {
	if dev < 0 || dev >= DevicesPerBus {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.slots[dev]
}

// FreeDevice is the lowest free device number, or an error when the bus
// is full.
func (s *Segment) FreeDevice() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for d := 1; d < DevicesPerBus; d++ {
		if s.slots[d] == nil {
			return d, nil
		}
	}
	return 0, fmt.Errorf("pci: segment %d: all %d device numbers are taken", s.cfg.ID, DevicesPerBus-1)
}

// Add places f at device dev (1 to 31): its BARs get addresses in the
// windows, naturally aligned, and memory decoding is turned on.
func (s *Segment) Add(dev int, f *Function) error {
	if dev < 1 || dev >= DevicesPerBus {
		return fmt.Errorf("pci: segment %d: device %d (1-%d)", s.cfg.ID, dev, DevicesPerBus-1)
	}
	s.mu.Lock()
	if s.slots[dev] != nil {
		s.mu.Unlock()
		return fmt.Errorf("pci: segment %d: device %d is taken", s.cfg.ID, dev)
	}
	addrs := map[int]uint64{}
	n32, n64 := s.next32, s.next64
	for i := range NumBARs {
		b := f.BAR(i)
		if b.Size == 0 {
			continue
		}
		next, w := &n32, s.cfg.Window32
		if b.Kind == BARMem64 {
			next, w = &n64, s.cfg.Window64
		}
		a := (*next + b.Size - 1) &^ (b.Size - 1)
		if !w.contains(a, b.Size) {
			s.mu.Unlock()
			return fmt.Errorf("pci: segment %d: BAR %d of %#x bytes does not fit in the window %#x+%#x", s.cfg.ID, i, b.Size, w.Base, w.Size)
		}
		addrs[i], *next = a, a+b.Size
	}
	s.next32, s.next64 = n32, n64
	f.bdf = BDF{Segment: s.cfg.ID, Device: uint8(dev)}
	s.slots[dev] = f
	s.placed[dev] = addrs
	s.mu.Unlock()
	f.OnBARChange(func(int, uint64, bool) { s.remap() })
	f.assign(addrs)
	return nil
}

// Remove takes the function at device dev (1 to 31) off the bus: its
// configuration space reads all ones and its BARs decode nowhere from
// now on. It returns the function, or nil when the slot was empty. The
// BARs' address space is given back when it was the last allocated in its
// window, so that repeated hot plug of one device does not use up a window.
func (s *Segment) Remove(dev int) *Function {
	if dev < 1 || dev >= DevicesPerBus {
		return nil
	}
	s.mu.Lock()
	f := s.slots[dev]
	s.slots[dev] = nil
	placed := s.placed[dev]
	s.placed[dev] = nil
	if f != nil {
		for i := NumBARs - 1; i >= 0; i-- {
			b := f.BAR(i)
			base, ok := placed[i]
			if b.Size == 0 || !ok {
				continue
			}
			next := &s.next32
			if b.Kind == BARMem64 {
				next = &s.next64
			}
			if base+b.Size == *next {
				*next = base
			}
		}
	}
	s.mu.Unlock()
	if f != nil {
		s.remap()
	}
	return f
}

// remap recomputes where the BARs decode: a BAR with memory decoding on
// that lies inside one of the windows. One the guest moved outside them
// decodes nowhere.
func (s *Segment) remap() {
	s.mu.Lock()
	defer s.mu.Unlock()
	var maps []barMap
	for _, f := range s.slots {
		if f == nil {
			continue
		}
		for i := range NumBARs {
			b := f.BAR(i)
			base, on := f.Decoded(i)
			if b.Size != 0 && on && (s.cfg.Window32.contains(base, b.Size) || s.cfg.Window64.contains(base, b.Size)) {
				maps = append(maps, barMap{base: base, size: b.Size, f: f, bar: i})
			}
		}
	}
	s.maps.Store(&maps)
}

// lookup finds the BAR decoding an access of n bytes at addr; a BAR the
// guest made overlap another loses to the one at the lower device.
func (s *Segment) lookup(addr, n uint64) (barMap, bool) {
	for _, m := range *s.maps.Load() {
		if addr >= m.base && addr-m.base < m.size && n <= m.size-(addr-m.base) {
			return m, true
		}
	}
	return barMap{}, false
}

// config is a configuration access to device dev, function fn of bus 0:
// absent functions read all ones and ignore writes.
func (s *Segment) config(dev, fn int, reg uint64, data []byte, write bool) {
	var f *Function
	if fn == 0 {
		f = s.Function(dev)
	}
	switch {
	case f == nil && !write:
		for i := range data {
			data[i] = 0xff
		}
	case f == nil:
	case write:
		f.WriteConfig(reg, data)
	default:
		f.ReadConfig(reg, data)
	}
}

// ECAMDevice is the bus device of the segment's ECAM (ECAMSize bytes at
// SegmentConfig.ECAM).
func (s *Segment) ECAMDevice() ECAM { return ECAM{s} }

// ECAM serves the memory-mapped configuration space: offset bits 19-15
// are the device, 14-12 the function, 11-0 the register.
type ECAM struct{ s *Segment }

// Read implements the bus device interface.
func (e ECAM) Read(offset uint64, data []byte) { e.access(offset, data, false) }

// Write implements the bus device interface.
func (e ECAM) Write(offset uint64, data []byte) { e.access(offset, data, true) }

func (e ECAM) access(offset uint64, data []byte, write bool) {
	reg := offset % FunctionECAMSize
	n := uint64(len(data))
	if offset >= ECAMSize || (n != 1 && n != 2 && n != 4) || reg%n != 0 {
		if !write {
			for i := range data {
				data[i] = 0xff
			}
		}
		return
	}
	e.s.config(int(offset>>15)%DevicesPerBus, int(offset>>12)%8, reg, data, write)
}

// WindowDevice is the bus device of window w (one of the segment's):
// accesses go to the BAR decoding there, and read all ones where none
// does.
func (s *Segment) WindowDevice(w Window) WindowBus { return WindowBus{s: s, base: w.Base} }

// WindowBus serves one of a segment's windows.
type WindowBus struct {
	s    *Segment
	base uint64
}

// Read implements the bus device interface.
func (w WindowBus) Read(offset uint64, data []byte) {
	if m, ok := w.s.lookup(w.base+offset, uint64(len(data))); ok {
		m.f.ReadBAR(m.bar, w.base+offset-m.base, data)
		return
	}
	for i := range data {
		data[i] = 0xff
	}
}

// Write implements the bus device interface.
func (w WindowBus) Write(offset uint64, data []byte) {
	if m, ok := w.s.lookup(w.base+offset, uint64(len(data))); ok {
		m.f.WriteBAR(m.bar, w.base+offset-m.base, data)
	}
}

// BDF is a function's PCI address: segment, bus, device, function.
type BDF struct {
	Segment  uint16
	Bus      uint8
	Device   uint8
	Function uint8
}

// String writes the address as Linux and Cloud Hypervisor do:
// 0000:00:01.0.
func (b BDF) String() string {
	return fmt.Sprintf("%04x:%02x:%02x.%x", b.Segment, b.Bus, b.Device, b.Function)
}
