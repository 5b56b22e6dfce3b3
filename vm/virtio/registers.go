package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
)

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
func (t *MMIO) Read(offset uint64, data []byte) {
	clear(data)
	if offset >= regConfig {
		if offset < MMIOSize && uint64(len(data)) <= MMIOSize-offset {
			t.dev.readConfig(offset-regConfig, data)
		}
		return
	}
	if len(data) != 4 || offset%4 != 0 {
		return
	}
	binary.LittleEndian.PutUint32(data, t.readReg(offset))
}

func (t *MMIO) readReg(offset uint64) uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch offset {
	case regMagic:
		return magicValue
	case regVersion:
		return mmioVersion
	case regDeviceID:
		return t.dev.deviceID()
	case regVendorID:
		return VendorID
	case regDeviceFeatures:
		switch t.devFeaturesSel {
		case 0:
			return uint32(t.offered())
		case 1:
			return uint32(t.offered() >> 32)
		}
		return 0
	case regQueueNumMax:
		if t.queueSel < uint32(len(t.qs)) {
			return MaxQueueSize
		}
		return 0
	case regQueueReady:
		if s := t.selected(); s != nil && s.ready {
			return 1
		}
		return 0
	case regInterruptStatus:
		return t.isr.Load()
	case regStatus:
		st := t.status
		if t.needsReset.Load() {
			st |= statusDeviceNeedsReset
		}
		return st
	case regSHMLenLow, regSHMLenHigh:
		return ^uint32(0) // no shared memory region: length all ones
	case regConfigGeneration:
		return 0 // the configuration never changes under the driver
	}
	return 0
}

// selected is the queue QueueSel names, or nil.
func (t *MMIO) selected() *queueSlot {
	if t.queueSel < uint32(len(t.qs)) {
		return t.qs[t.queueSel]
	}
	return nil
}

// Write implements the bus device interface: a guest write to the register
// block. Registers take 4-byte aligned 4-byte writes; other writes to them
// are ignored.
func (t *MMIO) Write(offset uint64, data []byte) {
	if offset >= regConfig {
		if offset < MMIOSize && uint64(len(data)) <= MMIOSize-offset {
			t.mu.Lock()
			if !t.closed {
				t.dev.writeConfig(offset-regConfig, data)
			}
			t.mu.Unlock()
		}
		return
	}
	if len(data) != 4 || offset%4 != 0 {
		return
	}
	v := binary.LittleEndian.Uint32(data)
	if offset == regQueueNotify {
		t.notify(v) // no lock: the hot path, as an ioeventfd would do
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		t.writeReg(offset, v)
	}
}

// writeReg handles a register write with t.mu held.
func (t *MMIO) writeReg(offset uint64, v uint32) {
	// The driver sets up features and queues before DRIVER_OK; later
	// writes to them are ignored (the spec forbids them).
	setup := t.status&statusDriverOK == 0
	switch offset {
	case regDeviceFeaturesSel:
		t.devFeaturesSel = v
	case regDriverFeaturesSel:
		t.drvFeaturesSel = v
	case regDriverFeatures:
		if t.status&statusFeaturesOK != 0 {
			return
		}
		switch t.drvFeaturesSel {
		case 0:
			t.driverFeatures = t.driverFeatures&^0xffffffff | uint64(v)
		case 1:
			t.driverFeatures = t.driverFeatures&0xffffffff | uint64(v)<<32
		}
	case regQueueSel:
		t.queueSel = v
	case regQueueNum:
		if s := t.selected(); s != nil && setup && !s.ready {
			s.cfg.size = uint16(min(v, 0xffff)) // validated when the queue goes live
		}
	case regQueueDescLow, regQueueDescHigh, regQueueDriverLow, regQueueDriverHigh, regQueueDeviceLow, regQueueDeviceHigh:
		if s := t.selected(); s != nil && setup && !s.ready {
			setHalf(queueAddr(&s.cfg, offset), offset, v)
		}
	case regQueueReady:
		if s := t.selected(); s != nil {
			t.setReady(int(t.queueSel), s, v == 1)
		}
	case regInterruptACK:
		t.isr.And(^v)
	case regStatus:
		t.setStatus(v)
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

// setReady handles a QueueReady write: a queue made ready while the device
// runs goes live at once; one made not ready stops.
func (t *MMIO) setReady(i int, s *queueSlot, ready bool) {
	if ready == s.ready {
		return
	}
	s.ready = ready
	if !t.active {
		return
	}
	if ready {
		t.startQueue(i, s)
	} else {
		stopQueue(s)
	}
}

// setStatus handles a Status write.
func (t *MMIO) setStatus(v uint32) {
	if v == 0 {
		t.reset()
		return
	}
	old := t.status
	if v&statusFeaturesOK != 0 && old&statusFeaturesOK == 0 {
		if err := t.checkFeatures(); err != nil {
			t.log.Warn("virtio: driver features refused", "err", err)
			v &^= statusFeaturesOK // the driver reads it back and gives up
		}
	}
	t.status = v &^ statusDeviceNeedsReset
	if v&statusDriverOK != 0 && old&statusDriverOK == 0 && !t.active {
		if v&statusFeaturesOK == 0 {
			t.log.Warn("virtio: DRIVER_OK without FEATURES_OK; device not started")
			return
		}
		t.activate()
	}
}

// checkFeatures validates the driver's features when it sets FEATURES_OK.
func (t *MMIO) checkFeatures() error {
	if extra := t.driverFeatures &^ t.offered(); extra != 0 {
		return fmt.Errorf("features %#x were not offered", extra)
	}
	if t.driverFeatures&featureVersion1 == 0 {
		return errors.New("VIRTIO_F_VERSION_1 not accepted: legacy drivers are not supported")
	}
	return nil
}

// activate starts the device, then its ready queues (DRIVER_OK): the
// device is ready for process calls before any queue is live.
func (t *MMIO) activate() {
	t.active = true
	t.dev.activate(t)
	for i, s := range t.qs {
		if s.ready {
			t.startQueue(i, s)
		}
	}
}

// startQueue makes queue i live and processes whatever the driver queued
// before: a notification sent while the queue was not live was dropped.
func (t *MMIO) startQueue(i int, s *queueSlot) {
	if err := s.cfg.validate(t.cfg.Memory); err != nil {
		t.log.Error("virtio: queue setup refused; the driver must reset the device", "queue", i, "err", err)
		t.needsReset.Store(true)
		t.interrupt(interruptConfigChange)
		return
	}
	q := newVring(s.cfg, t.cfg.Memory, t.driverFeatures&featureIndirectDesc != 0, t.log.With("queue", i))
	q.eventIdx = t.driverFeatures&featureEventIdx != 0
	s.ring.Store(q)
	t.notify(uint32(i))
}

// stopQueue takes a queue out of service and waits until its worker (or
// the device's goroutine) no longer uses it.
func stopQueue(s *queueSlot) {
	s.run.Lock()
	s.ring.Store(nil)
	s.run.Unlock()
}

// reset returns the device to its initial state (a Status write of 0, or
// Close). After it returns nothing touches guest memory.
func (t *MMIO) reset() {
	for _, s := range t.qs {
		stopQueue(s)
	}
	if t.active {
		t.dev.deactivate()
	}
	t.active = false
	t.status = 0
	t.devFeaturesSel, t.drvFeaturesSel, t.driverFeatures, t.queueSel = 0, 0, 0, 0
	for _, s := range t.qs {
		s.cfg, s.ready = ringConfig{}, false
	}
	t.isr.Store(0)
	t.needsReset.Store(false)
}
