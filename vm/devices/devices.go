// Package devices holds the legacy platform devices a vmm guest boots with:
// the 8250 UART, the i8042 keyboard controller (for its reset line), the
// ACPI power management registers of a hardware-reduced FADT, and a sink
// for the POST code port. Each implements bus.Device and reaches its owner
// through the small interfaces below.
package devices

// Interrupt is one edge-triggered interrupt line into the guest.
type Interrupt interface {
	// Trigger raises an edge. Errors are the owner's to log.
	Trigger() error
}

// Power is what a device calls to end or restart the machine. Both may be
// called from a vCPU thread in the middle of an exit; they must return
// promptly and must tolerate repeated calls.
type Power interface {
	// PowerOff turns the machine off; source names the device for logs.
	PowerOff(source string)
	// Reset restarts the machine; source names the device for logs.
	Reset(source string)
}

// Sink is a device that ignores writes and reads as zero: the POST code
// port 0x80 that Linux writes to as an I/O delay.
type Sink struct{}

// Read returns zeros.
func (Sink) Read(_ uint64, data []byte) {
	clear(data)
}

// Write drops the data.
func (Sink) Write(uint64, []byte) {}
