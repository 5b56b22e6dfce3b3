// Package layout is the guest's physical address map, I/O ports and IRQ
// lines: every address the machine model fixes, in one place. It imports
// nothing, so every layer (boot loader, devices, hot plug, ACPI glue) may
// use it.
//
// Guest-physical map (x86_64):
//
//	0x0000_0000  real-mode IVT and BIOS data area (left zero)
//	0x0000_0500  boot GDT (5 descriptors), then the (empty) boot IDT at 0x528
//	0x0000_7000  zero page (struct boot_params), or for a PVH boot
//	             hvm_start_info, its module list and its memory map
//	0x0000_8ff0  boot stack top (grows down)
//	0x0000_9000  boot page tables: PML4, PDPT, 4 PDs (identity map of 4 GiB)
//	0x0002_0000  kernel command line
//	0x0009_fc00  EBDA: end of low RAM in the e820 map
//	0x000e_0000  ACPI tables (RSDP first), up to 1 MiB; reserved in e820
//	0x000f_fff0  reset vector stub (writes the ACPI reset register)
//	0x0010_0000  protected-mode kernel (bzImage payload); RAM from here
//	             to LowRAMEnd, initramfs at the top of it
//	0xc000_0000  32-bit hole: no RAM up to 4 GiB; PCI segments' 32-bit
//	             BAR windows (16 MiB each) up to 0xd000_0000
//	0xd000_0000  device MMIO window: GED, CPU and memory hot plug
//	             register blocks, virtio-mmio devices
//	0xe000_0000  PCI ECAM (MCFG): 1 MiB per segment, 16 segments
//	0xfec0_0000  IOAPIC (in-kernel irqchip)
//	0xfee0_0000  local APICs (in-kernel irqchip)
//	0xfffb_c000  KVM identity map page, then the KVM TSS (3 pages)
//	0x1_0000_0000  boot RAM beyond LowRAMEnd, then the hot plug RAM space,
//	             then the PCI segments' 64-bit BAR windows (PCIMMIO64Start)
package layout

// Sizes.
const (
	KiB = 1 << 10
	MiB = 1 << 20
	GiB = 1 << 30
	// PageSize is the x86 base page size.
	PageSize = 4 * KiB
)

// Boot-time structures in low memory. The offsets below 1 MiB follow the
// usual PC layout that Linux's boot protocol expects (Documentation/arch/x86/
// boot.rst): everything below EBDAStart is ordinary RAM the kernel reserves
// while it boots.
const (
	// GDTStart holds the boot GDT: null, null, code (0x10), data (0x18), TSS
	// (0x20), as the 64-bit boot protocol wants __BOOT_CS = 0x10 and
	// __BOOT_DS = 0x18.
	GDTStart = 0x500
	// IDTStart holds an empty boot IDT; the guest runs with interrupts off
	// until it loads its own. It follows the GDT's five 8-byte descriptors
	// (at 0x520 it held the TSS descriptor, which the IDT's zeros wiped).
	IDTStart = GDTStart + 5*8
	// ZeroPageStart is struct boot_params, passed to the kernel in RSI.
	ZeroPageStart = 0x7000
	// PVHStartInfoStart is struct hvm_start_info of the PVH boot protocol,
	// passed to the image in EBX (Xen's xen/include/public/arch-x86/hvm/
	// start_info.h). A boot uses the zero page or the PVH structures,
	// never both, so they share its page: the start info (56 bytes), the
	// module list (one 32-byte hvm_modlist_entry: the initramfs) at
	// PVHModlistStart and the memory map (24-byte hvm_memmap_table_entry
	// each, at most PVHMemmapMax) at PVHMemmapStart, which ends at 0x7c80.
	// Cloud Hypervisor keeps the same three in low memory (its
	// arch/src/x86_64/layout.rs: PVH_INFO_START, MODLIST_START,
	// MEMMAP_START); these addresses are this VMM's own.
	PVHStartInfoStart = ZeroPageStart
	PVHModlistStart   = ZeroPageStart + 0x40
	PVHMemmapStart    = ZeroPageStart + 0x80
	// PVHMemmapMax bounds the PVH memory map, as the zero page's 128 e820
	// entries bound the bzImage's.
	PVHMemmapMax = 128
	// BootStackTop is RSP and RBP at the kernel's 64-bit entry.
	BootStackTop = 0x8ff0
	// PML4Start, PDPTStart and PDStart are the boot page tables: an identity
	// map of the first 4 GiB with 2 MiB pages (4 page directories).
	PML4Start = 0x9000
	PDPTStart = 0xa000
	PDStart   = 0xb000
	// BootPDCount is the number of page directories after PDStart.
	BootPDCount = 4
	// CmdlineStart is the kernel command line (NUL terminated).
	CmdlineStart = 0x20000
	// CmdlineMax bounds the command line, NUL included; the kernel's own
	// limit (cmdline_size in the setup header) is usually lower.
	CmdlineMax = 0x10000
	// EBDAStart is where the conventional 640 KiB of low RAM ends in the
	// e820 map (the extended BIOS data area starts there on a PC).
	EBDAStart = 0x9fc00
	// ACPIStart and ACPIEnd bound the ACPI tables, RSDP first; the range is
	// marked reserved in the e820 map.
	ACPIStart = 0xe0000
	ACPIEnd   = 0x100000
	// ResetVector is the legacy BIOS reset vector F000:FFF0, inside the
	// reserved ACPI range: Linux jumps there in real mode when it reboots
	// "through the BIOS", which a hardware-reduced ACPI machine without EFI
	// does by default. A stub there writes the reset register.
	ResetVector = 0xffff0
	// KernelStart is where the protected-mode kernel is loaded (the boot
	// protocol's 0x100000 for a bzImage) and where RAM resumes in the e820
	// map.
	KernelStart = 0x100000
	// Kernel64EntryOffset is the 64-bit entry point's offset from
	// KernelStart (boot.rst: "64-bit boot protocol").
	Kernel64EntryOffset = 0x200
)

