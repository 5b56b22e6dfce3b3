package pci

import (
	"encoding/binary"
	"sync"
)

// ConfigIO is configuration mechanism #1 (PCI Local Bus 3.0, 3.2.2.3.2)
// of segment 0: a guest writes CONFIG_ADDRESS (a dword at port 0xcf8:
// enable bit 31, bus 23-16, device 15-11, function 10-8, register 7-2) and
// then reads or writes CONFIG_DATA (ports 0xcfc-0xcff, any size within the
// dword). Linux checks that the mechanism exists (CONFIG_ADDRESS reads
// back what it wrote) before it uses the ECAM, and uses it for segment
// 0's first 256 bytes. It is a bus device of ConfigIOSize ports.
type ConfigIO struct {
	s *Segment

	mu   sync.Mutex
	addr uint32
}

// ConfigIOSize is the ports of the mechanism: CONFIG_ADDRESS, CONFIG_DATA.
const ConfigIOSize = 8

// Bits of CONFIG_ADDRESS.
const (
	configEnable = 1 << 31
	// configAddrMask keeps what a guest may write: the enable bit, bus,
	// device, function and dword register number.
	configAddrMask = configEnable | 0x00ff_fffc
	configDataPort = 4
)

// NewConfigIO returns the ports of segment s, which must be segment 0.
func NewConfigIO(s *Segment) *ConfigIO { return &ConfigIO{s: s} }

// Read implements the bus device interface. CONFIG_ADDRESS reads as a
// dword only; anything else there reads as all ones (so a guest probing
// for mechanism #2 finds none).
func (c *ConfigIO) Read(offset uint64, data []byte) {
	if offset < configDataPort {
		if offset == 0 && len(data) == 4 {
			c.mu.Lock()
			binary.LittleEndian.PutUint32(data, c.addr)
			c.mu.Unlock()
			return
		}
		for i := range data {
			data[i] = 0xff
		}
		return
	}
	c.data(offset-configDataPort, data, false)
}

// Write implements the bus device interface.
func (c *ConfigIO) Write(offset uint64, data []byte) {
	if offset < configDataPort {
		if offset == 0 && len(data) == 4 {
			c.mu.Lock()
			c.addr = binary.LittleEndian.Uint32(data) & configAddrMask
			c.mu.Unlock()
		}
		return
	}
	c.data(offset-configDataPort, data, true)
}

// data is an access to CONFIG_DATA at byte off of its dword.
func (c *ConfigIO) data(off uint64, data []byte, write bool) {
	c.mu.Lock()
	addr := c.addr
	c.mu.Unlock()
	bus := addr >> 16 & 0xff
	if addr&configEnable == 0 || bus != 0 || off+uint64(len(data)) > 4 {
		if !write {
			for i := range data {
				data[i] = 0xff
			}
		}
		return
	}
	dev, fn := int(addr>>11&0x1f), int(addr>>8&7)
	c.s.config(dev, fn, uint64(addr&0xfc)+off, data, write)
}
