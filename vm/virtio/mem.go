package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
)

// virtio-mem (virtio 1.2, 5.15 "Memory Device"): a region of guest
// physical addresses above boot RAM, plugged and unplugged by the guest's
// driver in blocks, as the device's requested_size asks.
const (
	// memDeviceID is the virtio device ID of a memory device.
	memDeviceID = 24
	// MemBlockSize is the device's block size: 2 MiB, the x86 huge page,
	// so that KVM can map plugged memory with huge pages, as Cloud
	// Hypervisor's. Linux 6.1 plugs sub-blocks of at least 4 MiB (its
	// largest buddy allocation) and needs nothing smaller.
	MemBlockSize = 2 << 20
	// MemRegionAlign is the alignment of the region's start and size: the
	// Linux x86_64 memory block (128 MiB), in which virtio_mem adds
	// memory to the guest.
	MemRegionAlign = 128 << 20

	// memConfigSize is struct virtio_mem_config: block_size u64, node_id
	// u16, 6 bytes of padding, addr, region_size, usable_region_size,
	// plugged_size and requested_size, each u64.
	memConfigSize = 56
	// memRequestSize is struct virtio_mem_req: type u16, 3 u16 of padding,
	// then addr u64, nb_blocks u16 and 3 u16 of padding.
	memRequestSize = 24
	// memResponseSize is struct virtio_mem_resp: type u16, 3 u16 of
	// padding, state u16.
	memResponseSize = 10
)

// Request types (virtio 1.2, 5.15.6.1).
const (
	memReqPlug      = 0
	memReqUnplug    = 1
	memReqUnplugAll = 2
	memReqState     = 3
)

// Response types (virtio 1.2, 5.15.6.1). The device never answers BUSY
// (2): it serves every request at once.
const (
	memRespAck   = 0
	memRespNack  = 1
	memRespError = 3
)

// Block states a STATE request answers (virtio 1.2, 5.15.6.5).
const (
	memStatePlugged   = 0
	memStateUnplugged = 1
	memStateMixed     = 2
)

// Offsets in the configuration space.
const (
	memCfgBlockSize     = 0
	memCfgAddr          = 16
	memCfgRegionSize    = 24
	memCfgUsableSize    = 32
	memCfgPluggedSize   = 40
	memCfgRequestedSize = 48
)

// MemConfig places a virtio-mem device's region and says how the host
// gives back unplugged memory.
type MemConfig struct {
	// Addr and Size are the region's guest physical start and length,
	// both multiples of MemRegionAlign (and so of the block size).
	Addr, Size uint64
	// Requested is the requested_size the device starts with: the memory
	// the driver plugs when it loads (memory.hotplugged_size).
	Requested uint64
	// Release gives the host memory behind [Addr+offset, Addr+offset+size)
	// back to the host (madvise); the region stays mapped, and reads
	// there afterwards see zeros. Nil releases nothing.
	Release func(offset, size uint64) error
	// Log gets a line per resize and per refused request; nil logs
	// through slog.Default.
	Log *slog.Logger
}

// ErrMemResize is a requested size the device cannot take.
var ErrMemResize = errors.New("virtio-mem")

// Mem is a virtio-mem device. The host sets the size it wants the guest to
// have plugged (Resize, the config change interrupt tells the driver); the
// driver plugs and unplugs blocks to reach it; the device tracks which
// blocks are plugged and gives unplugged ones back to the host.
type Mem struct {
	queueOnly
	cfg MemConfig
	log *slog.Logger

	hostConfig // its mu guards the state below; process and Resize run apart
	blocks     blockMap
	// requested is requested_size, plugged plugged_size.
	requested, plugged uint64
}