// The 32-bit hole and RAM above 4 GiB.
const (
	// LowRAMEnd is where boot RAM below 4 GiB stops; RAM beyond it is mapped
	// at HighRAMStart. 3 GiB leaves a 1 GiB hole for devices.
	LowRAMEnd = 0xc000_0000
	// HighRAMStart is 4 GiB.
	HighRAMStart = 0x1_0000_0000
	// HotplugAlign is the alignment of the hot plug RAM space's start: the
	// Linux x86_64 memory block size.
	HotplugAlign = 128 * MiB
)

// HotplugRAMStart is where the hot plug RAM space starts for a VM with
// bootRAM bytes of boot RAM: after boot RAM, aligned up to 128 MiB, and at
// or above 4 GiB.
func HotplugRAMStart(bootRAM uint64) uint64 {
	end := uint64(HighRAMStart)
	if bootRAM > LowRAMEnd {
		end = HighRAMStart + (bootRAM - LowRAMEnd)
	}
	return (end + HotplugAlign - 1) &^ (HotplugAlign - 1)
}

// The device MMIO window below 4 GiB, and what lives in it. Each register
// block has its own page.
const (
	// DeviceWindowStart and DeviceWindowEnd bound the MMIO window for
	// emulated devices; no RAM and no in-kernel device is mapped there.
	DeviceWindowStart = 0xd000_0000
	DeviceWindowEnd   = 0xfec0_0000

	// GEDStart is the ACPI Generic Event Device's event register block.
	GEDStart = DeviceWindowStart
	GEDSize  = PageSize
	// CPUHotplugStart is the ACPI CPU hot plug register block.
	CPUHotplugStart = DeviceWindowStart + 0x1000
	CPUHotplugSize  = PageSize
	// MemoryHotplugStart is the ACPI memory hot plug register block.
	MemoryHotplugStart = DeviceWindowStart + 0x2000
	MemoryHotplugSize  = PageSize
	// PCIHotplugStart is the ACPI PCI hot plug register block.
	PCIHotplugStart = DeviceWindowStart + 0x3000
	PCIHotplugSize  = PageSize
	// VirtioMMIOStart is the first virtio-mmio device; device i lives at
	// VirtioMMIOStart + i*VirtioMMIOStride.
	VirtioMMIOStart  = DeviceWindowStart + 0x10_0000
	VirtioMMIOStride = PageSize
	// VirtioMMIOMax is how many virtio-mmio devices the window holds.
	VirtioMMIOMax = 64
)

