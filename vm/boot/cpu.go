package boot

import (
	"encoding/binary"
	"fmt"

	"github.com/vmmdev/vmm/kvm"
	"github.com/vmmdev/vmm/vm/layout"
)

// GDT selectors of the boot GDT (boot.rst: __BOOT_CS and __BOOT_DS).
const (
	SelectorCode = 0x10
	SelectorData = 0x18
	SelectorTSS  = 0x20
)

// Descriptor is a segment descriptor's fields before packing.
type Descriptor struct {
	Base   uint32
	Limit  uint32 // 20 bits
	Access uint8  // P, DPL, S, type
	Flags  uint8  // G, D/B, L, AVL (the high nibble of byte 6)
}

// Pack encodes the descriptor as the CPU reads it from a GDT.
func (d Descriptor) Pack() uint64 {
	return uint64(d.Limit&0xffff) |
		uint64(d.Base&0xffffff)<<16 |
		uint64(d.Access)<<40 |
		uint64((d.Limit>>16)&0xf)<<48 |
		uint64(d.Flags&0xf)<<52 |
		uint64(d.Base>>24)<<56
}

// Segment is the hidden segment register state a selector for d loads.
func (d Descriptor) Segment(selector uint16) kvm.Segment {
	limit := d.Limit & 0xfffff
	g := d.Flags >> 3 & 1
	if g == 1 {
		limit = limit<<12 | 0xfff
	}
	return kvm.Segment{
		Base:     uint64(d.Base),
		Limit:    limit,
		Selector: selector,
		Type:     d.Access & 0xf,
		Present:  d.Access >> 7 & 1,
		DPL:      d.Access >> 5 & 3,
		S:        d.Access >> 4 & 1,
		AVL:      d.Flags & 1,
		L:        d.Flags >> 1 & 1,
		DB:       d.Flags >> 2 & 1,
		G:        g,
	}
}

// The boot GDT's descriptors: flat 4 GiB 64-bit code, flat data, and a TSS
// (KVM requires a usable TR even though the guest never switches tasks).
var (
	codeDescriptor = Descriptor{Limit: 0xfffff, Access: 0x9b, Flags: 0xa} // present, exec/read, accessed; G, L
	dataDescriptor = Descriptor{Limit: 0xfffff, Access: 0x93, Flags: 0xc} // present, read/write, accessed; G, D/B
	tssDescriptor  = Descriptor{Limit: 0xfffff, Access: 0x8b, Flags: 0x8} // present, busy 64-bit TSS; G
)

// GDT returns the boot GDT's bytes: null, null, code, data, TSS.
func GDT() []byte {
	return packGDT(codeDescriptor, dataDescriptor, tssDescriptor)
}

// packGDT is a GDT's bytes: two null descriptors (selectors 0 and 8), then
// descs from selector 0x10 on.
func packGDT(descs ...Descriptor) []byte {
	b := make([]byte, 8*(2+len(descs)))
	for i, d := range descs {
		binary.LittleEndian.PutUint64(b[8*(2+i):], d.Pack())
	}
	return b
}

// Page table entry bits, and an entry's physical address bits (Intel SDM
// vol. 3, section 4.5).
const (
	ptePresent  = 1 << 0
	pteWritable = 1 << 1
	ptePageSize = 1 << 7
	pteAddrMask = 0x000f_ffff_ffff_f000
)

// PageTables returns the boot page tables, to be written at
// layout.PML4Start: a PML4, a PDPT and layout.BootPDCount page directories
// mapping the first 4 GiB 1:1 with 2 MiB pages. The kernel replaces them
// early; they need only cover what it touches before (itself, the zero
// page, the command line, the initramfs).
func PageTables() []byte {
	b := make([]byte, (2+layout.BootPDCount)*layout.PageSize)
	le := binary.LittleEndian
	le.PutUint64(b[0:], layout.PDPTStart|ptePresent|pteWritable)
	pdpt := b[layout.PDPTStart-layout.PML4Start:]
	pd := b[layout.PDStart-layout.PML4Start:]
	for i := range layout.BootPDCount {
		le.PutUint64(pdpt[8*i:], uint64(layout.PDStart+i*layout.PageSize)|ptePresent|pteWritable)
	}
	for i := range 512 * layout.BootPDCount {
		le.PutUint64(pd[8*i:], uint64(i)<<21|ptePresent|pteWritable|ptePageSize)
	}
	return b
}

