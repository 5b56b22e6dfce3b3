package virtio

import "encoding/binary"

// The virtio-mmio register block, version 2 (virtio 1.2, 4.2.2 "MMIO Device
// Register Layout"). Offsets are from the block's base; registers are 32
// bits wide and little endian.
const (
	regMagic             = 0x000 // R: "virt"
	regVersion           = 0x004 // R: 2
	regDeviceID          = 0x008 // R
	regVendorID          = 0x00c // R
	regDeviceFeatures    = 0x010 // R: 32 feature bits selected by regDeviceFeaturesSel
	regDeviceFeaturesSel = 0x014 // W
	regDriverFeatures    = 0x020 // W: 32 feature bits selected by regDriverFeaturesSel
	regDriverFeaturesSel = 0x024 // W
	regQueueSel          = 0x030 // W
	regQueueNumMax       = 0x034 // R
	regQueueNum          = 0x038 // W
	regQueueReady        = 0x044 // RW
	regQueueNotify       = 0x050 // W: the queue index
	regInterruptStatus   = 0x060 // R
	regInterruptACK      = 0x064 // W
	regStatus            = 0x070 // RW
	regQueueDescLow      = 0x080 // W
	regQueueDescHigh     = 0x084 // W
	regQueueDriverLow    = 0x090 // W: the available ring
	regQueueDriverHigh   = 0x094 // W
	regQueueDeviceLow    = 0x0a0 // W: the used ring
	regQueueDeviceHigh   = 0x0a4 // W
	regSHMSel            = 0x0ac // W: shared memory region (none here)
	regSHMLenLow         = 0x0b0 // R
	regSHMLenHigh        = 0x0b4 // R
	regSHMBaseLow        = 0x0b8 // R
	regSHMBaseHigh       = 0x0bc // R
	regQueueReset        = 0x0c0 // RW: VIRTIO_F_RING_RESET only (not offered)
	regConfigGeneration  = 0x0fc // R
	regConfig            = 0x100 // device-specific configuration space
)

// Register values.
const (
	// magicValue is "virt" in little endian.
	magicValue = 0x74726976
	// mmioVersion 2 is the virtio 1.x (non-legacy) register layout.
	mmioVersion = 2
	// VendorID is what the VendorID register reads: "vmm" in ASCII, little
	// endian. Drivers do not look at it.
	VendorID = 0x006d6d76
)

// MMIOSize is the length of one device's register block and configuration
// space, as its DSDT entry declares it. The machine maps this many bytes;
// a larger slot (a page) leaves the rest unmapped.
const MMIOSize = 0x200

// QueueNotifyOffset is the QueueNotify register's offset in the block: the
// machine registers an ioeventfd at base+QueueNotifyOffset per queue.
const QueueNotifyOffset = regQueueNotify

// Device status bits (virtio 1.2, 2.1 "Device Status Field").
const (
	statusAcknowledge      = 1
	statusDriver           = 2
	statusDriverOK         = 4
	statusFeaturesOK       = 8
	statusDeviceNeedsReset = 64
	statusFailed           = 128
)

// Interrupt status bits (4.2.2: InterruptStatus).
const (
	interruptUsedBuffer   = 1 << 0
	interruptConfigChange = 1 << 1
)

// Transport feature bits (virtio 1.2, 6 "Reserved Feature Bits").
const (
	featureIndirectDesc = 1 << 28
	// featureEventIdx (VIRTIO_F_EVENT_IDX): the driver says at which used
	// index it wants the next interrupt (used_event) and the device at
	// which available index it wants the next notification
	// (avail_event), so both sides batch: a device draining a busy queue
	// is not notified for every buffer, nor the driver interrupted.
	featureEventIdx = 1 << 29
	featureVersion1 = 1 << 32
)

