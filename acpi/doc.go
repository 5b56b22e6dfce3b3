// Package acpi writes the ACPI tables and the AML byte code a vmm guest
// reads: an AML encoder and builders for the RSDP, XSDT, FADT, MADT, MCFG
// and DSDT.
// It is pure bytes: nothing here touches KVM or guest memory.
//
// # AML
//
// Every AML construct is a small value implementing [Aml], which appends its
// own encoding to a byte slice. Constructs nest the way ASL does:
//
//	dev := acpi.Device("COM1",
//		acpi.Name("_HID", acpi.EISAID("PNP0501")),
//		acpi.Name("_UID", acpi.Zero),
//		acpi.Name("_CRS", acpi.ResourceTemplate(
//			acpi.IO{Min: 0x3f8, Max: 0x3f8, Align: 1, Length: 8},
//			acpi.IRQNoFlags{4},
//		)),
//	)
//	dsdt, err := acpi.DSDT(acpi.Scope(`\_SB`, dev))
//
// Names follow ASL spelling: a path is a string such as `\_SB.CPUS.CP00`,
// `CPUS.CSCN`, `^PCI0` or `_STA`; segments shorter than four characters are
// padded with '_' and all letters must be upper case. Integers take their
// shortest encoding (ZeroOp, OneOp, then byte, word, dword or qword). Values
// of the Go types [Int], [String], [Buffer], [Package], [Path], [Local] and
// [Arg] are AML objects themselves.
//
// Malformed input (a bad name, a field offset going backwards, a package too
// long to encode) is a programming error. AppendAml panics with an
// [*EncodeError] on it; [Encode] and the table builders recover that panic
// and return it as an error, so code that builds AML through them never
// panics. None of this input comes from a guest.
//
// # Tables
//
// [RSDP], [XSDT], [FADT], [MADT], [MCFG] and [DSDT] build single tables with
// correct headers and checksums; [Layout] places a complete set at a guest physical
// address and fills in the pointers between them. Devices contribute to the
// DSDT by implementing [Describer]; [SystemBus] gathers them into the \_SB
// scope.
//
// Package acpi/acpitest checks tables with the ACPICA disassembler (iasl).
package acpi
