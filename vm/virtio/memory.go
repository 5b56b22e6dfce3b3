package virtio

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// Memory is guest physical memory as the devices see it. The machine's
// guest RAM (vm/memory.Guest) implements it.
//
// Slice returns the host bytes behind guest physical [gpa, gpa+n), which
// must lie inside one RAM region, or an error when they do not. The bytes
// stay valid while the machine runs: RAM may grow by hot plug (new
// regions) but a region is never unmapped before the devices are closed.
// The devices call Slice for every access, so RAM added at run time is
// usable at once; they never cache a slice beyond one request.
type Memory interface {
	Slice(gpa, n uint64) ([]byte, error)
}

// pageSize is the granularity of guest RAM regions: a range that Memory
// refuses as a whole may still be RAM split over adjacent regions, which
// always meet at a page boundary.
const pageSize = 4096

// maxSegments bounds how many host slices one guest buffer may map to:
// each is a boundary between two RAM regions, and a guest has few.
const maxSegments = 64

// guestSlices appends to dst the host slices that cover guest physical
// [gpa, gpa+n). A range inside one region is one slice; a range over
// several adjacent regions is one slice per region. It fails when any byte
// of the range is not RAM or the range wraps.
func guestSlices(mem Memory, dst [][]byte, gpa, n uint64) ([][]byte, error) {
	if n == 0 {
		return dst, nil
	}
	if gpa+n < gpa {
		return dst, fmt.Errorf("guest range %#x+%#x wraps", gpa, n)
	}
	for added := 0; n > 0; added++ {
		if added == maxSegments {
			return dst, fmt.Errorf("guest range %#x+%#x spans more than %d RAM regions", gpa, n, maxSegments)
		}
		if s, err := mem.Slice(gpa, n); err == nil {
			return append(dst, s), nil
		}
		// Find the longest prefix inside one region. Region boundaries
		// are page aligned, so the candidates are the lengths reaching
		// the first page boundary, the next one, and so on; a prefix that
		// fits means every shorter one does, so binary search.
		first := pageSize - gpa%pageSize
		if first >= n {
			return dst, fmt.Errorf("guest range %#x+%#x is not RAM", gpa, n)
		}
		prefix := func(k uint64) uint64 { return min(n, first+k*pageSize) }
		lo := uint64(0)                             // prefix(lo) fits, once checked
		hi := (n - first + pageSize - 1) / pageSize // prefix(hi) == n: does not fit
		if _, err := mem.Slice(gpa, first); err != nil {
			return dst, fmt.Errorf("guest range %#x+%#x is not RAM: %w", gpa, n, err)
		}
		for hi-lo > 1 {
			mid := lo + (hi-lo)/2
			if _, err := mem.Slice(gpa, prefix(mid)); err == nil {
				lo = mid
			} else {
				hi = mid
			}
		}
		p := prefix(lo)
		s, err := mem.Slice(gpa, p)
		if err != nil {
			return dst, fmt.Errorf("guest range %#x+%#x: %w", gpa, p, err)
		}
		dst = append(dst, s)
		gpa += p
		n -= p
	}
	return dst, nil
}

// load32 reads the little-endian 32-bit word at the start of b (at least 4
// bytes) atomically when b is 4-byte aligned: the rings' indexes are
// shared with guest vCPUs. Guest addresses of ring words are validated as
// aligned, and guest RAM is page aligned on the host, so the fallback is
// for malformed callers only.
func load32(b []byte) uint32 {
	p := unsafe.Pointer(unsafe.SliceData(b))
	if uintptr(p)%4 != 0 {
		return binary.LittleEndian.Uint32(b)
	}
	return atomic.LoadUint32((*uint32)(p)) // little-endian host (x86_64)
}

// store32 writes v as the little-endian 32-bit word at the start of b, with
// an atomic store when b is aligned (see load32). On x86_64 the store is a
// full barrier: every earlier write to the ring is visible before it, and
// later reads of guest memory happen after it.
func store32(b []byte, v uint32) {
	p := unsafe.Pointer(unsafe.SliceData(b))
	if uintptr(p)%4 != 0 {
		binary.LittleEndian.PutUint32(b, v)
		return
	}
	atomic.StoreUint32((*uint32)(p), v) // little-endian host (x86_64)
}

// storeLow16 replaces the low 16 bits of the little-endian 32-bit word at
// the start of b (4-byte aligned) with v, atomically and leaving the high
// half as it is, even if the driver writes it meanwhile. On x86_64 it is a
// full barrier, as store32 is.
func storeLow16(b []byte, v uint16) {
	p := (*uint32)(unsafe.Pointer(unsafe.SliceData(b)))
	for {
		old := atomic.LoadUint32(p)
		if atomic.CompareAndSwapUint32(p, old, old&^0xffff|uint32(v)) {
			return
		}
	}
}
