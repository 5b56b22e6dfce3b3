package boot

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/vmmdev/vmm/vm/layout"
	"github.com/vmmdev/vmm/vm/memory"
)

// E820 entry types (arch/x86/include/uapi/asm/e820.h).
const (
	E820RAM      = 1
	E820Reserved = 2
	E820ACPI     = 3
)

// E820Entry is one entry of the e820 memory map.
type E820Entry struct {
	Addr, Size uint64
	Type       uint32
}

// put writes e as the zero page's struct boot_e820_entry and PVH's
// hvm_memmap_table_entry both lay it out: addr, size, type (20 bytes; the
// PVH entry's 4 reserved bytes that follow stay zero).
func (e E820Entry) put(b []byte) {
	binary.LittleEndian.PutUint64(b[0:], e.Addr)
	binary.LittleEndian.PutUint64(b[8:], e.Size)
	binary.LittleEndian.PutUint32(b[16:], e.Type)
}

// Zero page (struct boot_params) offsets (Documentation/arch/x86/zero-page.rst).
const (
	zpACPIRSDPAddr   = 0x070
	zpExtCmdLinePtr  = 0x0c8
	zpE820Entries    = 0x1e8
	zpE820Table      = 0x2d0
	zpE820MaxEntries = 128
	zpE820EntrySize  = 20
	// ZeroPageSize is sizeof(struct boot_params).
	ZeroPageSize = 4096
)

// E820Map describes boot RAM to the guest: the conventional 640 KiB below
// the EBDA, the ACPI tables as reserved, RAM from 1 MiB on, any RAM above
// 4 GiB, and the PCI ECAM as reserved (Linux uses an MCFG area only when
// the firmware reserved it), in address order.
func E820Map(ram []memory.Range) []E820Entry {
	var m []E820Entry
	for _, r := range ram {
		if r.Start != 0 {
			m = append(m, E820Entry{r.Start, r.Size, E820RAM})
			continue
		}
		m = append(m,
			E820Entry{0, min(r.Size, layout.EBDAStart), E820RAM},
			E820Entry{layout.ACPIStart, layout.ACPIEnd - layout.ACPIStart, E820Reserved})
		if r.End() > layout.KernelStart {
			m = append(m, E820Entry{layout.KernelStart, r.End() - layout.KernelStart, E820RAM})
		}
	}
	m = append(m, E820Entry{layout.PCIECAMStart, layout.PCIECAMSize, E820Reserved})
	slices.SortStableFunc(m, func(a, b E820Entry) int { return cmp.Compare(a.Addr, b.Addr) })
	return m
}

// ZeroPage is what the zero page tells the kernel.
type ZeroPage struct {
	Kernel      *BzImage
	CmdlineAddr uint64
	InitrdAddr  uint64
	InitrdSize  uint64
	RSDPAddr    uint64
	E820        []E820Entry
}

// Bytes builds the zero page: the kernel's setup header with the loader's
// fields filled in, and the e820 map.
func (z ZeroPage) Bytes() ([]byte, error) {
	if len(z.E820) > zpE820MaxEntries {
		return nil, fmt.Errorf("zero page: %d e820 entries, at most %d fit", len(z.E820), zpE820MaxEntries)
	}
	if z.InitrdAddr+z.InitrdSize > 1<<32 || z.CmdlineAddr >= 1<<32 {
		return nil, fmt.Errorf("zero page: initramfs at %#x+%#x or command line at %#x is above 4 GiB", z.InitrdAddr, z.InitrdSize, z.CmdlineAddr)
	}
	zp := make([]byte, ZeroPageSize)
	le := binary.LittleEndian
	copy(zp[hdrSetupSects:], z.Kernel.SetupHeader)
	zp[hdrTypeOfLoader] = loaderAny
	le.PutUint32(zp[hdrCmdLinePtr:], uint32(z.CmdlineAddr))
	le.PutUint32(zp[zpExtCmdLinePtr:], uint32(z.CmdlineAddr>>32))
	le.PutUint32(zp[hdrRamdiskImage:], uint32(z.InitrdAddr))
	le.PutUint32(zp[hdrRamdiskSize:], uint32(z.InitrdSize))
	le.PutUint64(zp[zpACPIRSDPAddr:], z.RSDPAddr)
	zp[zpE820Entries] = byte(len(z.E820))
	for i, e := range z.E820 {
		e.put(zp[zpE820Table+i*zpE820EntrySize:])
	}
	return zp, nil
}
