package devices

import "sync"

// i8042 keyboard controller ports, as offsets of the two one-port devices
// the owner maps (data at 0x60, status/command at 0x64).
const (
	i8042StatusOBF    = 0x01 // output buffer full: a byte waits at the data port
	i8042StatusSystem = 0x04 // system flag: self test passed

	i8042CmdReadCTR    = 0x20
	i8042CmdWriteCTR   = 0x60
	i8042CmdDisableAux = 0xa7
	i8042CmdEnableAux  = 0xa8
	i8042CmdTestAux    = 0xa9
	i8042CmdSelfTest   = 0xaa
	i8042CmdTestKbd    = 0xab
	i8042CmdDisableKbd = 0xad
	i8042CmdEnableKbd  = 0xae
	// Commands 0xf0-0xff pulse the output port lines whose bits are clear in
	// the command's low nibble; bit 0 is the CPU reset line, so 0xfe resets.
	i8042CmdPulseBase = 0xf0

	i8042SelfTestOK  = 0x55
	i8042PortTestOK  = 0x00
	i8042DefaultCTR  = 0x47 // IRQs on, system flag, translation
	i8042ResetSource = "i8042"
)

// I8042 is enough of a PS/2 controller for firmware-less guests: its status
// register, a few controller commands and the reset line. It has no
// keyboard or mouse behind it. Map it twice, at the data port (Data) and
// the command port (Command).
type I8042 struct {
	power Power

	mu       sync.Mutex
	ctr      uint8
	out      []byte
	writeCTR bool
}

// NewI8042 returns a controller whose reset line calls power.Reset.
func NewI8042(power Power) *I8042 {
	return &I8042{power: power, ctr: i8042DefaultCTR}
}

// Data is the data port's device (0x60).
func (k *I8042) Data() DeviceFuncs {
	return DeviceFuncs{ReadFunc: k.readData, WriteFunc: k.writeData}
}

// Command is the status and command port's device (0x64).
func (k *I8042) Command() DeviceFuncs {
	return DeviceFuncs{ReadFunc: k.readStatus, WriteFunc: k.writeCommand}
}

func (k *I8042) readData(_ uint64, data []byte) {
	clear(data)
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.out) > 0 && len(data) > 0 {
		data[0] = k.out[0]
		k.out = k.out[1:]
	}
}

func (k *I8042) writeData(_ uint64, data []byte) {
	if len(data) == 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.writeCTR {
		k.ctr = data[0]
		k.writeCTR = false
	}
	// Bytes for the keyboard go nowhere: there is none.
}

func (k *I8042) readStatus(_ uint64, data []byte) {
	clear(data)
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(data) == 0 {
		return
	}
	data[0] = i8042StatusSystem
	if len(k.out) > 0 {
		data[0] |= i8042StatusOBF
	}
}

func (k *I8042) writeCommand(_ uint64, data []byte) {
	if len(data) == 0 {
		return
	}
	cmd := data[0]
	if cmd >= i8042CmdPulseBase && cmd&1 == 0 {
		k.power.Reset(i8042ResetSource)
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	switch cmd {
	case i8042CmdReadCTR:
		k.reply(k.ctr)
	case i8042CmdWriteCTR:
		k.writeCTR = true
	case i8042CmdSelfTest:
		k.reply(i8042SelfTestOK)
	case i8042CmdTestKbd, i8042CmdTestAux:
		k.reply(i8042PortTestOK)
	case i8042CmdDisableAux, i8042CmdEnableAux, i8042CmdDisableKbd, i8042CmdEnableKbd:
	}
}

// reply queues a byte for the data port, keeping the queue short so that a
// guest sending commands and never reading cannot grow it.
func (k *I8042) reply(b byte) {
	if len(k.out) < 16 {
		k.out = append(k.out, b)
	}
}

// DeviceFuncs adapts a pair of functions to bus.Device.
type DeviceFuncs struct {
	ReadFunc  func(offset uint64, data []byte)
	WriteFunc func(offset uint64, data []byte)
}

// Read calls ReadFunc.
func (d DeviceFuncs) Read(offset uint64, data []byte) { d.ReadFunc(offset, data) }

// Write calls WriteFunc.
func (d DeviceFuncs) Write(offset uint64, data []byte) { d.WriteFunc(offset, data) }
