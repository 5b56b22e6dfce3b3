// Package memory is guest RAM: host mappings (anonymous memory, or a
// memfd for shared and huge page RAM) placed at guest
// physical addresses, and the accessors the boot loader and devices use to
// read and write it.
package memory

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vmmdev/vmm/vm/layout"
)

// Range is a span of guest physical addresses.
type Range struct {
	Start, Size uint64
}

// End is the first address after the range.
func (r Range) End() uint64 { return r.Start + r.Size }

// BootRAM splits size bytes of boot RAM around the 32-bit hole: up to
// layout.LowRAMEnd from address 0, the rest from 4 GiB.
func BootRAM(size uint64) []Range {
	if size <= layout.LowRAMEnd {
		return []Range{{0, size}}
	}
	return []Range{{0, layout.LowRAMEnd}, {layout.HighRAMStart, size - layout.LowRAMEnd}}
}

// Region is one host mapping of guest RAM. Slot is the KVM memslot the
// owner registered it as.
type Region struct {
	Range
	Slot uint32
	mem  []byte
}

// Host is the region's host mapping.
func (r *Region) Host() []byte { return r.mem }

// ErrNoRAM means a guest physical range is not (entirely) backed by RAM.
var ErrNoRAM = errors.New("no guest RAM there")

// Options say how guest RAM is backed on the host, for the boot RAM and
// every region hot-added later. The zero value is anonymous private memory
// that asks for transparent huge pages.
type Options struct {
	// NoTHP asks the kernel not to back guest RAM with transparent huge
	// pages (MADV_NOHUGEPAGE) instead of asking for them (MADV_HUGEPAGE).
	NoTHP bool
	// Shared maps a memfd MAP_SHARED instead of private anonymous memory
	// (memory.shared: what vhost-user backends need).
	Shared bool
	// Hugepages backs RAM with hugetlbfs pages (a memfd with MFD_HUGETLB)
	// of HugepageSize, or of the host's default size when 0. The host
	// must have enough of them free.
	Hugepages    bool
	HugepageSize uint64
	// Prefault populates every page when the region is mapped.
	Prefault bool
	// Mergeable lets KSM merge identical pages (MADV_MERGEABLE).
	Mergeable bool
}

// Guest is the guest's RAM. Regions are added at boot and by memory hot
// plug; accessors are safe for concurrent use.
type Guest struct {
	opts    Options
	mu      sync.RWMutex
	regions []*Region // sorted by Start, disjoint
}

// Map is MapWith with the default Options.
func Map(ranges []Range) (*Guest, error) { return MapWith(ranges, Options{}) }

// MapWith allocates an anonymous mapping for each range and returns the
// guest RAM, backed as opts say (regions added later too); slots are
// numbered from 0 in order. On failure nothing stays mapped.
func MapWith(ranges []Range, opts Options) (*Guest, error) {
	g := &Guest{opts: opts}
	for i, r := range ranges {
		if _, err := g.Add(r, uint32(i)); err != nil {
			g.Close()
			return nil, err
		}
	}
	return g, nil
}

// Add maps a new region of anonymous memory at r and records it with slot.
func (g *Guest) Add(r Range, slot uint32) (*Region, error) { return g.add(r, slot, false) }

// AddSparse is Add for a region the guest uses only in part, such as
// virtio-mem's: private memory is mapped MAP_NORESERVE, so that the host's
// overcommit heuristic does not refuse a region as large as the host's
// RAM, and it is neither prefaulted nor checked against the free huge
// pages. Its pages are backed as the guest touches them, and given back
// with Discard.
func (g *Guest) AddSparse(r Range, slot uint32) (*Region, error) { return g.add(r, slot, true) }

