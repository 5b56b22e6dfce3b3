package pci

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// MSIVector is how one MSI-X vector reaches the guest: vm/irq's MSI (a
// GSI routed to the message, raised through an irqfd) implements it.
type MSIVector interface {
	// SetMessage points the vector at the message the guest wrote into
	// its table entry.
	SetMessage(address uint64, data uint32) error
	// Trigger sends the message; it never blocks.
	Trigger() error
	// Close gives the vector's resources back.
	Close() error
}

// MSIAllocator makes one vector's MSIVector.
type MSIAllocator func() (MSIVector, error)

// MSI-X capability and table layout (PCI Local Bus 3.0, 6.8.2).
const (
	// MaxMSIXVectors is the most vectors a table may have.
	MaxMSIXVectors = 2048
	// MSIXEntrySize is one table entry: message address (low, high),
	// message data, vector control.
	MSIXEntrySize = 16
	// msixCapLen is the capability after its id and next bytes: message
	// control, table offset and BIR, PBA offset and BIR.
	msixCapLen = 10

	msixControlEnable       = 1 << 15
	msixControlFunctionMask = 1 << 14
	msixVectorMasked        = 1 << 0

	entryAddrLow  = 0
	entryAddrHigh = 4
	entryData     = 8
	entryControl  = 12
)

// MSIXConfig describes a function's MSI-X: its vectors and where the
// table and pending bit array (PBA) live in one of its BARs.
type MSIXConfig struct {
	// Vectors is the table's size, 1 to MaxMSIXVectors.
	Vectors int
	// BAR holds the table at TableOffset and the PBA at PBAOffset, both
	// 8-byte aligned and inside the BAR.
	BAR                    int
	TableOffset, PBAOffset uint64
	// Alloc makes the vectors.
	Alloc MSIAllocator
	// Log receives failures to route a vector; nil means slog.Default().
	Log *slog.Logger
}

// msixEntry is a table entry as the guest wrote it, and what is routed.
type msixEntry struct {
	addrLow, addrHigh, data, control uint32
	routed                           bool
	routedAddr                       uint64
	routedData                       uint32
}

func (e *msixEntry) masked() bool { return e.control&msixVectorMasked != 0 }

func (e *msixEntry) address() uint64 { return uint64(e.addrHigh)<<32 | uint64(e.addrLow) }

// MSIX is a function's MSI-X capability, table and PBA. A vector whose
// event comes while it is masked (by its own mask bit or the function
// mask) sets its pending bit and is delivered, once, when unmasked; a
// vector fires nothing while MSI-X is disabled (there is no INTx pin to
// fall back to).
type MSIX struct {
	cfg     MSIXConfig
	log     *slog.Logger
	vectors []MSIVector

	mu       sync.Mutex
	enabled  bool
	funcMask bool
	entries  []msixEntry
	pending  []uint64 // the PBA, one bit per vector
	failures int      // routing failures logged
	closed   bool     // the vectors were given back
}

// ErrClosed is what a closed MSI-X's vectors answer.
var ErrClosed = errors.New("pci: MSI-X closed")

// maxLoggedFailures bounds the log lines a guest's bad messages cause.
const maxLoggedFailures = 8

