package boot

import (
	"errors"
	"fmt"
	"io"

	"github.com/vmmdev/vmm/vm/layout"
	"github.com/vmmdev/vmm/vm/memory"
)

// Memory is guest RAM as the loader writes it.
type Memory interface {
	WriteAt(p []byte, gpa uint64) error
	// Slice is the host bytes behind guest physical [gpa, gpa+n): files
	// are read straight into them.
	Slice(gpa, n uint64) ([]byte, error)
}

// Payload is what to boot. Its files are read as Load places them: they
// must stay open until then.
type Payload struct {
	// Image is the kernel or firmware.
	Image Image
	// Initramfs is the initramfs file, or nil for none.
	Initramfs *io.SectionReader
	Cmdline   string
	// RAM is the boot RAM, for the e820 map and the initramfs placement.
	RAM []memory.Range
	// RSDPAddr is the ACPI RSDP's guest physical address, or 0 for none.
	RSDPAddr uint64
}

// Check reports whether Load would place p in its RAM, without writing
// anything: the errors are Load's, found before a VM is built.
func Check(p Payload) error {
	switch {
	case p.Image.ELF != nil:
		_, err := planPVH(p)
		return err
	case p.Image.BzImage != nil:
		_, err := planBzImage(p)
		return err
	}
	return errors.New("no kernel or firmware image to load")
}

// Load writes the image, initramfs, command line and the structures its
// boot protocol hands over into guest memory: for a bzImage the zero page,
// page tables and GDT; for a PVH ELF image its segments, hvm_start_info
// and GDT. The boot vCPU then starts with the returned Entry's registers
// and FPU.
func Load(mem Memory, p Payload) (Entry, error) {
	switch {
	case p.Image.ELF != nil:
		return loadPVH(mem, p)
	case p.Image.BzImage != nil:
		return loadBzImage(mem, p)
	}
	return Entry{}, errors.New("no kernel or firmware image to load")
}

// planBzImage checks that p's bzImage, command line and initramfs fit and
// returns the initramfs's address (0 without one), without writing
// anything.
func planBzImage(p Payload) (uint64, error) {
	k := p.Image.BzImage
	if uint64(len(p.Cmdline)) >= uint64(k.CmdlineSize) || len(p.Cmdline) >= layout.CmdlineMax {
		return 0, fmt.Errorf("kernel command line: %d bytes, the kernel takes at most %d", len(p.Cmdline), min(k.CmdlineSize, layout.CmdlineMax-1))
	}
	if len(p.RAM) == 0 || p.RAM[0].Start != 0 || p.RAM[0].End() <= layout.KernelStart {
		return 0, fmt.Errorf("boot RAM %v does not reach above 1 MiB", p.RAM)
	}
	lowEnd := p.RAM[0].End()
	kernelEnd := uint64(layout.KernelStart) + sizeOf(k.Payload)
	if kernelEnd > lowEnd {
		return 0, fmt.Errorf("kernel of %d MiB does not fit in %d MiB of RAM", sizeOf(k.Payload)>>20, lowEnd>>20)
	}
	if sizeOf(p.Initramfs) == 0 {
		return 0, nil
	}
	return initrdAddr(k, lowEnd, sizeOf(p.Initramfs))
}

// loadBzImage writes p's bzImage, initramfs, command line, zero page, page
// tables and GDT into guest memory.
func loadBzImage(mem Memory, p Payload) (Entry, error) {
	k := p.Image.BzImage
	initrd, err := planBzImage(p)
	if err != nil {
		return Entry{}, err
	}
	if err := copyIn(mem, k.Payload, layout.KernelStart); err != nil {
		return Entry{}, fmt.Errorf("load kernel: %w", err)
	}
	zp := ZeroPage{Kernel: k, CmdlineAddr: layout.CmdlineStart, RSDPAddr: p.RSDPAddr, E820: E820Map(p.RAM)}
	if n := sizeOf(p.Initramfs); n > 0 {
		if err := copyIn(mem, p.Initramfs, initrd); err != nil {
			return Entry{}, fmt.Errorf("load initramfs: %w", err)
		}
		zp.InitrdAddr, zp.InitrdSize = initrd, n
	}
	zpBytes, err := zp.Bytes()
	if err != nil {
		return Entry{}, err
	}
	for _, w := range []struct {
		what string
		b    []byte
		at   uint64
	}{
		{"zero page", zpBytes, layout.ZeroPageStart},
		{"command line", append([]byte(p.Cmdline), 0), layout.CmdlineStart},
		{"page tables", PageTables(), layout.PML4Start},
		{"GDT", GDT(), layout.GDTStart},
		{"IDT", make([]byte, 8), layout.IDTStart},
	} {
		if err := mem.WriteAt(w.b, w.at); err != nil {
			return Entry{}, fmt.Errorf("write %s: %w", w.what, err)
		}
	}
	return Entry{Protocol: Linux64, Addr: layout.KernelStart + layout.Kernel64EntryOffset}, nil
}

// initrdAddr places an initramfs of size bytes as high as the kernel allows
// in low RAM ending at lowEnd, page aligned, above everything the kernel
// occupies while it decompresses itself.
func initrdAddr(k *BzImage, lowEnd, size uint64) (uint64, error) {
	top := min(lowEnd, uint64(k.InitrdAddrMax)+1)
	if size > top {
		return 0, fmt.Errorf("initramfs of %d MiB does not fit below %#x", size>>20, top)
	}
	addr := (top - size) &^ (layout.PageSize - 1)
	floor := uint64(layout.KernelStart) + max(sizeOf(k.Payload), uint64(k.InitSize))
	if k.Relocatable && k.PrefAddress > layout.KernelStart {
		floor = max(floor, k.PrefAddress+uint64(k.InitSize))
	}
	if addr < floor {
		return 0, fmt.Errorf("initramfs of %d MiB and the kernel (%d MiB while it unpacks) do not fit in %d MiB of low RAM",
			size>>20, (floor-layout.KernelStart)>>20, lowEnd>>20)
	}
	return addr, nil
}