// Read implements the bus device interface: a guest read of the register
// block. Registers take 4-byte aligned 4-byte reads; the configuration
// space takes any size. Anything else reads as zero.
func (m *MMIO) Read(offset uint64, data []byte) {
	clear(data)
	if offset >= regConfig {
		if offset < MMIOSize && uint64(len(data)) <= MMIOSize-offset {
			m.dev.readConfig(offset-regConfig, data)
		}
		return
	}
	if len(data) != 4 || offset%4 != 0 {
		return
	}
	binary.LittleEndian.PutUint32(data, m.readReg(offset))
}

func (m *MMIO) readReg(offset uint64) uint32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch offset {
	case regMagic:
		return magicValue
	case regVersion:
		return mmioVersion
	case regDeviceID:
		return m.dev.deviceID()
	case regVendorID:
		return VendorID
	case regDeviceFeatures:
		return m.deviceFeatures()
	case regQueueNumMax:
		if m.selected() != nil {
			return uint32(m.maxQ)
		}
		return 0
	case regQueueReady:
		if s := m.selected(); s != nil && s.ready {
			return 1
		}
		return 0
	case regInterruptStatus:
		return m.isr.Load()
	case regStatus:
		return m.readStatus()
	case regSHMLenLow, regSHMLenHigh:
		return ^uint32(0) // no shared memory region: length all ones
	case regConfigGeneration:
		return m.generation()
	}
	return 0
}

// Write implements the bus device interface: a guest write to the register
// block. Registers take 4-byte aligned 4-byte writes; other writes to them
// are ignored.
func (m *MMIO) Write(offset uint64, data []byte) {
	if offset >= regConfig {
		if offset < MMIOSize && uint64(len(data)) <= MMIOSize-offset {
			m.mu.Lock()
			if !m.closed {
				m.dev.writeConfig(offset-regConfig, data)
			}
			m.mu.Unlock()
		}
		return
	}
	if len(data) != 4 || offset%4 != 0 {
		return
	}
	v := binary.LittleEndian.Uint32(data)
	if offset == regQueueNotify {
		m.notify(v) // no lock: the hot path, as an ioeventfd would do
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.writeReg(offset, v)
	}
}

// writeReg handles a register write with m.mu held.
func (m *MMIO) writeReg(offset uint64, v uint32) {
	switch offset {
	case regDeviceFeaturesSel:
		m.devFeaturesSel = v
	case regDriverFeaturesSel:
		m.drvFeaturesSel = v
	case regDriverFeatures:
		m.setDriverFeatures(v)
	case regQueueSel:
		m.queueSel = v
	case regQueueNum:
		if s := m.selected(); s != nil && m.inSetup() && !s.ready {
			s.cfg.size = uint16(min(v, 0xffff)) // validated when the queue goes live
		}
	case regQueueDescLow, regQueueDescHigh, regQueueDriverLow, regQueueDriverHigh, regQueueDeviceLow, regQueueDeviceHigh:
		if s := m.selected(); s != nil && m.inSetup() && !s.ready {
			setHalf(queueAddr(&s.cfg, offset), offset, v)
		}
	case regQueueReady:
		if s := m.selected(); s != nil {
			m.setReady(int(m.queueSel), s, v == 1)
		}
	case regInterruptACK:
		m.isr.And(^v)
	case regStatus:
		m.setStatus(v)
	}
}

// queueAddr is the ring address a Desc/Driver/Device register sets.
func queueAddr(c *ringConfig, offset uint64) *uint64 {
	switch offset {
	case regQueueDescLow, regQueueDescHigh:
		return &c.desc
	case regQueueDriverLow, regQueueDriverHigh:
		return &c.avail
	}
	return &c.used
}

// setHalf sets the low or high 32 bits of *p: the High registers sit 4
// bytes after the Low ones.
func setHalf(p *uint64, offset uint64, v uint32) {
	if offset%8 == 4 {
		*p = *p&0xffffffff | uint64(v)<<32
	} else {
		*p = *p&^0xffffffff | uint64(v)
	}
}
