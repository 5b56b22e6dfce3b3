package acpi

// tableAlign is the alignment of each table placed by Layout.
const tableAlign = 16

// Layout places a complete table set at the guest physical address addr
// and returns the bytes to copy there. The RSDP comes first, at addr itself
// (the address for the zero page's acpi_rsdp_addr; keep addr 16-byte
// aligned), then the DSDT, the FADT built from fadt with its DSDTAddr set
// to the DSDT's address, the other tables in order (MADT, ...) and last the
// XSDT listing the FADT and the others. Each table starts on a 16-byte
// boundary; the gaps are zero.
func Layout(addr uint64, fadt FADTConfig, dsdt []byte, others ...[]byte) []byte {
	var out []byte
	place := func(t []byte) uint64 {
		for len(out)%tableAlign != 0 {
			out = append(out, 0)
		}
		at := addr + uint64(len(out))
		out = append(out, t...)
		return at
	}
	out = make([]byte, RSDPSize) // the RSDP, written once the XSDT is placed
	fadt.DSDTAddr = place(dsdt)
	entries := []uint64{place(FADT(fadt))}
	for _, t := range others {
		entries = append(entries, place(t))
	}
	xsdt := place(XSDT(entries))
	copy(out, RSDP(xsdt))
	return out
}
