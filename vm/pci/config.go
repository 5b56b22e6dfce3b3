package pci

// The type 0 configuration header (PCI Local Bus Specification 3.0, 6.1)
// and the capability ids this package writes.

// ConfigSize is a conventional function's configuration space: the
// header and the capability list. Extended configuration space (ECAM
// offsets 0x100-0xfff) reads as zero: no function here has a PCI Express
// capability, so a guest never looks there.
const ConfigSize = 256

// FunctionECAMSize is one function's share of the ECAM.
const FunctionECAMSize = 4096

// NumBARs is the base address registers of a type 0 header.
const NumBARs = 6

// Header register offsets.
const (
	RegVendorID          = 0x00
	RegDeviceID          = 0x02
	RegCommand           = 0x04
	RegStatus            = 0x06
	RegRevision          = 0x08
	RegClass             = 0x09 // programming interface, subclass, class: 3 bytes
	RegCacheLineSize     = 0x0c
	RegHeaderType        = 0x0e
	RegBAR0              = 0x10
	RegSubsystemVendorID = 0x2c
	RegSubsystemID       = 0x2e
	RegExpansionROM      = 0x30
	RegCapabilities      = 0x34
	RegInterruptLine     = 0x3c
	RegInterruptPin      = 0x3d
)

// Command register bits.
const (
	CommandIO           = 1 << 0
	CommandMemory       = 1 << 1
	CommandBusMaster    = 1 << 2
	CommandParity       = 1 << 6
	CommandSERR         = 1 << 8
	CommandINTxDisabled = 1 << 10
	// commandWritable are the command bits a guest may set; the others
	// (special cycles, memory write and invalidate, VGA snoop, fast
	// back-to-back) read as zero.
	commandWritable = CommandIO | CommandMemory | CommandBusMaster | CommandParity | CommandSERR | CommandINTxDisabled
)

// StatusCapabilities is the status register's "capabilities list" bit.
const StatusCapabilities = 1 << 4

// BAR register low bits.
const (
	barMem64        = 0x4 // bits 2-1: 64-bit memory BAR
	barPrefetchable = 0x8
	barFlagBits     = 0xf
)

// Capability ids (PCI Code and ID Assignment Specification).
const (
	CapVendor = 0x09
	CapMSIX   = 0x11
)

// capStart is where the capability list begins, right after the header;
// capAlign aligns each capability (the pointers' low two bits are
// reserved).
const (
	capStart = 0x40
	capAlign = 4
)

// Class codes: base class, subclass and programming interface, as
// RegClass holds them from its high byte down.
const (
	ClassHostBridge  = 0x06_00_00
	ClassStorageSCSI = 0x01_00_00
	ClassEthernet    = 0x02_00_00
	ClassOther       = 0xff_00_00
)
