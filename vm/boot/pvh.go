package boot

import (
	"encoding/binary"
	"fmt"

	"github.com/vmmdev/vmm/vm/layout"
	"github.com/vmmdev/vmm/vm/memory"
)

// struct hvm_start_info and the tables it points to, version 1 (Xen's
// xen/include/public/arch-x86/hvm/start_info.h): every field little
// endian, a zero address meaning "not present".
const (
	// pvhStartMagic is XEN_HVM_START_MAGIC_VALUE ("xEn3" with the 0x80 bit
	// of the "E" set).
	pvhStartMagic = 0x336ec578
	// pvhStartVersion 1 adds memmap_paddr and memmap_entries, which Linux
	// needs outside Xen (arch/x86/platform/pvh/enlighten.c).
	pvhStartVersion = 1

	// hvm_start_info offsets.
	siMagic         = 0
	siVersion       = 4
	siFlags         = 8
	siNrModules     = 12
	siModlistPaddr  = 16
	siCmdlinePaddr  = 24
	siRSDPPaddr     = 32
	siMemmapPaddr   = 40
	siMemmapEntries = 48
	// PVHStartInfoSize is sizeof(struct hvm_start_info), version 1.
	PVHStartInfoSize = 56

	// hvm_modlist_entry: paddr, size, cmdline_paddr, reserved.
	pvhModlistEntrySize = 32
	// hvm_memmap_table_entry: addr, size, type (the e820 types), reserved.
	pvhMemmapEntrySize = 24
)

// PVHStartInfo is what hvm_start_info tells a PVH image.
type PVHStartInfo struct {
	// CmdlineAddr is the NUL-terminated command line, 0 for none.
	CmdlineAddr uint64
	// RSDPAddr is the ACPI RSDP, 0 for none.
	RSDPAddr uint64
	// InitrdAddr and InitrdSize are the initramfs, passed as the only
	// module (Linux takes the first module as its initrd); size 0 for none.
	InitrdAddr, InitrdSize uint64
	// E820 is the memory map.
	E820 []E820Entry
}

// Bytes lays out the start info, its module list and its memory map as one
// block to be written at layout.PVHStartInfoStart; the module list and the
// memory map are at layout.PVHModlistStart and layout.PVHMemmapStart.
func (s PVHStartInfo) Bytes() ([]byte, error) {
	if len(s.E820) > layout.PVHMemmapMax {
		return nil, fmt.Errorf("hvm_start_info: %d memory map entries, at most %d fit", len(s.E820), layout.PVHMemmapMax)
	}
	const modlist = layout.PVHModlistStart - layout.PVHStartInfoStart
	const memmap = layout.PVHMemmapStart - layout.PVHStartInfoStart
	b := make([]byte, memmap+len(s.E820)*pvhMemmapEntrySize)
	le := binary.LittleEndian
	le.PutUint32(b[siMagic:], pvhStartMagic)
	le.PutUint32(b[siVersion:], pvhStartVersion)
	le.PutUint32(b[siFlags:], 0)
	if s.InitrdSize > 0 {
		le.PutUint32(b[siNrModules:], 1)
		le.PutUint64(b[siModlistPaddr:], layout.PVHModlistStart)
		le.PutUint64(b[modlist:], s.InitrdAddr)
		le.PutUint64(b[modlist+8:], s.InitrdSize)
	}
	le.PutUint64(b[siCmdlinePaddr:], s.CmdlineAddr)
	le.PutUint64(b[siRSDPPaddr:], s.RSDPAddr)
	if len(s.E820) > 0 {
		le.PutUint64(b[siMemmapPaddr:], layout.PVHMemmapStart)
		le.PutUint32(b[siMemmapEntries:], uint32(len(s.E820)))
	}
	for i, e := range s.E820 {
		e.put(b[memmap+i*pvhMemmapEntrySize:])
	}
	return b, nil
}

// pvhPlan is where a PVH boot puts what the image does not place itself.
type pvhPlan struct {
	initrdAddr uint64
	info       []byte // hvm_start_info and its tables
}

