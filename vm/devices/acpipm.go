package devices

import (
	"log/slog"
	"sync/atomic"

	"github.com/vmmdev/vmm/acpi"
)

// Offsets of the registers in the ACPI power management block; the FADT
// points at them (acpi.FADTConfig's SleepControlPort, SleepStatusPort,
// ResetPort).
const (
	PMSleepControl = 0
	PMSleepStatus  = 1
	PMReset        = 2
	// PMSize is the block's length in ports.
	PMSize = 4
)

// S5SleepType is the SLP_TYP value of the soft-off state: the \_S5 object
// in the DSDT (see AML) tells the guest to write it.
const S5SleepType = 5

// ACPIPM is the hardware-reduced ACPI machine's power registers: writing
// SLP_TYP=S5 with SLP_EN to the sleep control register powers off, writing
// the reset value to the reset register resets.
type ACPIPM struct {
	power      Power
	resetValue uint8
	log        *slog.Logger
	// unsupported counts the sleep requests ignored, of which the first
	// maxLoggedSleeps are logged.
	unsupported atomic.Uint64
}

// maxLoggedSleeps bounds the log lines a guest asking again and again for
// a sleep state causes.
const maxLoggedSleeps = 8

// NewACPIPM returns the register block; resetValue is what the FADT names as
// the reset value.
func NewACPIPM(power Power, resetValue uint8, log *slog.Logger) *ACPIPM {
	if log == nil {
		log = slog.Default()
	}
	return &ACPIPM{power: power, resetValue: resetValue, log: log}
}

// Read reads as zero: no wake status is ever set.
func (p *ACPIPM) Read(_ uint64, data []byte) {
	clear(data)
}

// Write acts on a sleep control or reset register write.
func (p *ACPIPM) Write(offset uint64, data []byte) {
	if len(data) == 0 {
		return
	}
	v := data[0]
	switch offset {
	case PMSleepControl:
		if v&acpi.SleepControlEnable == 0 {
			return
		}
		typ := (v & acpi.SleepControlTypeMask) >> acpi.SleepControlTypeShift
		if typ == S5SleepType {
			p.power.PowerOff("ACPI sleep control (S5)")
			return
		}
		if n := p.unsupported.Add(1); n <= maxLoggedSleeps {
			p.log.Info("guest asked for an unsupported ACPI sleep state; ignored", "slp_typ", typ, "times", n)
		}
	case PMReset:
		if v == p.resetValue {
			p.power.Reset("ACPI reset register")
		}
	}
}

// RootAML is the \_S5 object the guest needs to know how to power off; it goes
// at the DSDT's root.
func (p *ACPIPM) RootAML() acpi.Aml {
	return acpi.SleepState(5, S5SleepType)
}
