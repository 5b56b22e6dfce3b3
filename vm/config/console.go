package config

// ConsoleMode says where a console's bytes go: Cloud Hypervisor's
// ConsoleOutputMode.
type ConsoleMode string

// Console modes, spelled as Cloud Hypervisor's.
const (
	// ModeOff: no device.
	ModeOff ConsoleMode = "Off"
	// ModePty: a pseudo-terminal, whose path is written into the file field.
	ModePty ConsoleMode = "Pty"
	// ModeTty: the VMM's standard output, and its standard input.
	ModeTty ConsoleMode = "Tty"
	// ModeFile: output appended to the file field's path.
	ModeFile ConsoleMode = "File"
	// ModeSocket: a unix socket the VMM listens on (the socket field).
	ModeSocket ConsoleMode = "Socket"
	// ModeNull: the device exists, its output is discarded.
	ModeNull ConsoleMode = "Null"
)

// Values lists the modes Cloud Hypervisor knows.
func (ConsoleMode) Values() []string { return []string{"Off", "Pty", "Tty", "File", "Socket", "Null"} }

// Serial is the legacy serial port (COM1, the guest's ttyS0): Cloud
// Hypervisor's SerialConfig, with the iommu field its v51 ConsoleConfig had.
type Serial struct {
	Mode   ConsoleMode `json:"mode" default:"Tty"`
	File   string      `json:"file,omitempty"`
	Socket string      `json:"socket,omitempty"`
	IOMMU  bool        `json:"iommu"`
}

// Console is the virtio console (the guest's hvc0): Cloud Hypervisor's
// ConsoleConfig.
type Console struct {
	Mode   ConsoleMode `json:"mode" default:"Off"`
	File   string      `json:"file,omitempty"`
	Socket string      `json:"socket,omitempty"`
	PCIDevice
}

// DebugConsole is Cloud Hypervisor's DebugConsoleConfig: a port the guest
// writes bytes to (0xe9, as Bochs' and QEMU's debug console).
type DebugConsole struct {
	Mode   ConsoleMode `json:"mode" default:"Off"`
	File   string      `json:"file,omitempty"`
	IOBase uint16      `json:"iobase,omitempty" default:"233"`
}