// planPVH checks that p's ELF image fits guest RAM without touching the
// VMM's structures and places the initramfs, without writing anything.
func planPVH(p Payload) (pvhPlan, error) {
	var plan pvhPlan
	e := p.Image.ELF
	if len(p.Cmdline) >= layout.CmdlineMax {
		return plan, fmt.Errorf("command line: %d bytes, at most %d", len(p.Cmdline), layout.CmdlineMax-1)
	}
	if len(p.RAM) == 0 || p.RAM[0].Start != 0 || p.RAM[0].End() <= layout.KernelStart {
		return plan, fmt.Errorf("boot RAM %v does not reach above 1 MiB", p.RAM)
	}
	for _, s := range e.Segments {
		if s.Paddr < layout.KernelStart {
			return plan, fmt.Errorf("ELF segment %d at %#x-%#x overlaps the first MiB, where the VMM keeps its boot structures, ACPI tables and reset vector",
				s.Index, s.Paddr, s.End())
		}
		if !inRAM(p.RAM, s.Paddr, s.End()) {
			return plan, fmt.Errorf("ELF segment %d at %#x-%#x is outside guest RAM (%s)", s.Index, s.Paddr, s.End(), ramString(p.RAM))
		}
	}
	info := PVHStartInfo{RSDPAddr: p.RSDPAddr, E820: E820Map(p.RAM)}
	if p.Cmdline != "" {
		info.CmdlineAddr = layout.CmdlineStart
	}
	if size := sizeOf(p.Initramfs); size > 0 {
		// As high as low RAM goes, below 4 GiB (Linux keeps the initrd's
		// address in 32 bits) and clear of every segment.
		lowEnd := min(p.RAM[0].End(), 1<<32)
		if size > lowEnd-layout.KernelStart {
			return plan, fmt.Errorf("initramfs of %d MiB does not fit in %d MiB of low RAM", size>>20, lowEnd>>20)
		}
		addr := (lowEnd - size) &^ (layout.PageSize - 1)
		for _, s := range e.Segments {
			if addr < s.End() && s.Paddr < addr+size {
				return plan, fmt.Errorf("initramfs of %d MiB and ELF segment %d at %#x-%#x do not fit together in %d MiB of low RAM",
					size>>20, s.Index, s.Paddr, s.End(), lowEnd>>20)
			}
		}
		plan.initrdAddr = addr
		info.InitrdAddr, info.InitrdSize = addr, size
	}
	var err error
	plan.info, err = info.Bytes()
	return plan, err
}

// loadPVH writes p's ELF image, initramfs, command line, hvm_start_info
// with its tables, and the PVH GDT into guest memory.
func loadPVH(mem Memory, p Payload) (Entry, error) {
	plan, err := planPVH(p)
	if err != nil {
		return Entry{}, err
	}
	e := p.Image.ELF
	for _, s := range e.Segments {
		if err := copyIn(mem, s.Data, s.Paddr); err != nil {
			return Entry{}, fmt.Errorf("load ELF segment %d: %w", s.Index, err)
		}
		if err := zero(mem, s.Paddr+sizeOf(s.Data), s.MemSize-sizeOf(s.Data)); err != nil {
			return Entry{}, fmt.Errorf("clear ELF segment %d's memory: %w", s.Index, err)
		}
	}
	if sizeOf(p.Initramfs) > 0 {
		if err := copyIn(mem, p.Initramfs, plan.initrdAddr); err != nil {
			return Entry{}, fmt.Errorf("load initramfs: %w", err)
		}
	}
	for _, w := range []struct {
		what string
		b    []byte
		at   uint64
	}{
		{"hvm_start_info", plan.info, layout.PVHStartInfoStart},
		{"command line", append([]byte(p.Cmdline), 0), layout.CmdlineStart},
		{"GDT", PVHGDT(), layout.GDTStart},
		{"IDT", make([]byte, 8), layout.IDTStart},
	} {
		if err := mem.WriteAt(w.b, w.at); err != nil {
			return Entry{}, fmt.Errorf("write %s: %w", w.what, err)
		}
	}
	return Entry{Protocol: PVH, Addr: uint64(e.PVHEntry)}, nil
}

// zero clears n bytes of guest memory from gpa.
func zero(mem Memory, gpa, n uint64) error {
	const chunk = 1 << 20
	z := make([]byte, min(n, chunk))
	for n > 0 {
		k := min(n, chunk)
		if err := mem.WriteAt(z[:k], gpa); err != nil {
			return err
		}
		gpa, n = gpa+k, n-k
	}
	return nil
}

// inRAM reports whether [start, end) lies within one of the ranges.
func inRAM(ram []memory.Range, start, end uint64) bool {
	for _, r := range ram {
		if start >= r.Start && end <= r.End() {
			return true
		}
	}
	return false
}

// ramString writes RAM ranges as "0-0x40000000, 0x100000000-0x140000000".
func ramString(ram []memory.Range) string {
	s := ""
	for i, r := range ram {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%#x-%#x", r.Start, r.End())
	}
	return s
}
