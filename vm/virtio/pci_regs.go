package virtio

import (
	"encoding/binary"

	"github.com/vmmdev/vmm/vm/pci"
)

// struct virtio_pci_common_cfg (virtio 1.2, 4.1.4.3): the fields' offsets
// in the common structure. A driver accesses each with its own width (the
// 64-bit ones as two 32-bit halves, low first).
const (
	commonDeviceFeatureSelect = 0x00 // le32 RW
	commonDeviceFeature       = 0x04 // le32 R
	commonDriverFeatureSelect = 0x08 // le32 RW
	commonDriverFeature       = 0x0c // le32 RW
	commonConfigMSIXVector    = 0x10 // le16 RW
	commonNumQueues           = 0x12 // le16 R
	commonDeviceStatus        = 0x14 // u8 RW
	commonConfigGeneration    = 0x15 // u8 R
	commonQueueSelect         = 0x16 // le16 RW
	commonQueueSize           = 0x18 // le16 RW
	commonQueueMSIXVector     = 0x1a // le16 RW
	commonQueueEnable         = 0x1c // le16 RW
	commonQueueNotifyOff      = 0x1e // le16 R
	commonQueueDesc           = 0x20 // le64 RW
	commonQueueDriver         = 0x28 // le64 RW
	commonQueueDevice         = 0x30 // le64 RW
	commonQueueNotifyData     = 0x38 // le16 R: VIRTIO_F_NOTIF_CONFIG_DATA (not offered)
	commonQueueReset          = 0x3a // le16 RW: VIRTIO_F_RING_RESET (not offered)
)

// commonField is the field holding common structure byte off: its offset
// and width, or ok false past the structure.
func commonField(off uint64) (start, width uint64, ok bool) {
	fields := []struct{ start, width uint64 }{
		{commonDeviceFeatureSelect, 4}, {commonDeviceFeature, 4}, {commonDriverFeatureSelect, 4},
		{commonDriverFeature, 4}, {commonConfigMSIXVector, 2}, {commonNumQueues, 2},
		{commonDeviceStatus, 1}, {commonConfigGeneration, 1}, {commonQueueSelect, 2},
		{commonQueueSize, 2}, {commonQueueMSIXVector, 2}, {commonQueueEnable, 2},
		{commonQueueNotifyOff, 2}, {commonQueueDesc, 8}, {commonQueueDriver, 8},
		{commonQueueDevice, 8}, {commonQueueNotifyData, 2}, {commonQueueReset, 2},
	}
	for _, f := range fields {
		if off >= f.start && off < f.start+f.width {
			return f.start, f.width, true
		}
	}
	return 0, 0, false
}

// pciNoRegion is what pciRegion answers for an access that crosses regions.
const pciNoRegion = ^uint64(0)

// pciRegion splits a BAR offset into its structure's region and the offset
// within it; the region is pciNoRegion when an access of n bytes would
// cross the region's end.
func pciRegion(offset uint64, n int) (region, off uint64) {
	region, off = offset/pciRegionSize*pciRegionSize, offset%pciRegionSize
	if off+uint64(n) > pciRegionSize {
		return pciNoRegion, off
	}
	return region, off
}

// inConfig reports whether n bytes at off lie within the device's
// configuration structure.
func (p *PCI) inConfig(off uint64, n int) bool {
	size := uint64(p.dev.configSize())
	return off < size && uint64(n) <= size-off
}

// ReadBAR implements pci.BARHandler: the guest reads the common, ISR,
// device or notify structure (the MSI-X table and PBA are the function's).
// Anything else reads as zero.
func (p *PCI) ReadBAR(_ int, offset uint64, data []byte) {
	clear(data)
	switch region, off := pciRegion(offset, len(data)); region {
	case pciCommonOffset:
		p.readCommon(off, data)
	case pciISROffset:
		if off == 0 && len(data) > 0 {
			data[0] = byte(p.isr.Swap(0)) // reading acknowledges
		}
	case pciDeviceOffset:
		if p.inConfig(off, len(data)) {
			p.dev.readConfig(off, data)
		}
	}
}

// WriteBAR implements pci.BARHandler.
func (p *PCI) WriteBAR(_ int, offset uint64, data []byte) {
	switch region, off := pciRegion(offset, len(data)); region {
	case pciCommonOffset:
		p.writeCommon(off, data)
	case pciDeviceOffset:
		if p.inConfig(off, len(data)) {
			p.mu.Lock()
			if !p.closed {
				p.dev.writeConfig(off, data)
			}
			p.mu.Unlock()
		}
	case pciNotifyOffset:
		// The queue is the address's: what is written (the queue index)
		// does not matter. No lock: the hot path, as an ioeventfd.
		p.notify(uint32(off / PCINotifyMultiplier))
	}
}

// readCommon reads common structure bytes: any part of one field.
func (p *PCI) readCommon(off uint64, data []byte) {
	start, width, ok := commonField(off)
	if !ok || off+uint64(len(data)) > start+width {
		return
	}
	p.mu.Lock()
	v := p.commonValue(start)
	p.mu.Unlock()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	copy(data, b[off-start:])
}

