package memory

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// How guest RAM is backed on the host (memory.shared, memory.hugepages,
// memory.hugepage_size, memory.prefault, memory.mergeable, memory.thp).

// HugetlbDir is where the kernel lists its huge page pools.
const HugetlbDir = "/sys/kernel/mm/hugepages"

// memfdName names the memfd of shared or huge page RAM in
// /proc/PID/maps ("/memfd:vmm-guest-ram (deleted)").
const memfdName = "vmm-guest-ram"

// mapRegion maps size bytes of guest RAM as opts say, at a boundary of the
// larger of HugePageSize and the huge page size, and applies the advice
// (transparent huge pages, KSM) and the prefault. A sparse region (see
// Guest.AddSparse) is mapped MAP_NORESERVE when private, and is neither
// checked against the free huge pages nor prefaulted.
func mapRegion(size uint64, opts Options, sparse bool) ([]byte, error) {
	align := uint64(HugePageSize)
	if opts.Hugepages {
		page, err := opts.hugePageSize()
		if err != nil {
			return nil, err
		}
		if size%page != 0 {
			return nil, fmt.Errorf("%d MiB is not a multiple of the %s huge page", size>>20, formatPage(page))
		}
		if !sparse {
			if err := checkHugePages(page, size); err != nil {
				return nil, err
			}
		}
		align = max(align, page)
	}
	var mem []byte
	var err error
	if opts.Shared || opts.Hugepages {
		mem, err = mapMemfd(size, align, opts)
	} else {
		mem, err = mapAligned(size, sparse)
	}
	if err != nil {
		return nil, err
	}
	if !opts.Hugepages {
		// Transparent huge pages make the guest's TLB misses cheaper; a
		// host without them just says no.
		advice := unix.MADV_HUGEPAGE
		if opts.NoTHP {
			advice = unix.MADV_NOHUGEPAGE
		}
		_ = unix.Madvise(mem, advice)
	}
	if opts.Mergeable {
		if err := unix.Madvise(mem, unix.MADV_MERGEABLE); err != nil {
			_ = unmap(mem)
			return nil, fmt.Errorf("mergeable: madvise(MADV_MERGEABLE): %w (is the kernel built with KSM?)", err)
		}
	}
	if opts.Prefault && !sparse {
		if err := prefault(mem); err != nil {
			_ = unmap(mem)
			return nil, fmt.Errorf("prefault: %w", err)
		}
	}
	return mem, nil
}

// hugePageSize is the huge page size asked for, or the host's default.
func (o Options) hugePageSize() (uint64, error) {
	if o.HugepageSize != 0 {
		if o.HugepageSize&(o.HugepageSize-1) != 0 {
			return 0, fmt.Errorf("hugepages: Huge page size is not power of 2: %d", o.HugepageSize)
		}
		return o.HugepageSize, nil
	}
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("hugepages: the host's default huge page size: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Hugepagesize:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err == nil && kb > 0 {
				return kb << 10, nil
			}
		}
	}
	return 0, errors.New("hugepages: the host has no huge pages (no Hugepagesize in /proc/meminfo)")
}

// formatPage writes a huge page size as the kernel names its pool
// ("2048kB").
func formatPage(page uint64) string { return strconv.FormatUint(page>>10, 10) + "kB" }

// checkHugePages refuses, with what to do about it, a region of size bytes
// that the host's pool of page-sized huge pages cannot hold now.
func checkHugePages(page, size uint64) error {
	pool := filepath.Join(HugetlbDir, "hugepages-"+formatPage(page))
	b, err := os.ReadFile(filepath.Join(pool, "free_hugepages"))
	if err != nil {
		return fmt.Errorf("hugepages: the host has no %s huge pages (%s): %w", formatPage(page), pool, err)
	}
	free, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return fmt.Errorf("hugepages: %s/free_hugepages: %w", pool, err)
	}
	if need := size / page; free < need {
		return fmt.Errorf("hugepages: %d MiB of guest RAM needs %d free %s huge pages, the host has %d (%s/free_hugepages): reserve them, e.g. echo %d > %s/nr_hugepages",
			size>>20, need, formatPage(page), free, pool, need, pool)
	}
	return nil
}

// memfdFlags are memfd_create's flags for opts: MFD_HUGETLB with the page
// size's log2 in bits 26-31 for huge pages.
func memfdFlags(opts Options, page uint64) int {
	flags := unix.MFD_CLOEXEC
	if opts.Hugepages {
		flags |= unix.MFD_HUGETLB
		if opts.HugepageSize != 0 {
			flags |= bits.TrailingZeros64(page) << unix.MFD_HUGE_SHIFT
		}
	}
	return flags
}

// mapMemfd maps size bytes of a new memfd (huge pages when opts say so)
// MAP_SHARED at an align boundary: a private anonymous reservation is made
// first and the memfd mapped over its aligned middle.
func mapMemfd(size, align uint64, opts Options) ([]byte, error) {
	page := uint64(0)
	if opts.Hugepages {
		page, _ = opts.hugePageSize()
	}
	fd, err := unix.MemfdCreate(memfdName, memfdFlags(opts, page))
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	defer unix.Close(fd) // the mapping keeps the memory
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		return nil, fmt.Errorf("memfd of %d MiB: %w", size>>20, err)
	}
	total := uintptr(size + align)
	p, err := unix.MmapPtr(-1, 0, nil, total, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, err
	}
	head := (uintptr(align) - uintptr(p)%uintptr(align)) % uintptr(align)
	at := unsafe.Add(p, head)
	q, err := unix.MmapPtr(fd, 0, at, uintptr(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_FIXED)
	if err != nil {
		_ = unix.MunmapPtr(p, total)
		return nil, fmt.Errorf("map the memfd: %w", err)
	}
	if head > 0 {
		_ = unix.MunmapPtr(p, head)
	}
	if tail := total - head - uintptr(size); tail > 0 {
		_ = unix.MunmapPtr(unsafe.Add(at, uintptr(size)), tail)
	}
	return unsafe.Slice((*byte)(q), size), nil
}

// prefault populates mem before the guest runs: MADV_POPULATE_WRITE
// (Linux 5.14), or a write to each page where the kernel lacks it.
func prefault(mem []byte) error {
	err := unix.Madvise(mem, unix.MADV_POPULATE_WRITE)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("madvise(MADV_POPULATE_WRITE): %w", err)
	}
	page := os.Getpagesize()
	for i := 0; i < len(mem); i += page {
		mem[i] = 0
	}
	return nil
}
