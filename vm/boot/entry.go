package boot

import (
	"github.com/vmmdev/vmm/kvm"
	"github.com/vmmdev/vmm/vm/layout"
)

// Protocol is the boot protocol the boot vCPU enters an image with.
type Protocol int

const (
	// Linux64 is a bzImage's 64-bit boot protocol (boot.rst): long mode,
	// paging on the boot page tables, RSI at the zero page.
	Linux64 Protocol = iota
	// PVH is the PVH boot protocol (Xen's docs/misc/pvh.pandoc): 32-bit
	// protected mode with paging off, EBX at hvm_start_info.
	PVH
)

// String names the protocol for logs.
func (p Protocol) String() string {
	if p == PVH {
		return "PVH"
	}
	return "64-bit boot protocol"
}

// Entry is how the boot vCPU starts: the protocol and the entry point. Load
// returns it; APs are unaffected (the guest starts them with INIT and SIPI).
type Entry struct {
	Protocol Protocol
	// Addr is the entry point's guest physical address, RIP at the start.
	Addr uint64
}

// Regs returns the boot vCPU's general registers for the entry.
func (e Entry) Regs() kvm.Regs {
	if e.Protocol == PVH {
		return PVHRegs(e.Addr)
	}
	r := Regs()
	r.RIP = e.Addr
	return r
}

// Sregs returns the boot vCPU's special registers for the entry, starting
// from the vCPU's current ones.
func (e Entry) Sregs(s kvm.Sregs) kvm.Sregs {
	if e.Protocol == PVH {
		return PVHSregs(s)
	}
	return Sregs(s)
}

// The PVH boot GDT's descriptors at the same selectors as the 64-bit one
// (SelectorCode, SelectorData, SelectorTSS): pvh.pandoc wants CS a 32-bit
// read/execute segment and DS, ES 32-bit read/write segments, all with base
// 0 and limit 0xffffffff, and TR a 32-bit active TSS with base 0 and limit
// 0x67.
var (
	code32Descriptor = Descriptor{Limit: 0xfffff, Access: 0x9b, Flags: 0xc} // present, exec/read, accessed; G, D/B
	tss32Descriptor  = Descriptor{Limit: 0x67, Access: 0x8b, Flags: 0}      // present, busy 32-bit TSS; byte granular
)

// PVHGDT returns the PVH boot GDT's bytes, to be written at
// layout.GDTStart: null, null, 32-bit code, data, TSS.
func PVHGDT() []byte {
	return packGDT(code32Descriptor, dataDescriptor, tss32Descriptor)
}

// PVHSregs returns the boot vCPU's special registers for a PVH entry,
// starting from the vCPU's current ones (which keep KVM's APIC base and
// other state), as pvh.pandoc wants them: CR0 with only PE of its writable
// bits (ET reads as one on every CPU that runs KVM), CR4 and EFER clear so
// paging and long mode are off, flat 32-bit segments from the PVH GDT.
func PVHSregs(s kvm.Sregs) kvm.Sregs {
	data := dataDescriptor.Segment(SelectorData)
	s.CS = code32Descriptor.Segment(SelectorCode)
	s.DS, s.ES, s.FS, s.GS, s.SS = data, data, data, data, data
	s.TR = tss32Descriptor.Segment(SelectorTSS)
	s.LDT = kvm.Segment{Type: 2, Present: 1, Unusable: 1} // no LDT
	s.GDT = kvm.DTable{Base: layout.GDTStart, Limit: uint16(len(PVHGDT()) - 1)}
	s.IDT = kvm.DTable{Base: layout.IDTStart, Limit: 0}
	s.CR0 = cr0PE | cr0ET
	s.CR3 = 0
	s.CR4 = 0
	s.EFER = 0
	return s
}

// PVHRegs returns the boot vCPU's general registers for a PVH entry at
// entry: EBX at hvm_start_info, EFLAGS with only its reserved bit 1 (VM,
// IF and TF clear), the rest zero; the image sets up its own stack.
func PVHRegs(entry uint64) kvm.Regs {
	return kvm.Regs{
		RIP:    entry,
		RBX:    layout.PVHStartInfoStart,
		RFLAGS: rflagsReserved,
	}
}