// writeCommon writes common structure bytes: a whole field, or part of one
// (merged with its current value, as the halves of a 64-bit field are).
func (p *PCI) writeCommon(off uint64, data []byte) {
	start, width, ok := commonField(off)
	if !ok || off+uint64(len(data)) > start+width {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], p.commonValue(start))
	copy(b[off-start:], data)
	p.setCommon(start, binary.LittleEndian.Uint64(b[:]))
}

// commonValue is a field's value. Called with p.mu held.
func (p *PCI) commonValue(field uint64) uint64 {
	s := p.selected()
	switch field {
	case commonDeviceFeatureSelect:
		return uint64(p.devFeaturesSel)
	case commonDeviceFeature:
		return uint64(p.deviceFeatures())
	case commonDriverFeatureSelect:
		return uint64(p.drvFeaturesSel)
	case commonDriverFeature:
		if p.drvFeaturesSel < 2 {
			return p.driverFeatures >> (32 * p.drvFeaturesSel) & 0xffffffff
		}
	case commonConfigMSIXVector:
		return uint64(p.configVector.Load())
	case commonNumQueues:
		return uint64(len(p.qs))
	case commonDeviceStatus:
		return uint64(p.readStatus())
	case commonConfigGeneration:
		return uint64(uint8(p.generation()))
	case commonQueueSelect:
		return uint64(p.queueSel)
	case commonQueueMSIXVector:
		if s != nil {
			return uint64(p.queueVectors[p.queueSel].Load())
		}
		return NoVector
	}
	if s == nil {
		return 0 // queue_size 0: the selected queue does not exist
	}
	switch field {
	case commonQueueSize:
		return uint64(s.cfg.size)
	case commonQueueEnable:
		if s.ready {
			return 1
		}
	case commonQueueNotifyOff:
		return uint64(p.queueSel)
	case commonQueueDesc:
		return s.cfg.desc
	case commonQueueDriver:
		return s.cfg.avail
	case commonQueueDevice:
		return s.cfg.used
	}
	return 0
}

// setCommon writes a field. Called with p.mu held.
func (p *PCI) setCommon(field, v uint64) {
	s := p.selected()
	setup := s != nil && p.inSetup() && !s.ready
	switch field {
	case commonDeviceFeatureSelect:
		p.devFeaturesSel = uint32(v)
	case commonDriverFeatureSelect:
		p.drvFeaturesSel = uint32(v)
	case commonDriverFeature:
		p.setDriverFeatures(uint32(v))
	case commonConfigMSIXVector:
		p.configVector.Store(p.vector(uint32(v)))
	case commonDeviceStatus:
		p.setStatus(uint32(v))
	case commonQueueSelect:
		p.queueSel = uint32(v)
	case commonQueueSize:
		if setup {
			s.cfg.size = uint16(v) // validated when the queue goes live
		}
	case commonQueueMSIXVector:
		if s != nil {
			p.queueVectors[p.queueSel].Store(p.vector(uint32(v)))
		}
	case commonQueueEnable:
		if s != nil {
			p.setReady(int(p.queueSel), s, v == 1)
		}
	case commonQueueDesc:
		if setup {
			s.cfg.desc = v
		}
	case commonQueueDriver:
		if setup {
			s.cfg.avail = v
		}
	case commonQueueDevice:
		if setup {
			s.cfg.used = v
		}
	}
}

// The PCI configuration access capability (4.1.4.9): the driver writes
// bar, offset and length into it, then reads or writes pci_cfg_data to
// access that much of the BAR at that offset.

// cfgAccess is the access the capability describes: ok false unless it is
// 1, 2 or 4 bytes of the BAR, aligned to its size.
func (p *PCI) cfgAccess() (offset uint64, n int, ok bool) {
	var b [pciCapLen]byte
	p.fn.ReadConfig(uint64(p.cfgAccessBase), b[:])
	bar := b[4]
	offset = uint64(binary.LittleEndian.Uint32(b[8:]))
	n = int(binary.LittleEndian.Uint32(b[12:]))
	ok = bar == pciBAR && (n == 1 || n == 2 || n == 4) && offset%uint64(n) == 0 && offset+uint64(n) <= pciBARSize
	return offset, n, ok
}

// readCfgData reads pci_cfg_data: the BAR access, through the function
// (so the MSI-X table answers too).
func (p *PCI) readCfgData(off uint64, data []byte) {
	clear(data)
	at, n, ok := p.cfgAccess()
	if !ok {
		return
	}
	var b [4]byte
	p.fn.ReadBAR(pciBAR, at, b[:n])
	copy(data, b[off:])
}

// writeCfgData writes pci_cfg_data: a write of the first length bytes
// does the BAR access.
func (p *PCI) writeCfgData(off uint64, data []byte) {
	at, n, ok := p.cfgAccess()
	if !ok || off != 0 || len(data) < n {
		return
	}
	p.fn.WriteBAR(pciBAR, at, data[:n])
}

var _ pci.BARHandler = (*PCI)(nil)