// PCI: the host bridges' configuration space (ECAM) and the windows their
// devices' BARs are placed in. Segment s (0 to PCISegmentsMax-1) has its own
// host bridge, ECAM area and windows, so that a device's placement never
// depends on how many segments there are.
const (
	// PCISegmentsMax is how many PCI segments (host bridges) a VM may have:
	// Cloud Hypervisor's limit for platform.num_pci_segments.
	PCISegmentsMax = 16
	// PCIDevicesPerBus is the device numbers of a bus: 0 is the host
	// bridge, 1-31 the devices.
	PCIDevicesPerBus = 32

	// PCIECAMStart is the ECAM (memory-mapped configuration space, the
	// MCFG table's base address) of segment 0; segment s's follows at
	// s*PCIECAMSegmentSize. QEMU's microvm puts its ECAM at the same
	// address (hw/i386/microvm.h, PCIE_ECAM_BASE); Cloud Hypervisor puts
	// its own at 0xe800_0000.
	PCIECAMStart = 0xe000_0000
	// PCIECAMSegmentSize covers bus 0 only, as in Cloud Hypervisor (its
	// PCI_MMIO_CONFIG_SIZE_PER_SEGMENT): 32 devices x 8 functions x 4 KiB.
	PCIECAMSegmentSize = 1 * MiB
	// PCIECAMSize is the ECAM of every possible segment; the e820 map
	// marks it reserved, which Linux requires before it uses an MCFG area.
	PCIECAMSize = PCISegmentsMax * PCIECAMSegmentSize

	// PCIConfigIOPort is the legacy configuration mechanism #1 of segment
	// 0: CONFIG_ADDRESS at 0xcf8, CONFIG_DATA at 0xcfc (8 ports).
	PCIConfigIOPort = 0xcf8
	PCIConfigIOSize = 8

	// PCIMMIO32Start is the first segment's window for 32-bit BARs: the
	// 32-bit hole from LowRAMEnd up to the device window, as QEMU's
	// microvm (PCIE_MMIO_BASE) and Cloud Hypervisor
	// (MEM_32BIT_DEVICES_START) start theirs at 3 GiB. Segment s's window
	// is PCIMMIO32SegmentSize long at s*PCIMMIO32SegmentSize.
	PCIMMIO32Start       = LowRAMEnd
	PCIMMIO32SegmentSize = (DeviceWindowStart - LowRAMEnd) / PCISegmentsMax

	// PCIMMIO64SegmentSize is each segment's window for 64-bit BARs,
	// above every byte of RAM the VM may have (PCIMMIO64Start): room for
	// large BARs (a virtio-fs cache, a GPU) that the 32-bit window cannot
	// hold.
	PCIMMIO64SegmentSize = 16 * GiB
	// PCIMMIO64Align aligns the 64-bit windows' start.
	PCIMMIO64Align = 1 * GiB
)

// PCIMMIO64Start is where segment 0's 64-bit BAR window starts for a VM
// with bootRAM bytes of boot RAM and hotplugSize bytes of hot plug RAM
// space: after the hot plug space, aligned up to PCIMMIO64Align, as Cloud
// Hypervisor starts its device area after RAM. Segment s's window follows
// at s*PCIMMIO64SegmentSize.
func PCIMMIO64Start(bootRAM, hotplugSize uint64) uint64 {
	end := HotplugRAMStart(bootRAM) + hotplugSize
	return (end + PCIMMIO64Align - 1) &^ (PCIMMIO64Align - 1)
}

// Fixed x86 platform addresses (Intel SDM and the 82093AA IOAPIC datasheet).
const (
	// IOAPICStart is the in-kernel IOAPIC's register window.
	IOAPICStart = 0xfec0_0000
	IOAPICSize  = PageSize
	// LAPICStart is the local APICs' register window.
	LAPICStart = 0xfee0_0000
	LAPICSize  = PageSize
	// IOAPICPins is the in-kernel IOAPIC's pin count: GSIs 0-23.
	IOAPICPins = 24
	// MSIGSIStart is the first GSI of message signalled interrupts (MSI
	// and MSI-X vectors): KVM routes each through its own GSI, after the
	// IOAPIC's.
	MSIGSIStart = IOAPICPins
	// MSIGSIEnd bounds them: KVM takes GSIs below KVM_MAX_IRQ_ROUTES.
	MSIGSIEnd = 4096
)

// KVM's private pages for Intel VMX real-mode emulation, in the hole below
// 4 GiB above every device (KVM_SET_IDENTITY_MAP_ADDR, KVM_SET_TSS_ADDR).
const (
	IdentityMapStart = 0xfffb_c000
	TSSStart         = 0xfffb_d000
)

// Legacy I/O ports.
const (
	// COM1Port is the first 8250 UART's base port (8 ports), and COM1IRQ its
	// ISA IRQ.
	COM1Port = 0x3f8
	COM1Size = 8
	COM1IRQ  = 4
	// I8042DataPort and I8042CommandPort are the keyboard controller; a
	// command 0xfe on I8042CommandPort pulses the CPU reset line.
	I8042DataPort    = 0x60
	I8042CommandPort = 0x64
	// POSTPort is the BIOS POST code port that Linux writes to as an I/O
	// delay; it is claimed by a device that ignores it.
	POSTPort = 0x80
	// ACPIPMStart is the ACPI power management block of the hardware-reduced
	// FADT: the sleep control register, the sleep status register and the
	// reset register, one byte each at the offsets below.
	ACPIPMStart       = 0x600
	ACPIPMSize        = 4
	SleepControlPort  = ACPIPMStart + 0
	SleepStatusPort   = ACPIPMStart + 1
	ResetRegisterPort = ACPIPMStart + 2
	// ResetValue is the value the FADT tells the guest to write to the reset
	// register.
	ResetValue = 0x1
)

// IRQ lines (GSIs on the in-kernel IOAPIC).
const (
	// GEDIRQ is the Generic Event Device's edge-triggered interrupt.
	GEDIRQ = 5
	// VirtioIRQStart is the first GSI for virtio-mmio devices: IOAPIC pins
	// 16-23 need no ISA legacy.
	VirtioIRQStart = 16
)