// NewMem makes a virtio-mem device for the region cfg names.
func NewMem(cfg MemConfig) (*Mem, error) {
	switch {
	case cfg.Size == 0 || cfg.Size%MemRegionAlign != 0 || cfg.Addr%MemRegionAlign != 0:
		return nil, fmt.Errorf("%w: region %#x+%#x: start and size must be non-zero multiples of %d MiB", ErrMemResize, cfg.Addr, cfg.Size, MemRegionAlign>>20)
	case cfg.Addr+cfg.Size < cfg.Addr:
		return nil, fmt.Errorf("%w: region %#x+%#x wraps", ErrMemResize, cfg.Addr, cfg.Size)
	}
	m := &Mem{cfg: cfg, log: cfg.Log, blocks: newBlockMap(cfg.Size / MemBlockSize)}
	if m.log == nil {
		m.log = slog.Default()
	}
	if err := m.checkSize(cfg.Requested); err != nil {
		return nil, err
	}
	m.requested = cfg.Requested
	return m, nil
}

// Kind implements Device.
func (m *Mem) Kind() string { return "virtio-mem" }

// Close implements Device: guest RAM is the machine's to unmap.
func (m *Mem) Close() error { return nil }

// Region is the device's region of guest physical addresses.
func (m *Mem) Region() (addr, size uint64) { return m.cfg.Addr, m.cfg.Size }

// Plugged is plugged_size: the memory the driver has plugged now.
func (m *Mem) Plugged() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.plugged
}

// Requested is requested_size: the memory the host asks the driver to
// have plugged.
func (m *Mem) Requested() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.requested
}

// checkSize checks a requested size: whole blocks within the region.
func (m *Mem) checkSize(n uint64) error {
	switch {
	case n > m.cfg.Size:
		return fmt.Errorf("%w: %d bytes is beyond the region of %d bytes", ErrMemResize, n, m.cfg.Size)
	case n%MemBlockSize != 0:
		return fmt.Errorf("%w: %d bytes is not a multiple of the block size (%d MiB)", ErrMemResize, n, MemBlockSize>>20)
	}
	return nil
}

// Resize sets requested_size to n (whole blocks, at most the region) and
// tells the driver, which plugs or unplugs blocks to reach it. It returns
// before the driver acts: Plugged says how far it got.
func (m *Mem) Resize(n uint64) error {
	if err := m.checkSize(n); err != nil {
		return err
	}
	if setHostField(&m.hostConfig, &m.requested, n) {
		m.log.Info("virtio-mem: requested size changed", "mib", n>>20)
	}
	return nil
}

func (m *Mem) deviceID() uint32 { return memDeviceID }

// features offers none of virtio-mem's: no ACPI proximity domain, and
// unplugged memory stays readable (no UNPLUGGED_INACCESSIBLE).
func (m *Mem) features() uint64 { return 0 }

func (m *Mem) numQueues() int  { return 1 }
func (m *Mem) configSize() int { return memConfigSize }

// readConfig reads struct virtio_mem_config. usable_region_size is the
// whole region, as Cloud Hypervisor's.
func (m *Mem) readConfig(offset uint64, data []byte) {
	var b [memConfigSize]byte
	m.mu.Lock()
	binary.LittleEndian.PutUint64(b[memCfgBlockSize:], MemBlockSize)
	binary.LittleEndian.PutUint64(b[memCfgAddr:], m.cfg.Addr)
	binary.LittleEndian.PutUint64(b[memCfgRegionSize:], m.cfg.Size)
	binary.LittleEndian.PutUint64(b[memCfgUsableSize:], m.cfg.Size)
	binary.LittleEndian.PutUint64(b[memCfgPluggedSize:], m.plugged)
	binary.LittleEndian.PutUint64(b[memCfgRequestedSize:], m.requested)
	m.mu.Unlock()
	if offset < memConfigSize {
		copy(data, b[offset:])
	}
}

// process answers every request on the queue. A chain without room for a
// response is given back with nothing written.
func (m *Mem) process(_ int, q *vring) {
	var c chain
	var raw [memRequestSize]byte
	for q.next(&c) {
		if c.wlen < memResponseSize {
			q.push(c.head, 0)
			continue
		}
		n := gather(raw[:], c.readable, 0)
		resp := m.handle(parseMemRequest(raw[:n]))
		q.push(c.head, uint32(scatter(c.writable, resp.bytes())))
	}
}

// memRequest is one decoded request; ok is false for a request too short
// to hold one.
type memRequest struct {
	typ      uint16
	addr     uint64
	nbBlocks uint16
	ok       bool
}

