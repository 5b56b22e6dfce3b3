// Package poke is a hostile guest: run inside a vmm guest (as `vmm-agent
// poke`), it reads and writes random values of random sizes at random I/O
// ports and device MMIO addresses of the machine, for a set time, so that
// the host can check that the vmm survives whatever a guest does to its
// devices. It leaves alone what is not the vmm's (RAM, and the interrupt
// controllers and timer KVM emulates in the kernel) and the writes that
// end the machine on purpose (the ACPI power off, the reset registers),
// which would only cut the run short.
//
// MMIO goes through /dev/mem, which a Linux guest opens to device memory
// its drivers claimed only when booted with iomem=relaxed; port I/O needs
// iopl(3). Both need root.
package poke

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vmmdev/vmm/acpi"
	"github.com/vmmdev/vmm/vm/layout"
)

// Range is a span of addresses, ports or guest physical.
type Range struct {
	Start, Size uint64
}

// Options configure Run.
type Options struct {
	// Duration is how long to poke.
	Duration time.Duration
	// Seed seeds the random choices, for a run to be repeated.
	Seed uint64
	// Log receives a line per range that cannot be mapped and a summary.
	Log io.Writer
}

// Stats counts the accesses made.
type Stats struct {
	PortReads, PortWrites, MMIOReads, MMIOWrites uint64
	// Faults counts the accesses that faulted (the guest's kernel refused
	// the page or the port), which are skipped.
	Faults uint64
	// Ranges is how many MMIO mappings (of at most 16 MiB) were made.
	Ranges int
	// Sum folds in every value read, so that no read is optimized away.
	Sum uint64
}

// inKernelPorts are the ports KVM's in-kernel devices take: the PICs and
// their edge/level registers, the PIT and the speaker port.
var inKernelPorts = []Range{{0x20, 2}, {0x40, 4}, {0x61, 1}, {0xa0, 2}, {0x4d0, 2}}

// devicePorts are the vmm's own ports, poked more often than the rest.
var devicePorts = []Range{
	{layout.COM1Port, layout.COM1Size},
	{layout.I8042DataPort, 1}, {layout.I8042CommandPort, 1},
	{layout.POSTPort, 1},
	{layout.ACPIPMStart, layout.ACPIPMSize},
	{layout.PCIConfigIOPort, layout.PCIConfigIOSize},
}

// lowMMIO is the device space below 4 GiB: the PCI 32-bit windows, the
// GED and hot plug blocks, virtio-mmio and the PCI ECAM, up to the
// in-kernel IOAPIC.
var lowMMIO = Range{layout.PCIMMIO32Start, layout.IOAPICStart - layout.PCIMMIO32Start}

// deviceMMIO are the vmm's register blocks, poked more often than the
// rest: the GED, the CPU, memory and PCI hot plug blocks, the first
// virtio-mmio slots and segment 0's ECAM.
var deviceMMIO = []Range{
	{layout.GEDStart, layout.GEDSize},
	{layout.CPUHotplugStart, layout.CPUHotplugSize},
	{layout.MemoryHotplugStart, layout.MemoryHotplugSize},
	{layout.PCIHotplugStart, layout.PCIHotplugSize},
	{layout.VirtioMMIOStart, 64 * layout.KiB},
	{layout.PCIECAMStart, layout.PCIECAMSegmentSize},
}

// chunk is the most one mapping covers.
const chunk = 16 << 20

