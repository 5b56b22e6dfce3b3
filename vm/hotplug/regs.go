package hotplug

// Register layouts of the three hot plug devices. Offsets are from the start
// of each device's MMIO block; the owner maps each block at a guest physical
// address of its choice and passes that address to the device's
// constructor, which writes it into the AML. Multi-byte registers are little
// endian and accept accesses of any size (1, 2, 4 or 8 bytes) at any offset;
// bytes beyond the registers read as zero and ignore writes.

// GED (Generic Event Device, ACPI0013) block.
const (
	// GEDSize is the size of the GED block.
	GEDSize = 0x10
	// GEDEventOffset is the 32-bit event register. Reading it returns the
	// pending event bits and clears the bits returned (read-to-clear);
	// writes are ignored.
	GEDEventOffset = 0x00
)

// GED event bits.
const (
	// EventCPU asks the guest to run the CPU hot plug scan \_SB.CPUS.CSCN.
	EventCPU uint32 = 1 << 0
	// EventMemory asks the guest to run the memory hot plug scan
	// \_SB.MHPC.MSCN.
	EventMemory uint32 = 1 << 1
	// EventPowerButton makes the guest Notify(\_SB.PWRB, 0x80): a power
	// button press.
	EventPowerButton uint32 = 1 << 2
	// EventPCI asks the guest to run the PCI hot plug scan
	// \_SB.PHPR.PSCN.
	EventPCI uint32 = 1 << 3
	// allEvents is every event bit the GED knows.
	allEvents = EventCPU | EventMemory | EventPowerButton | EventPCI
)

// CPU hot plug controller block.
const (
	// CPUBlockSize is the size of the CPU hot plug block.
	CPUBlockSize = 0x10
	// CPUSelectOffset is the 32-bit selector: write a CPU id to choose
	// the CPU the status register refers to. Reads return the last value
	// written. An id at or above the possible CPU count selects nothing:
	// its status reads zero and writes to it are ignored.
	CPUSelectOffset = 0x00
	// CPUStatusOffset is the status byte of the selected CPU.
	CPUStatusOffset = 0x04
	// CPUOSTEventOffset is the 32-bit _OST source event (write only): the
	// notification the guest reports on, 3 for an eject request.
	CPUOSTEventOffset = 0x08
	// CPUOSTStatusOffset is the 32-bit _OST status code (write only).
	// Writing it reports the pair (event, status) for the selected CPU, as
	// the guest's _OST method passes them (ACPI 6.5, 6.3.5 "_OST").
	CPUOSTStatusOffset = 0x0c
)

// _OST source events and eject status codes the CPU controller acts on
// (ACPI 6.5, 6.3.5 "_OST"; Linux's include/linux/acpi.h names them
// ACPI_NOTIFY_EJECT_REQUEST, ACPI_OST_EC_OSPM_EJECT and ACPI_OST_SC_*).
const (
	// OSTEjectRequest is the event of an eject request the platform sent
	// (Notify 3).
	OSTEjectRequest = 0x03
	// OSTOSPMEject is the event of an eject the guest started itself
	// (through sysfs).
	OSTOSPMEject = 0x103
	// OSTSuccess is the status of a completed request.
	OSTSuccess = 0x00
	// OSTEjectInProgress is the status the guest reports before it starts
	// offlining the device: not an answer yet.
	OSTEjectInProgress = 0x84
)

// CPU status register bits.
const (
	// CPUEnabled (read only) is set while the CPU is present.
	CPUEnabled = 1 << 0
	// CPUInserting is set when the CPU was hot added and the guest has not
	// acknowledged it yet. Writing 1 clears it (the acknowledgement).
	CPUInserting = 1 << 1
	// CPURemoving is set when the owner asked for the CPU's removal and the
	// guest has not acknowledged the request yet. Writing 1 clears it.
	CPURemoving = 1 << 2
	// CPUEject (write only) ejects the CPU whose removal the owner asked
	// for: writing 1 clears CPUEnabled at once and calls the owner's
	// EjectCPU. For CPU 0 or a CPU not being removed it is refused
	// (EjectIgnored). Reads as zero.
	CPUEject = 1 << 3
)

// Memory hot plug controller block.
const (
	// MemoryBlockSize is the size of the memory hot plug block.
	MemoryBlockSize = 0x20
	// MemorySelectOffset is the 32-bit slot selector, like
	// CPUSelectOffset: an index at or above the slot count selects nothing.
	MemorySelectOffset = 0x00
	// MemoryBaseOffset is the selected slot's 64-bit guest physical base
	// (read only; the low dword first).
	MemoryBaseOffset = 0x08
	// MemoryLengthOffset is the selected slot's 64-bit length in bytes
	// (read only; the low dword first).
	MemoryLengthOffset = 0x10
	// MemoryStatusOffset is the status byte of the selected slot.
	MemoryStatusOffset = 0x18
	// MemoryNextOffset (32-bit, read only) is the lowest slot whose
	// insertion the guest has not acknowledged, or the slot count when
	// there is none. The scan follows it instead of visiting every slot:
	// under emulation each register access is an exit costing about a
	// millisecond, and an 8 GiB hot plug space has 64 slots.
	MemoryNextOffset = 0x1c
)

// Memory slot status register bits.
const (
	// MemoryEnabled (read only) is set while the slot holds memory.
	MemoryEnabled = 1 << 0
	// MemoryInserting is set when the slot was filled and the guest has
	// not acknowledged it yet. Writing 1 clears it.
	MemoryInserting = 1 << 1
)

// MaxMemorySlots is the most slots the memory hot plug controller
// describes: its devices are named M000 to MFFF. (CPUs are limited to
// acpi.MaxCPUs, as the MADT and _MAT entries are; their devices are CP00
// to CPFE.)
const MaxMemorySlots = 0x1000

// PCI hot plug controller block (Cloud Hypervisor's PCIU, PCID, B0EJ and
// PSEG, in that order).
const (
	// PCIBlockSize is the size of the PCI hot plug block.
	PCIBlockSize = 0x10
	// PCIUpOffset is the 32-bit bitmap of the selected segment's slots
	// with a device to announce (bit n: device n). Reading it clears the
	// bits read; writes are ignored.
	PCIUpOffset = 0x00
	// PCIDownOffset is the 32-bit bitmap of the selected segment's slots
	// whose device the guest is asked to release, read-to-clear as
	// PCIUpOffset.
	PCIDownOffset = 0x04
	// PCIEjectOffset is the 32-bit eject register: writing bit n ejects
	// the device at slot n of the selected segment. Reads as zero.
	PCIEjectOffset = 0x08
	// PCISegmentOffset is the 32-bit segment selector; a segment past the
	// last selects nothing (bitmaps read zero, ejects are ignored).
	PCISegmentOffset = 0x0c
	// PCISlots is the device numbers of a bus; slot 0 (the host bridge)
	// is never hot plugged.
	PCISlots = 32
	// MaxPCISegments is the most segments the controller serves.
	MaxPCISegments = 16
)
