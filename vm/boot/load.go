package boot

import (
	"fmt"

	"github.com/vmmdev/vmm/vm/layout"
	"github.com/vmmdev/vmm/vm/memory"
)

// Memory is guest RAM as the loader writes it.
type Memory interface {
	WriteAt(p []byte, gpa uint64) error
}

// Payload is what to boot.
type Payload struct {
	Kernel    *BzImage
	Initramfs []byte // may be empty
	Cmdline   string
	// RAM is the boot RAM, for the e820 map and the initramfs placement.
	RAM []memory.Range
	// RSDPAddr is the ACPI RSDP's guest physical address, or 0 for none.
	RSDPAddr uint64
}

// Load writes the kernel, initramfs, command line, zero page, page tables
// and GDT into guest memory. The boot vCPU then starts with Regs, Sregs and
// FPU.
func Load(mem Memory, p Payload) error {
	k := p.Kernel
	if uint64(len(p.Cmdline)) >= uint64(k.CmdlineSize) || len(p.Cmdline) >= layout.CmdlineMax {
		return fmt.Errorf("kernel command line: %d bytes, the kernel takes at most %d", len(p.Cmdline), min(k.CmdlineSize, layout.CmdlineMax-1))
	}
	if len(p.RAM) == 0 || p.RAM[0].Start != 0 || p.RAM[0].End() <= layout.KernelStart {
		return fmt.Errorf("boot RAM %v does not reach above 1 MiB", p.RAM)
	}
	lowEnd := p.RAM[0].End()
	kernelEnd := uint64(layout.KernelStart) + uint64(len(k.Payload))
	if kernelEnd > lowEnd {
		return fmt.Errorf("kernel of %d MiB does not fit in %d MiB of RAM", len(k.Payload)>>20, lowEnd>>20)
	}
	if err := mem.WriteAt(k.Payload, layout.KernelStart); err != nil {
		return fmt.Errorf("load kernel: %w", err)
	}

	zp := ZeroPage{Kernel: k, CmdlineAddr: layout.CmdlineStart, RSDPAddr: p.RSDPAddr, E820: E820Map(p.RAM)}
	if len(p.Initramfs) > 0 {
		addr, err := initrdAddr(k, lowEnd, uint64(len(p.Initramfs)))
		if err != nil {
			return err
		}
		if err := mem.WriteAt(p.Initramfs, addr); err != nil {
			return fmt.Errorf("load initramfs: %w", err)
		}
		zp.InitrdAddr, zp.InitrdSize = addr, uint64(len(p.Initramfs))
	}
	zpBytes, err := zp.Bytes()
	if err != nil {
		return err
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
			return fmt.Errorf("write %s: %w", w.what, err)
		}
	}
	return nil
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
	floor := uint64(layout.KernelStart) + max(uint64(len(k.Payload)), uint64(k.InitSize))
	if k.Relocatable && k.PrefAddress > layout.KernelStart {
		floor = max(floor, k.PrefAddress+uint64(k.InitSize))
	}
	if addr < floor {
		return 0, fmt.Errorf("initramfs of %d MiB and the kernel (%d MiB while it unpacks) do not fit in %d MiB of low RAM",
			size>>20, (floor-layout.KernelStart)>>20, lowEnd>>20)
	}
	return addr, nil
}