// Run pokes for opts.Duration and returns what it did.
func Run(opts Options) (Stats, error) {
	var st Stats
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	// I/O privilege is the thread's: every port access happens on this
	// one.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Iopl(3); err != nil {
		return st, fmt.Errorf("iopl: %w", err)
	}
	// Uncached mappings first (O_SYNC); pages the kernel mapped
	// otherwise already (ACPI maps its operation regions write-back)
	// refuse them, and are mapped as the kernel has them.
	var fds []int
	for _, flag := range []int{os.O_SYNC, 0} {
		f, err := os.OpenFile("/dev/mem", os.O_RDWR|flag, 0)
		if err != nil {
			return st, err
		}
		defer f.Close()
		fds = append(fds, int(f.Fd()))
	}
	var unmapped uint64
	var maps [][]byte
	// mapRange maps r, or the largest parts of it that map.
	var mapRange func(r Range)
	mapRange = func(r Range) {
		for _, fd := range fds {
			b, err := unix.Mmap(fd, int64(r.Start), int(r.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
			if err == nil {
				maps = append(maps, b)
				return
			}
		}
		if r.Size <= layout.PageSize {
			unmapped += r.Size
			return
		}
		half := r.Size / 2 &^ (layout.PageSize - 1)
		mapRange(Range{r.Start, half})
		mapRange(Range{r.Start + half, r.Size - half})
	}
	// mapAll maps ranges in pieces of at most chunk bytes.
	mapAll := func(ranges []Range) [][]byte {
		maps = nil
		for _, r := range ranges {
			for off := uint64(0); off < r.Size; off += chunk {
				mapRange(Range{r.Start + off, min(chunk, r.Size-off)})
			}
		}
		return maps
	}
	// devices are the vmm's blocks, wide the whole device space.
	devices := mapAll(deviceMMIO)
	wide := mapAll(append([]Range{lowMMIO}, highDeviceRanges()...))
	defer func() {
		for _, b := range append(devices, wide...) {
			unix.Munmap(b) //nolint:errcheck // the process ends soon
		}
	}()
	if unmapped > 0 {
		fmt.Fprintf(opts.Log, "poke: %d KiB of device memory could not be mapped\n", unmapped>>10)
	}
	st.Ranges = len(devices) + len(wide)
	if len(devices) == 0 || len(wide) == 0 {
		return st, fmt.Errorf("%d device and %d other MMIO ranges mapped (boot the guest with iomem=relaxed)", len(devices), len(wide))
	}
	// A fault on a mapped page panics, which pokeMMIO recovers from,
	// instead of ending the program.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer restoreUART()
	rng := rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15))
	end := time.Now().Add(opts.Duration)
	for i := 0; ; i++ {
		if i%1024 == 0 && time.Now().After(end) {
			break
		}
		switch rng.IntN(4) {
		case 0, 1:
			pokePort(rng, &st)
		case 2:
			pokeMMIO(rng, devices[rng.IntN(len(devices))], &st)
		default:
			pokeMMIO(rng, wide[rng.IntN(len(wide))], &st)
		}
	}
	restoreUART()
	fmt.Fprintf(opts.Log, "poke: done: %d port reads, %d port writes, %d MMIO reads, %d MMIO writes (%d faulted) in %d mappings\n",
		st.PortReads, st.PortWrites, st.MMIOReads, st.MMIOWrites, st.Faults, st.Ranges)
	return st, nil
}

// pokePort makes one access at a random port: half the time one of the
// vmm's device ports, else anywhere.
func pokePort(rng *rand.Rand, st *Stats) {
	var port uint16
	if rng.IntN(2) == 0 {
		r := devicePorts[rng.IntN(len(devicePorts))]
		port = uint16(r.Start + rng.Uint64N(r.Size))
	} else {
		port = uint16(rng.UintN(1 << 16))
	}
	size := uint16(1) << rng.IntN(3)
	if uint32(port)+uint32(size) > 1<<16 {
		return // past the last port: the CPU faults
	}
	for i := range size {
		if in(inKernelPorts, uint64(port)+uint64(i)) {
			return
		}
	}
	defer func() {
		if recover() != nil {
			st.Faults++ // the guest's kernel refused the port
		}
	}()
	if rng.IntN(2) == 0 {
		st.PortReads++
		switch size {
		case 1:
			st.Sum += uint64(inb(port))
		case 2:
			st.Sum += uint64(inw(port))
		default:
			st.Sum += uint64(inl(port))
		}
		return
	}
	v := sanitize(port, size, rng.Uint32())
	st.PortWrites++
	switch size {
	case 1:
		outb(port, uint8(v))
	case 2:
		outw(port, uint16(v))
	default:
		outl(port, v)
	}
}