// add is Add, sparse or not.
func (g *Guest) add(r Range, slot uint32, sparse bool) (*Region, error) {
	if r.Size == 0 || r.Size%layout.PageSize != 0 || r.Start%layout.PageSize != 0 || r.End() < r.Start {
		return nil, fmt.Errorf("guest RAM %#x+%#x: not page aligned", r.Start, r.Size)
	}
	if r.Size > uint64(^uint(0)>>1) {
		return nil, fmt.Errorf("guest RAM of %d MiB: too large for this host", r.Size>>20)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, o := range g.regions {
		if r.Start < o.End() && o.Start < r.End() {
			return nil, fmt.Errorf("guest RAM %#x+%#x overlaps %#x+%#x", r.Start, r.Size, o.Start, o.Size)
		}
	}
	mem, err := mapRegion(r.Size, g.opts, sparse)
	if err != nil {
		return nil, fmt.Errorf("guest RAM of %d MiB at %#x: the host cannot map it: %w", r.Size>>20, r.Start, err)
	}
	reg := &Region{Range: r, Slot: slot, mem: mem}
	g.regions = append(g.regions, reg)
	sort.Slice(g.regions, func(i, j int) bool { return g.regions[i].Start < g.regions[j].Start })
	return reg, nil
}

// HugePageSize is the x86 2 MiB page. KVM maps guest memory with huge pages
// only where the host address and the guest physical address agree modulo
// it, so every region's host mapping starts on such a boundary (guest RAM
// regions start on one too).
const HugePageSize = 2 << 20

// mapAligned maps size bytes of anonymous memory at a HugePageSize
// boundary: it maps HugePageSize more and unmaps the unaligned ends. No
// MAP_NORESERVE unless noReserve: the kernel's overcommit heuristic then
// refuses a mapping far beyond what the host has, which the caller reports
// as an error.
func mapAligned(size uint64, noReserve bool) ([]byte, error) {
	total := uintptr(size) + HugePageSize
	flags := unix.MAP_PRIVATE | unix.MAP_ANONYMOUS
	if noReserve {
		flags |= unix.MAP_NORESERVE
	}
	p, err := unix.MmapPtr(-1, 0, nil, total, unix.PROT_READ|unix.PROT_WRITE, flags)
	if err != nil {
		return nil, err
	}
	head := (HugePageSize - uintptr(p)%HugePageSize) % HugePageSize
	if head > 0 {
		if err := unix.MunmapPtr(p, head); err != nil {
			_ = unix.MunmapPtr(p, total)
			return nil, err
		}
	}
	if tail := total - head - uintptr(size); tail > 0 {
		if err := unix.MunmapPtr(unsafe.Add(p, head+uintptr(size)), tail); err != nil {
			_ = unix.MunmapPtr(unsafe.Add(p, head), uintptr(size))
			return nil, err
		}
	}
	return unsafe.Slice((*byte)(unsafe.Add(p, head)), size), nil
}

// unmap undoes mapAligned.
func unmap(mem []byte) error {
	if len(mem) == 0 {
		return nil
	}
	return unix.MunmapPtr(unsafe.Pointer(&mem[0]), uintptr(len(mem)))
}

// Regions returns the regions in address order.
func (g *Guest) Regions() []*Region {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return append([]*Region(nil), g.regions...)
}

// Size is the total RAM in bytes.
func (g *Guest) Size() uint64 {
	g.mu.RLock()
	defer g.mu.RUnlock()
	var n uint64
	for _, r := range g.regions {
		n += r.Size
	}
	return n
}

// Contains says whether guest physical address gpa is RAM.
func (g *Guest) Contains(gpa uint64) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, r := range g.regions {
		if gpa >= r.Start && gpa < r.End() {
			return true
		}
	}
	return false
}

// Slice returns the host bytes behind guest physical [gpa, gpa+n), which
// must lie inside one region.
func (g *Guest) Slice(gpa, n uint64) ([]byte, error) {
	s, err := g.sliceTo(gpa, n)
	if err != nil || uint64(len(s)) < n {
		return nil, fmt.Errorf("guest physical %#x+%#x: %w", gpa, n, ErrNoRAM)
	}
	return s, nil
}

// sliceTo returns the host bytes behind guest physical gpa, up to n of
// them or to the end of gpa's region.
func (g *Guest) sliceTo(gpa, n uint64) ([]byte, error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, r := range g.regions {
		if gpa >= r.Start && gpa < r.End() {
			off := gpa - r.Start
			k := min(n, r.Size-off)
			return r.mem[off : off+k : off+k], nil
		}
	}
	return nil, fmt.Errorf("guest physical %#x+%#x: %w", gpa, n, ErrNoRAM)
}

// WriteAt copies p to guest physical address gpa.
func (g *Guest) WriteAt(p []byte, gpa uint64) error { return g.copyAt(gpa, p, true) }

// ReadAt copies guest physical memory at gpa into p.
func (g *Guest) ReadAt(p []byte, gpa uint64) error { return g.copyAt(gpa, p, false) }

// copyAt copies p to guest physical address gpa when write is set, and the
// guest memory there into p otherwise.
func (g *Guest) copyAt(gpa uint64, p []byte, write bool) error {
	s, err := g.Slice(gpa, uint64(len(p)))
	if err != nil {
		return err
	}
	if write {
		copy(s, p)
	} else {
		copy(p, s)
	}
	return nil
}

// Remove unmaps the region that starts at start. The owner must have
// deleted its memslot first.
func (g *Guest) Remove(start uint64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	i := slices.IndexFunc(g.regions, func(r *Region) bool { return r.Start == start })
	if i < 0 {
		return fmt.Errorf("guest RAM at %#x: %w", start, ErrNoRAM)
	}
	r := g.regions[i]
	g.regions = slices.Delete(g.regions, i, i+1)
	if err := unmap(r.mem); err != nil {
		return fmt.Errorf("unmap guest RAM at %#x: %w", start, err)
	}
	return nil
}

// Close unmaps all guest RAM. The VM using it must be gone.
func (g *Guest) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	var errs []error
	for _, r := range g.regions {
		if err := unmap(r.mem); err != nil {
			errs = append(errs, fmt.Errorf("unmap guest RAM at %#x: %w", r.Start, err))
		}
	}
	g.regions = nil
	return errors.Join(errs...)
}