// Control register and EFER bits.
const (
	cr0PE   = 1 << 0
	cr0ET   = 1 << 4
	cr0PG   = 1 << 31
	cr4PAE  = 1 << 5
	cr4LA57 = 1 << 12 // five-level paging
	eferLME = 1 << 8
	eferLMA = 1 << 10
	// rflagsReserved is RFLAGS bit 1, which always reads as one.
	rflagsReserved = 1 << 1
)

// Sregs returns the boot vCPU's special registers for the 64-bit entry,
// starting from the vCPU's current ones (which keep KVM's APIC base and
// other state): long mode with paging on the boot page tables, the boot GDT
// loaded and segments flat.
func Sregs(s kvm.Sregs) kvm.Sregs {
	code := codeDescriptor.Segment(SelectorCode)
	data := dataDescriptor.Segment(SelectorData)
	s.CS = code
	s.DS, s.ES, s.FS, s.GS, s.SS = data, data, data, data, data
	s.TR = tssDescriptor.Segment(SelectorTSS)
	s.LDT = kvm.Segment{Type: 2, Present: 1, Unusable: 1} // no LDT
	s.GDT = kvm.DTable{Base: layout.GDTStart, Limit: uint16(len(GDT()) - 1)}
	s.IDT = kvm.DTable{Base: layout.IDTStart, Limit: 0}
	s.CR0 |= cr0PE | cr0ET | cr0PG
	s.CR3 = layout.PML4Start
	s.CR4 |= cr4PAE
	s.EFER |= eferLME | eferLMA
	return s
}

// Regs returns the boot vCPU's general registers: RIP at the 64-bit entry,
// RSI at the zero page, interrupts off.
func Regs() kvm.Regs {
	return kvm.Regs{
		RIP:    layout.KernelStart + layout.Kernel64EntryOffset,
		RSI:    layout.ZeroPageStart,
		RSP:    layout.BootStackTop,
		RBP:    layout.BootStackTop,
		RFLAGS: rflagsReserved,
	}
}

// FPU returns the FPU state of a CPU after FNINIT, with SSE exceptions
// masked.
func FPU() kvm.FPU {
	return kvm.FPU{FCW: 0x37f, MXCSR: 0x1f80}
}

// ResetStub is real-mode code for the legacy reset vector
// (layout.ResetVector) that resets the machine by writing value to the
// reset register at port, then halts:
//
//	mov al, value
//	mov dx, port
//	out dx, al
//	hlt
//	jmp $-1 (back to hlt)
//
// Linux jumps there when it reboots through the BIOS (machine_real_restart),
// which is its last resort and, on a hardware-reduced ACPI machine without
// EFI, its default.
func ResetStub(port uint16, value uint8) []byte {
	return []byte{
		0xb0, value, // mov al, value
		0xba, byte(port), byte(port >> 8), // mov dx, port
		0xee,       // out dx, al
		0xf4,       // hlt
		0xeb, 0xfd, // jmp to the hlt
	}
}

// PagingOn reports whether cr0 has paging enabled (CR0.PG).
func PagingOn(cr0 uint64) bool { return cr0&cr0PG != 0 }

// Translate walks the guest's long-mode page tables rooted at cr3 (four
// levels, or five with CR4.LA57 in cr4) for the virtual address va and
// returns its guest physical address. It reads the tables from mem.
func Translate(mem interface {
	ReadAt(p []byte, gpa uint64) error
}, cr3, cr4, va uint64) (uint64, error) {
	levels := 4
	if cr4&cr4LA57 != 0 {
		levels = 5
	}
	table := cr3 & pteAddrMask
	for level := levels - 1; level >= 0; level-- {
		var e [8]byte
		if err := mem.ReadAt(e[:], table+(va>>(12+9*uint(level))&0x1ff)*8); err != nil {
			return 0, err
		}
		pte := binary.LittleEndian.Uint64(e[:])
		if pte&ptePresent == 0 {
			return 0, fmt.Errorf("%#x: not present at level %d", va, level+1)
		}
		if (level == 1 || level == 2) && pte&ptePageSize != 0 {
			size := uint64(1) << (12 + 9*uint(level))
			return pte&pteAddrMask&^(size-1) | va&(size-1), nil
		}
		table = pte & pteAddrMask
	}
	return table | va&(layout.PageSize-1), nil
}
