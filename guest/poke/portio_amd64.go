package poke

// Port I/O instructions (portio_amd64.s); the caller needs I/O privilege
// (iopl 3).

func outb(port uint16, v uint8)
func outw(port uint16, v uint16)
func outl(port uint16, v uint32)
func inb(port uint16) uint8
func inw(port uint16) uint16
func inl(port uint16) uint32
