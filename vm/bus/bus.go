// Package bus routes a vCPU's port I/O and MMIO accesses to devices by
// address range. A VM has two buses, one for I/O ports and one for MMIO.
package bus

import (
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
)

// Device is anything mapped on a bus. offset is relative to the start of the
// device's range; len(data) is the access size (1, 2, 4 or 8 bytes). Read
// fills data; Write consumes it. Both run on the vCPU thread that made the
// access and must not block for long. A device never panics on what the
// guest sends.
type Device interface {
	Read(offset uint64, data []byte)
	Write(offset uint64, data []byte)
}

// maxLoggedUnknown bounds the memory spent remembering unknown addresses
// already logged, so a guest probing every address cannot grow it forever.
const maxLoggedUnknown = 4096

type mapping struct {
	base, size uint64
	name       string
	dev        Device
}

// Bus maps disjoint address ranges to devices. It is safe for concurrent use
// by many vCPU threads while devices are inserted and removed.
type Bus struct {
	name string
	log  *slog.Logger

	mu       sync.RWMutex
	mappings []mapping // sorted by base, disjoint

	unknownMu sync.Mutex
	unknown   map[uint64]bool
}

// New returns an empty bus; name ("pio", "mmio") prefixes its log lines.
func New(name string, log *slog.Logger) *Bus {
	if log == nil {
		log = slog.Default()
	}
	return &Bus{name: name, log: log, unknown: map[uint64]bool{}}
}

// Insert maps [base, base+size) to dev. name is for logs. It fails when the
// range is empty, wraps, or overlaps a mapped range.
func (b *Bus) Insert(base, size uint64, name string, dev Device) error {
	if size == 0 || base+size < base {
		return fmt.Errorf("%s bus: %s: bad range %#x+%#x", b.name, name, base, size)
	}
	if dev == nil {
		return fmt.Errorf("%s bus: %s: nil device", b.name, name)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	i := sort.Search(len(b.mappings), func(i int) bool { return b.mappings[i].base >= base })
	if i > 0 {
		if p := b.mappings[i-1]; p.base+p.size > base {
			return fmt.Errorf("%s bus: %s at %#x+%#x overlaps %s at %#x+%#x", b.name, name, base, size, p.name, p.base, p.size)
		}
	}
	if i < len(b.mappings) {
		if n := b.mappings[i]; base+size > n.base {
			return fmt.Errorf("%s bus: %s at %#x+%#x overlaps %s at %#x+%#x", b.name, name, base, size, n.name, n.base, n.size)
		}
	}
	b.mappings = append(b.mappings, mapping{})
	copy(b.mappings[i+1:], b.mappings[i:])
	b.mappings[i] = mapping{base: base, size: size, name: name, dev: dev}
	return nil
}

// Remove unmaps the range that starts at base.
func (b *Bus) Remove(base uint64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := slices.IndexFunc(b.mappings, func(m mapping) bool { return m.base == base })
	if i < 0 {
		return fmt.Errorf("%s bus: nothing mapped at %#x", b.name, base)
	}
	b.mappings = slices.Delete(b.mappings, i, i+1)
	return nil
}

// find returns the device whose range holds the whole access, and the
// access's offset in it.
func (b *Bus) find(addr uint64, n int) (Device, uint64, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	i := sort.Search(len(b.mappings), func(i int) bool { return b.mappings[i].base > addr })
	if i == 0 {
		return nil, 0, false
	}
	m := b.mappings[i-1]
	off := addr - m.base
	if off >= m.size || uint64(n) > m.size-off {
		return nil, 0, false
	}
	return m.dev, off, true
}

// Read performs a read at addr into data. An address no device claims reads
// as all ones (an open bus), is logged once, and Read returns false.
func (b *Bus) Read(addr uint64, data []byte) bool {
	if dev, off, ok := b.find(addr, len(data)); ok {
		dev.Read(off, data)
		return true
	}
	for i := range data {
		data[i] = 0xff
	}
	b.logUnknown("read", addr, len(data))
	return false
}

// Write performs a write of data at addr. A write no device claims is
// dropped, logged once, and Write returns false.
func (b *Bus) Write(addr uint64, data []byte) bool {
	if dev, off, ok := b.find(addr, len(data)); ok {
		dev.Write(off, data)
		return true
	}
	b.logUnknown("write", addr, len(data))
	return false
}

func (b *Bus) logUnknown(op string, addr uint64, n int) {
	b.unknownMu.Lock()
	seen := b.unknown[addr]
	full := len(b.unknown) >= maxLoggedUnknown
	if !seen && !full {
		b.unknown[addr] = true
	}
	b.unknownMu.Unlock()
	if seen || full {
		return
	}
	b.log.Debug("access to an address no device claims, ignored (logged once per address)",
		"bus", b.name, "op", op, "addr", fmt.Sprintf("%#x", addr), "size", n)
}