// AddMSIX gives f an MSI-X capability with cfg's vectors, allocated now;
// the table and PBA are served in cfg.BAR, which must be defined. Close
// the MSIX to give the vectors back.
func (f *Function) AddMSIX(cfg MSIXConfig) (*MSIX, error) {
	tableSize := uint64(cfg.Vectors) * MSIXEntrySize
	pbaSize := uint64((cfg.Vectors+63)/64) * 8
	switch {
	case cfg.Vectors < 1 || cfg.Vectors > MaxMSIXVectors:
		return nil, fmt.Errorf("pci: MSI-X with %d vectors (1-%d)", cfg.Vectors, MaxMSIXVectors)
	case cfg.BAR < 0 || cfg.BAR >= NumBARs || f.bars[cfg.BAR].Size == 0:
		return nil, fmt.Errorf("pci: MSI-X in BAR %d, which is not defined", cfg.BAR)
	case cfg.TableOffset%8 != 0 || cfg.PBAOffset%8 != 0:
		return nil, errors.New("pci: MSI-X table and PBA must be 8-byte aligned")
	case cfg.TableOffset+tableSize > f.bars[cfg.BAR].Size || cfg.PBAOffset+pbaSize > f.bars[cfg.BAR].Size:
		return nil, fmt.Errorf("pci: MSI-X table or PBA outside BAR %d", cfg.BAR)
	case cfg.TableOffset < cfg.PBAOffset+pbaSize && cfg.PBAOffset < cfg.TableOffset+tableSize:
		return nil, errors.New("pci: MSI-X table and PBA overlap")
	case cfg.Alloc == nil:
		return nil, errors.New("pci: MSI-X without a vector allocator")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	m := &MSIX{cfg: cfg, log: cfg.Log, entries: make([]msixEntry, cfg.Vectors), pending: make([]uint64, (cfg.Vectors+63)/64)}
	for i := range m.entries {
		m.entries[i].control = msixVectorMasked // reset state: every vector masked
	}
	for range cfg.Vectors {
		v, err := cfg.Alloc()
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("pci: MSI-X vector: %w", err)
		}
		m.vectors = append(m.vectors, v)
	}
	var body [msixCapLen]byte
	le := binary.LittleEndian
	le.PutUint16(body[0:], uint16(cfg.Vectors-1))
	le.PutUint32(body[2:], uint32(cfg.TableOffset)|uint32(cfg.BAR))
	le.PutUint32(body[6:], uint32(cfg.PBAOffset)|uint32(cfg.BAR))
	var writable [msixCapLen]byte
	le.PutUint16(writable[0:], msixControlEnable|msixControlFunctionMask)
	off, err := f.AddCapability(CapMSIX, body[:], writable[:])
	if err != nil {
		m.Close()
		return nil, err
	}
	f.watch(off+2, 2, func(v []byte) { m.setControl(le.Uint16(v)) })
	f.addRegion(cfg.BAR, cfg.TableOffset, tableSize, msixTable{m})
	f.addRegion(cfg.BAR, cfg.PBAOffset, pbaSize, msixPBA{m})
	return m, nil
}

// Vectors is the table's size.
func (m *MSIX) Vectors() int { return len(m.entries) }

// Enabled reports whether the guest enabled MSI-X.
func (m *MSIX) Enabled() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.enabled
}

// Trigger raises vector v: it is delivered now if it can be, else its
// pending bit is set (masked) or it is dropped (MSI-X disabled, v out of
// range). Any goroutine may call it.
func (m *MSIX) Trigger(v int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v < 0 || v >= len(m.entries) || !m.enabled {
		return
	}
	if m.funcMask || m.entries[v].masked() {
		m.pending[v/64] |= 1 << (v % 64)
		return
	}
	m.deliverLocked(v)
}

// Pending reports vector v's pending bit.
func (m *MSIX) Pending(v int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return v >= 0 && v < len(m.entries) && m.pending[v/64]&(1<<(v%64)) != 0
}

// deliverLocked routes vector v to its message if that changed, and sends
// it. Called with m.mu held, for a vector that is not masked.
func (m *MSIX) deliverLocked(v int) {
	if m.closed {
		return
	}
	if err := m.routeLocked(v); err != nil {
		return
	}
	if err := m.vectors[v].Trigger(); err != nil {
		m.logLocked("pci: MSI-X vector not delivered", "vector", v, "err", err)
	}
}

// routeLocked points vector v at its entry's message unless it already
// is. Called with m.mu held.
func (m *MSIX) routeLocked(v int) error {
	e := &m.entries[v]
	if m.closed {
		return ErrClosed
	}
	if e.routed && e.routedAddr == e.address() && e.routedData == e.data {
		return nil
	}
	if err := m.vectors[v].SetMessage(e.address(), e.data); err != nil {
		m.logLocked("pci: MSI-X vector not routed", "vector", v, "address", fmt.Sprintf("%#x", e.address()), "err", err)
		return err
	}
	e.routed, e.routedAddr, e.routedData = true, e.address(), e.data
	return nil
}

