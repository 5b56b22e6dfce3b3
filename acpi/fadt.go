package acpi

import "encoding/binary"

// FADTSize is the size of the revision 6 FADT.
const FADTSize = 276

// FADT flags (ACPI 6.5, Table 5.10 "Fixed ACPI Description Table Fixed
// Feature Flags").
const (
	FADTPowerButton    = 1 << 4  // PWR_BUTTON: no fixed-feature power button
	FADTSleepButton    = 1 << 5  // SLP_BUTTON: no fixed-feature sleep button
	FADTResetRegSup    = 1 << 10 // RESET_REG_SUP: the reset register works
	FADTHWReducedACPI  = 1 << 20 // HW_REDUCED_ACPI: no fixed hardware
	FADTLowPowerS0Idle = 1 << 21 // LOW_POWER_S0_IDLE_CAPABLE
)

// IA-PC boot architecture flags of the FADT (ACPI 6.5, Table 5.11).
const (
	BootArchLegacyDevices = 1 << 0 // LEGACY_DEVICES: ISA devices present
	BootArch8042          = 1 << 1 // 8042: a PS/2 controller is present
	BootArchVGANotPresent = 1 << 2 // VGA Not Present
	BootArchMSINotSupp    = 1 << 3 // MSI Not Supported
	BootArchNoCMOSRTC     = 1 << 5 // CMOS RTC Not Present
)

// FADTConfig is what a hardware-reduced FADT says about the machine. Its
// registers are one-byte registers in the I/O port space.
type FADTConfig struct {
	// DSDTAddr is the guest physical address of the DSDT (X_DSDT).
	DSDTAddr uint64
	// ResetPort is the reset register's port; the guest writes ResetValue
	// there to reset. Zero means no reset register (RESET_REG_SUP clear).
	ResetPort  uint16
	ResetValue uint8
	// SleepControlPort and SleepStatusPort are the hardware-reduced sleep
	// registers; the guest writes SLP_TYP<<2 | SLP_EN to the control
	// register to enter the state of its \_Sx object (see SleepState).
	// Zero leaves a register out.
	SleepControlPort uint16
	SleepStatusPort  uint16
	// BootArch is the IA-PC boot architecture flags (BootArch...).
	BootArch uint16
	// ExtraFlags are OR-ed into the fixed feature flags, which always hold
	// HW_REDUCED_ACPI, PWR_BUTTON and SLP_BUTTON (the power button is a
	// control-method device), and RESET_REG_SUP when ResetPort is set.
	ExtraFlags uint32
}

// appendGASIOByte appends a generic address structure (ACPI 6.5, 5.2.3.2)
// for a one-byte register at port in SystemIO, or zeros for port 0.
func appendGASIOByte(b []byte, port uint16) []byte {
	if port == 0 {
		return append(b, make([]byte, 12)...)
	}
	b = append(b, byte(SystemIO), 8, 0, 1) // space, bit width, bit offset, byte access
	return binary.LittleEndian.AppendUint64(b, uint64(port))
}

// FADT returns a revision 6.5 Fixed ACPI Description Table for a
// hardware-reduced machine: no SCI, no PM blocks, no FACS; the DSDT given
// by X_DSDT only.
func FADT(c FADTConfig) []byte {
	body := make([]byte, FADTSize-HeaderSize)
	at := func(off int) []byte { return body[off-HeaderSize:] } // offsets from the table start

	flags := uint32(FADTHWReducedACPI|FADTPowerButton|FADTSleepButton) | c.ExtraFlags
	if c.ResetPort != 0 {
		flags |= FADTResetRegSup
	}
	// FIRMWARE_CTRL (36), DSDT (40), the SCI and the PM blocks (44-108)
	// stay zero: hardware-reduced ACPI has none of them.
	binary.LittleEndian.PutUint16(at(109), c.BootArch) // IAPC_BOOT_ARCH
	binary.LittleEndian.PutUint32(at(112), flags)
	appendGASIOByte(at(116)[:0], c.ResetPort) // RESET_REG
	at(128)[0] = c.ResetValue
	at(131)[0] = FADTMinorRevision
	binary.LittleEndian.PutUint64(at(140), c.DSDTAddr) // X_DSDT
	appendGASIOByte(at(244)[:0], c.SleepControlPort)   // SLEEP_CONTROL_REG
	appendGASIOByte(at(256)[:0], c.SleepStatusPort)    // SLEEP_STATUS_REG
	// Hypervisor Vendor Identity (268) stays zero.
	return table("FACP", FADTRevision, body)
}