// parseMemRequest decodes struct virtio_mem_req from what the driver
// wrote.
func parseMemRequest(b []byte) memRequest {
	if len(b) < memRequestSize {
		return memRequest{}
	}
	return memRequest{
		typ:      binary.LittleEndian.Uint16(b[0:]),
		addr:     binary.LittleEndian.Uint64(b[8:]),
		nbBlocks: binary.LittleEndian.Uint16(b[16:]),
		ok:       true,
	}
}

// memResponse is struct virtio_mem_resp.
type memResponse struct {
	typ, state uint16
}

func (r memResponse) bytes() []byte {
	var b [memResponseSize]byte
	binary.LittleEndian.PutUint16(b[0:], r.typ)
	binary.LittleEndian.PutUint16(b[8:], r.state)
	return b[:]
}

// handle runs one request against the block states (virtio 1.2,
// 5.15.6.2-5.15.6.5).
func (m *Mem) handle(r memRequest) memResponse {
	if !r.ok {
		return memResponse{typ: memRespError}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch r.typ {
	case memReqPlug, memReqUnplug:
		return memResponse{typ: m.changeLocked(r.addr, r.nbBlocks, r.typ == memReqPlug)}
	case memReqUnplugAll:
		return memResponse{typ: m.unplugAllLocked()}
	case memReqState:
		first, ok := m.blockRange(r.addr, r.nbBlocks)
		if !ok {
			return memResponse{typ: memRespError}
		}
		switch m.blocks.count(first, uint64(r.nbBlocks)) {
		case uint64(r.nbBlocks):
			return memResponse{typ: memRespAck, state: memStatePlugged}
		case 0:
			return memResponse{typ: memRespAck, state: memStateUnplugged}
		}
		return memResponse{typ: memRespAck, state: memStateMixed}
	}
	return memResponse{typ: memRespError}
}

// blockRange checks that nb blocks from addr lie in the region and
// returns the first one's index.
func (m *Mem) blockRange(addr uint64, nb uint16) (uint64, bool) {
	size := uint64(nb) * MemBlockSize
	if nb == 0 || addr < m.cfg.Addr || addr%MemBlockSize != 0 {
		return 0, false
	}
	off := addr - m.cfg.Addr
	if off >= m.cfg.Size || size > m.cfg.Size-off {
		return 0, false
	}
	return off / MemBlockSize, true
}

// changeLocked plugs or unplugs nb blocks from addr: NACK for a plug
// beyond requested_size, ERROR for a range outside the region or blocks
// not all in the other state. Unplugged blocks go back to the host first;
// if that fails, nothing changes and the driver gets ERROR.
func (m *Mem) changeLocked(addr uint64, nb uint16, plug bool) uint16 {
	size := uint64(nb) * MemBlockSize
	first, ok := m.blockRange(addr, nb)
	if !ok {
		return memRespError
	}
	if plug && m.plugged+size > m.requested {
		return memRespNack
	}
	want := uint64(0) // blocks plugged now: none for a plug, all for an unplug
	if !plug {
		want = uint64(nb)
	}
	if m.blocks.count(first, uint64(nb)) != want {
		return memRespError
	}
	if !plug {
		if err := m.release(addr-m.cfg.Addr, size); err != nil {
			m.log.Error("virtio-mem: unplugged memory not given back to the host", "addr", fmt.Sprintf("%#x", addr), "mib", size>>20, "err", err)
			return memRespError
		}
		m.plugged -= size
	} else {
		m.plugged += size
	}
	m.blocks.set(first, uint64(nb), plug)
	return memRespAck
}

// unplugAllLocked unplugs every block and gives the whole region back.
func (m *Mem) unplugAllLocked() uint16 {
	if err := m.release(0, m.cfg.Size); err != nil {
		m.log.Error("virtio-mem: unplugged memory not given back to the host", "err", err)
		return memRespError
	}
	m.blocks.set(0, m.blocks.len(), false)
	m.plugged = 0
	return memRespAck
}

// release gives [offset, offset+size) of the region back to the host.
func (m *Mem) release(offset, size uint64) error {
	if m.cfg.Release == nil {
		return nil
	}
	return m.cfg.Release(offset, size)
}
