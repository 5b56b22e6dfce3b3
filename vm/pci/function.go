package pci

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// Header identifies a function in its configuration header.
type Header struct {
	VendorID, DeviceID uint16
	Revision           uint8
	// Class is the class code: base class, subclass and programming
	// interface (ClassEthernet, ...).
	Class                          uint32
	SubsystemVendorID, SubsystemID uint16
}

// BARKind is a base address register's type. Only memory BARs exist
// here: no device of this VMM decodes I/O ports.
type BARKind int

// BAR kinds.
const (
	BARMem32 BARKind = iota // a 32-bit memory BAR, placed below 4 GiB
	BARMem64                // a 64-bit memory BAR: it takes two registers
)

// BAR is one memory range a function decodes.
type BAR struct {
	// Size is a power of two, at least MinBARSize.
	Size         uint64
	Kind         BARKind
	Prefetchable bool
}

// MinBARSize is the smallest BAR this package makes: a page, so that no
// two BARs share one.
const MinBARSize = 4096

// BARHandler serves a guest's accesses to a function's BARs: bar is the
// BAR's index (the low register of a 64-bit BAR), offset is from its base.
// It runs on the vCPU thread of the access and never panics on what the
// guest sends.
type BARHandler interface {
	ReadBAR(bar int, offset uint64, data []byte)
	WriteBAR(bar int, offset uint64, data []byte)
}

// BARListener hears where a BAR decodes: at base when on is set, nowhere
// otherwise (memory decoding off). It is called, in order, whenever the
// guest moves a BAR or switches memory decoding, outside the function's
// locks.
type BARListener func(bar int, base uint64, on bool)

// barDecode is where a BAR decodes: base is zero when it does not.
type barDecode struct {
	base uint64
	on   bool
}

// configHook gives a range of configuration space behaviour. A window
// (read set) keeps no bytes: reads and writes go to read and write, with
// offsets from the range's start. A watch (written set) keeps its bytes in
// the configuration space with their write masks and hears their new
// value after a write touched them.
type configHook struct {
	start, end uint64
	read       func(offset uint64, data []byte)
	write      func(offset uint64, data []byte)
	written    func(value []byte)
}

// barRegion is a range of a BAR served by a handler of its own (the
// MSI-X table and PBA).
type barRegion struct {
	bar         int
	start, size uint64
	h           BARHandler
}

// Function is one PCI function: its configuration space (the type 0
// header, BARs that size and move as the guest programs them, the
// capability list) and the dispatch of its BARs' accesses. It is built
// (capabilities, BARs, hooks, listeners) before a segment places it, and
// safe for concurrent use by the guest's vCPUs after.
type Function struct {
	handler BARHandler

	// wmu serialises configuration writes from their start to the last
	// hook and listener they cause, so that listeners hear moves in
	// order.
	wmu sync.Mutex
	// mu guards the registers and what decodes where.
	mu      sync.Mutex
	regs    [ConfigSize]byte
	wmask   [ConfigSize]byte
	decoded [NumBARs]barDecode

	// Set up before placement, read-only after.
	bars      [NumBARs]BAR
	bdf       BDF
	nextCap   int // where the next capability goes
	lastNext  int // the pointer the next capability is linked from
	hooks     []configHook
	regions   []barRegion
	listeners []BARListener
}

// NewFunction returns a function with header h whose BARs handler
// serves; its command register is zero (nothing decodes) until a segment
// places it.
func NewFunction(h Header, handler BARHandler) *Function {
	f := &Function{handler: handler, nextCap: capStart, lastNext: RegCapabilities}
	le := binary.LittleEndian
	le.PutUint16(f.regs[RegVendorID:], h.VendorID)
	le.PutUint16(f.regs[RegDeviceID:], h.DeviceID)
	f.regs[RegRevision] = h.Revision
	f.regs[RegClass] = byte(h.Class)
	f.regs[RegClass+1] = byte(h.Class >> 8)
	f.regs[RegClass+2] = byte(h.Class >> 16)
	le.PutUint16(f.regs[RegSubsystemVendorID:], h.SubsystemVendorID)
	le.PutUint16(f.regs[RegSubsystemID:], h.SubsystemID)
	le.PutUint16(f.wmask[RegCommand:], commandWritable)
	f.wmask[RegCacheLineSize] = 0xff
	f.wmask[RegInterruptLine] = 0xff // a scratch byte for the OS
	return f
}