// sanitize changes the bytes of a write of size bytes at port that would
// end the machine on purpose: an i8042 pulse of the reset line, the ACPI
// reset value, a sleep control write asking for S5.
func sanitize(port, size uint16, v uint32) uint32 {
	for i := range size {
		shift := 8 * uint32(i)
		b := uint8(v >> shift)
		switch port + i {
		case layout.I8042CommandPort:
			if b >= 0xf0 {
				b |= 1 // the reset line is bit 0, pulsed when clear
			}
		case layout.ResetRegisterPort:
			if b == layout.ResetValue {
				b++
			}
		case layout.SleepControlPort:
			b &^= acpi.SleepControlEnable
		}
		v = v&^(0xff<<shift) | uint32(b)<<shift
	}
	return v
}

// pokeMMIO makes one naturally aligned access of 1, 2, 4 or 8 bytes at a
// random offset of m.
func pokeMMIO(rng *rand.Rand, m []byte, st *Stats) {
	size := uint64(1) << rng.IntN(4)
	off := rng.Uint64N(uint64(len(m))) &^ (size - 1)
	p := unsafe.Pointer(&m[off])
	defer func() {
		if recover() != nil {
			st.Faults++
		}
	}()
	if rng.IntN(2) == 0 {
		st.MMIOReads++
		switch size {
		case 1:
			st.Sum += uint64(*(*uint8)(p))
		case 2:
			st.Sum += uint64(*(*uint16)(p))
		case 4:
			st.Sum += uint64(*(*uint32)(p))
		default:
			st.Sum += *(*uint64)(p)
		}
		return
	}
	v := rng.Uint64()
	st.MMIOWrites++
	switch size {
	case 1:
		*(*uint8)(p) = uint8(v)
	case 2:
		*(*uint16)(p) = uint16(v)
	case 4:
		*(*uint32)(p) = uint32(v)
	default:
		*(*uint64)(p) = v
	}
}

// UART registers restoreUART sets.
const (
	uartLCR   = 3
	uartMCR   = 4
	lcr8N1    = 0x03 // 8 data bits, no parity, 1 stop bit; DLAB off
	mcrDTROut = 0x0b // DTR, RTS and OUT2 (interrupts on); loopback off
)

// restoreUART puts COM1 back in the state Linux's console uses (the poke
// may have left loopback or the divisor latch on), so that the guest's
// console works after the poke.
func restoreUART() {
	outb(layout.COM1Port+uartLCR, lcr8N1)
	outb(layout.COM1Port+uartMCR, mcrDTROut)
}

// in reports whether x is in one of rs.
func in(rs []Range, x uint64) bool {
	for _, r := range rs {
		if x >= r.Start && x-r.Start < r.Size {
			return true
		}
	}
	return false
}

// highDeviceRanges lists the device memory above 4 GiB that the guest's
// /proc/iomem shows (the PCI 64-bit windows and what they hold), all but
// RAM, each at most 1 GiB.
func highDeviceRanges() []Range {
	f, err := os.Open("/proc/iomem")
	if err != nil {
		return nil
	}
	defer f.Close()
	return parseIOMem(f)
}

// parseIOMem reads /proc/iomem's top-level ranges at or above 4 GiB that
// are not RAM.
func parseIOMem(r io.Reader) []Range {
	var out []Range
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, " ") {
			continue
		}
		span, name, ok := strings.Cut(line, " : ")
		if !ok || strings.Contains(name, "RAM") || strings.Contains(name, "Reserved") {
			continue
		}
		lo, hi, ok := strings.Cut(span, "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		last, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || last < start || start < layout.HighRAMStart {
			continue
		}
		out = append(out, Range{start, min(last-start+1, 1<<30)})
	}
	return out
}