func (m *MSIX) logLocked(msg string, args ...any) {
	if m.failures < maxLoggedFailures {
		m.log.Warn(msg, args...)
	}
	m.failures++
}

// updateLocked acts on vector v's new state: an unmasked vector is
// routed to its message, and delivered if it was pending. Called with
// m.mu held.
func (m *MSIX) updateLocked(v int) {
	if !m.enabled || m.funcMask || m.entries[v].masked() {
		return
	}
	if err := m.routeLocked(v); err != nil {
		return
	}
	if bit := uint64(1) << (v % 64); m.pending[v/64]&bit != 0 {
		m.pending[v/64] &^= bit
		m.deliverLocked(v)
	}
}

// setControl takes the guest's Message Control write: enable and
// function mask.
func (m *MSIX) setControl(ctrl uint16) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.enabled = ctrl&msixControlEnable != 0
	m.funcMask = ctrl&msixControlFunctionMask != 0
	for v := range m.entries {
		m.updateLocked(v)
	}
}

// Close gives every vector back. The function must no longer be used.
func (m *MSIX) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	var errs []error
	for _, v := range m.vectors {
		if err := v.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	m.vectors = nil
	return errors.Join(errs...)
}

// msixTable serves the table region of the BAR.
type msixTable struct{ m *MSIX }

// entryAccess checks a table access: a dword or qword, aligned to its
// size, inside one entry. It returns the entry and the offset in it.
func entryAccess(offset uint64, n int) (int, uint64, bool) {
	if (n != 4 && n != 8) || offset%uint64(n) != 0 {
		return 0, 0, false
	}
	return int(offset / MSIXEntrySize), offset % MSIXEntrySize, true
}

// withEntry calls fn, with the table's lock held, on the entry (its index
// and the offset in it) that a valid access of n bytes at offset reaches;
// it does nothing for any other access.
func (t msixTable) withEntry(offset uint64, n int, fn func(v int, off uint64)) {
	v, off, ok := entryAccess(offset, n)
	m := t.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if ok && v < len(m.entries) {
		fn(v, off)
	}
}

// ReadBAR reads table entries; other accesses read as zero.
func (t msixTable) ReadBAR(_ int, offset uint64, data []byte) {
	clear(data)
	t.withEntry(offset, len(data), func(v int, off uint64) {
		e := t.m.entries[v]
		var raw [MSIXEntrySize]byte
		le := binary.LittleEndian
		le.PutUint32(raw[entryAddrLow:], e.addrLow)
		le.PutUint32(raw[entryAddrHigh:], e.addrHigh)
		le.PutUint32(raw[entryData:], e.data)
		le.PutUint32(raw[entryControl:], e.control)
		copy(data, raw[off:])
	})
}

// WriteBAR writes table entries: address, data and the mask bit; other
// accesses are ignored.
func (t msixTable) WriteBAR(_ int, offset uint64, data []byte) {
	t.withEntry(offset, len(data), func(v int, off uint64) {
		e := &t.m.entries[v]
		le := binary.LittleEndian
		for i := 0; i < len(data); i += 4 {
			w := le.Uint32(data[i:])
			switch off + uint64(i) {
			case entryAddrLow:
				e.addrLow = w &^ 3 // dword aligned
			case entryAddrHigh:
				e.addrHigh = w
			case entryData:
				e.data = w
			case entryControl:
				e.control = w & msixVectorMasked
			}
		}
		t.m.updateLocked(v)
	})
}

// msixPBA serves the pending bit array: read-only.
type msixPBA struct{ m *MSIX }

// ReadBAR reads pending bits.
func (p msixPBA) ReadBAR(_ int, offset uint64, data []byte) {
	clear(data)
	m := p.m
	m.mu.Lock()
	defer m.mu.Unlock()
	var raw []byte
	for _, w := range m.pending {
		raw = binary.LittleEndian.AppendUint64(raw, w)
	}
	if offset < uint64(len(raw)) {
		copy(data, raw[offset:])
	}
}

// WriteBAR ignores writes: the PBA is read-only.
func (p msixPBA) WriteBAR(int, uint64, []byte) {}