// BDF is where the function sits; zero until a segment placed it.
func (f *Function) BDF() BDF { return f.bdf }

// SetBAR defines BAR i before the function is placed; the segment then
// gives it an address. A 64-bit BAR takes registers i and i+1.
func (f *Function) SetBAR(i int, b BAR) error {
	switch {
	case i < 0 || i >= NumBARs:
		return fmt.Errorf("pci: BAR %d: there are %d", i, NumBARs)
	case b.Size < MinBARSize || b.Size&(b.Size-1) != 0:
		return fmt.Errorf("pci: BAR %d: size %#x is not a power of two of at least %#x", i, b.Size, MinBARSize)
	case b.Kind == BARMem32 && b.Size > 1<<31:
		return fmt.Errorf("pci: BAR %d: %#x bytes is too large for a 32-bit BAR", i, b.Size)
	case b.Kind == BARMem64 && i == NumBARs-1:
		return fmt.Errorf("pci: BAR %d: a 64-bit BAR needs the next register too", i)
	case b.Kind != BARMem32 && b.Kind != BARMem64:
		return fmt.Errorf("pci: BAR %d: unknown kind %d", i, b.Kind)
	}
	used := func(j int) bool {
		return f.bars[j].Size != 0 || (j > 0 && f.bars[j-1].Kind == BARMem64 && f.bars[j-1].Size != 0)
	}
	if used(i) || (b.Kind == BARMem64 && used(i+1)) {
		return fmt.Errorf("pci: BAR %d is taken", i)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bars[i] = b
	flags := uint32(0)
	if b.Kind == BARMem64 {
		flags |= barMem64
	}
	if b.Prefetchable {
		flags |= barPrefetchable
	}
	le := binary.LittleEndian
	reg := RegBAR0 + 4*i
	le.PutUint32(f.regs[reg:], flags)
	// The address bits below the size read as zero: a guest writing all
	// ones reads back the size mask.
	le.PutUint32(f.wmask[reg:], uint32(^(b.Size-1))&^barFlagBits)
	if b.Kind == BARMem64 {
		le.PutUint32(f.wmask[reg+4:], uint32(^(b.Size-1)>>32))
	}
	return nil
}

// BAR is BAR i's definition; its Size is zero when i is not defined (or
// is the high half of a 64-bit BAR).
func (f *Function) BAR(i int) BAR {
	if i < 0 || i >= NumBARs {
		return BAR{}
	}
	return f.bars[i]
}

// Address is BAR i's address as the guest last programmed it, whether it
// decodes or not.
func (f *Function) Address(i int) uint64 {
	if i < 0 || i >= NumBARs || f.bars[i].Size == 0 {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.barAddrLocked(i)
}

// Decoded reports where BAR i decodes now: on is false, and base zero,
// while memory decoding is off.
func (f *Function) Decoded(i int) (base uint64, on bool) {
	if i < 0 || i >= NumBARs {
		return 0, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.decoded[i].base, f.decoded[i].on
}

// OnBARChange adds a listener for BAR moves; add them before placement.
func (f *Function) OnBARChange(l BARListener) {
	f.listeners = append(f.listeners, l)
}

// AddCapability appends a capability with the given id to the list: body
// follows the id and next-pointer bytes, writable (nil, or as long as
// body) masks the bits a guest may write. It returns the capability's
// offset.
func (f *Function) AddCapability(id byte, body, writable []byte) (int, error) {
	if writable != nil && len(writable) != len(body) {
		return 0, errors.New("pci: capability write mask and body differ in length")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	off := (f.nextCap + capAlign - 1) &^ (capAlign - 1)
	if off+2+len(body) > ConfigSize {
		return 0, fmt.Errorf("pci: capability %#x of %d bytes does not fit at %#x", id, 2+len(body), off)
	}
	f.regs[off] = id
	copy(f.regs[off+2:], body)
	copy(f.wmask[off+2:], writable)
	f.regs[f.lastNext] = byte(off)
	f.lastNext = off + 1
	f.nextCap = off + 2 + len(body)
	binary.LittleEndian.PutUint16(f.regs[RegStatus:], binary.LittleEndian.Uint16(f.regs[RegStatus:])|StatusCapabilities)
	return off, nil
}

// HookWindow makes n bytes of configuration space at offset a window:
// reads and writes there go to read and write (offsets from the window's
// start) and nothing is kept. They run outside the function's locks.
func (f *Function) HookWindow(offset, n int, read, write func(offset uint64, data []byte)) error {
	if offset < capStart || n <= 0 || offset+n > ConfigSize || read == nil || write == nil {
		return fmt.Errorf("pci: window %#x+%d outside the capabilities", offset, n)
	}
	f.hooks = append(f.hooks, configHook{start: uint64(offset), end: uint64(offset + n), read: read, write: write})
	return nil
}

// watch calls written with the new value of n bytes at offset after any
// write that touched them.
func (f *Function) watch(offset, n int, written func(value []byte)) {
	f.hooks = append(f.hooks, configHook{start: uint64(offset), end: uint64(offset + n), written: written})
}

// addRegion serves size bytes of BAR bar from start with h instead of
// the function's handler.
func (f *Function) addRegion(bar int, start, size uint64, h BARHandler) {
	f.regions = append(f.regions, barRegion{bar: bar, start: start, size: size, h: h})
}

// overlap is the part of the access [reg, reg+n) inside h: its offset in
// h and the access's slice bounds, or ok false.
func (h configHook) overlap(reg, n uint64) (hOff, lo, hi uint64, ok bool) {
	start, end := max(reg, h.start), min(reg+n, h.end)
	if start >= end {
		return 0, 0, 0, false
	}
	return start - h.start, start - reg, end - reg, true
}

// inWindow reports whether configuration byte o belongs to a window.
func (f *Function) inWindow(o uint64) bool {
	for _, h := range f.hooks {
		if h.read != nil && o >= h.start && o < h.end {
			return true
		}
	}
	return false
}

// ReadConfig is a guest read of len(data) bytes of configuration space at
// reg. Offsets beyond the conventional space read as zero.
func (f *Function) ReadConfig(reg uint64, data []byte) {
	clear(data)
	n := uint64(len(data))
	if reg >= ConfigSize || n > ConfigSize-reg {
		return
	}
	f.mu.Lock()
	copy(data, f.regs[reg:])
	f.mu.Unlock()
	for _, h := range f.hooks {
		if hOff, lo, hi, ok := h.overlap(reg, n); ok && h.read != nil {
			h.read(hOff, data[lo:hi])
		}
	}
}

// WriteConfig is a guest write of data to configuration space at reg:
// only the writable bits change. A write that moves a BAR or switches
// memory decoding tells the BAR listeners.
func (f *Function) WriteConfig(reg uint64, data []byte) {
	n := uint64(len(data))
	if reg >= ConfigSize || n > ConfigSize-reg {
		return
	}
	f.wmu.Lock()
	defer f.wmu.Unlock()
	var calls []func()
	f.mu.Lock()
	for i, b := range data {
		o := reg + uint64(i)
		if !f.inWindow(o) {
			f.regs[o] = f.regs[o]&^f.wmask[o] | b&f.wmask[o]
		}
	}
	for _, h := range f.hooks {
		hOff, lo, hi, ok := h.overlap(reg, n)
		switch {
		case !ok:
		case h.write != nil:
			part := append([]byte(nil), data[lo:hi]...)
			calls = append(calls, func() { h.write(hOff, part) })
		case h.written != nil:
			value := append([]byte(nil), f.regs[h.start:h.end]...)
			calls = append(calls, func() { h.written(value) })
		}
	}
	events := f.decodeLocked()
	f.mu.Unlock()
	for _, c := range calls {
		c()
	}
	f.tell(events)
}

// barEvent is a BAR decoding somewhere new.
type barEvent struct {
	bar int
	d   barDecode
}

// decodeLocked updates where each BAR decodes from the registers and
// returns the changes. Called with f.mu held.
func (f *Function) decodeLocked() []barEvent {
	on := binary.LittleEndian.Uint16(f.regs[RegCommand:])&CommandMemory != 0
	var events []barEvent
	for i, b := range f.bars {
		if b.Size == 0 {
			continue
		}
		d := barDecode{on: on}
		if on {
			d.base = f.barAddrLocked(i)
		}
		if d != f.decoded[i] {
			f.decoded[i] = d
			events = append(events, barEvent{i, d})
		}
	}
	return events
}

// barAddrLocked is BAR i's address as its registers hold it.
func (f *Function) barAddrLocked(i int) uint64 {
	le := binary.LittleEndian
	addr := uint64(le.Uint32(f.regs[RegBAR0+4*i:]) &^ barFlagBits)
	if f.bars[i].Kind == BARMem64 {
		addr |= uint64(le.Uint32(f.regs[RegBAR0+4*i+4:])) << 32
	}
	return addr
}

// tell passes events to the listeners.
func (f *Function) tell(events []barEvent) {
	for _, e := range events {
		for _, l := range f.listeners {
			l(e.bar, e.d.base, e.d.on)
		}
	}
}

// assign is the firmware's part: it programs the BARs at addrs (by
// index) and turns memory decoding on, as a BIOS leaves a device it
// enumerated, then tells the listeners.
func (f *Function) assign(addrs map[int]uint64) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	f.mu.Lock()
	le := binary.LittleEndian
	for i, a := range addrs {
		reg := RegBAR0 + 4*i
		flags := le.Uint32(f.regs[reg:]) & barFlagBits
		le.PutUint32(f.regs[reg:], uint32(a)&^barFlagBits|flags)
		if f.bars[i].Kind == BARMem64 {
			le.PutUint32(f.regs[reg+4:], uint32(a>>32))
		}
	}
	if len(addrs) > 0 {
		le.PutUint16(f.regs[RegCommand:], le.Uint16(f.regs[RegCommand:])|CommandMemory)
	}
	events := f.decodeLocked()
	f.mu.Unlock()
	f.tell(events)
}

// ReadBAR is a guest read at offset of BAR bar: the MSI-X table and PBA
// answer for themselves, the function's handler for the rest.
func (f *Function) ReadBAR(bar int, offset uint64, data []byte) {
	if h, off := f.route(bar, offset, uint64(len(data))); h != nil {
		h.ReadBAR(bar, off, data)
		return
	}
	for i := range data {
		data[i] = 0xff
	}
}

// WriteBAR is a guest write at offset of BAR bar.
func (f *Function) WriteBAR(bar int, offset uint64, data []byte) {
	if h, off := f.route(bar, offset, uint64(len(data))); h != nil {
		h.WriteBAR(bar, off, data)
	}
}

// route finds who serves an access of n bytes at offset of BAR bar.
func (f *Function) route(bar int, offset, n uint64) (BARHandler, uint64) {
	for _, r := range f.regions {
		if r.bar == bar && offset >= r.start && offset-r.start < r.size {
			if n > r.size-(offset-r.start) {
				return nil, 0 // straddles the region's end
			}
			return r.h, offset - r.start
		}
	}
	return f.handler, offset
}
