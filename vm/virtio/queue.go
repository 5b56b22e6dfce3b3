package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
)

// Split virtqueue layout (virtio 1.2, 2.7 "Split Virtqueues").
const (
	// descSize is one descriptor: addr u64, len u32, flags u16, next u16.
	descSize = 16
	// Descriptor flags.
	descFNext     = 1
	descFWrite    = 2
	descFIndirect = 4
	// availFNoInterrupt in the available ring's flags asks the device not
	// to interrupt when it uses a buffer (a hint).
	availFNoInterrupt = 1
	// Alignments the driver must respect (2.7 "Virtqueue Alignment").
	descAlign  = 16
	availAlign = 2
	usedAlign  = 4
	// usedElemSize is one used ring element: id u32, len u32.
	usedElemSize = 8
)

// MaxQueueSize is a queue's default largest size (QueueNumMax, and
// virtio-pci's queue_size at reset): the most descriptors a driver may
// give one queue, unless the transport was configured otherwise.
const MaxQueueSize = 256

// MaxQueueSizeLimit is the largest queue size a transport may be
// configured with: the split virtqueue's limit (virtio 1.2, 2.7).
const MaxQueueSizeLimit = 32768

// maxChain bounds the descriptors of one chain, indirect ones included, and
// an indirect table's length. The spec bounds a chain by the queue size;
// an indirect table may be longer in practice (Linux sizes it by the
// request's segments), so a generous fixed bound keeps the work per chain
// finite without refusing any real driver.
const maxChain = 1024

// maxLoggedBadChains bounds the log lines a misbehaving driver can cause
// per queue.
const maxLoggedBadChains = 8

// errBadChain marks a malformed descriptor chain whose head is a valid
// index: the device gives it back unused and carries on.
var errBadChain = errors.New("bad descriptor chain")

// ringConfig is a queue as the driver set it up through the transport.
type ringConfig struct {
	size              uint16
	desc, avail, used uint64
}

// validate checks the configuration against the spec and against guest
// RAM: size a power of two within max, each ring aligned and backed by
// RAM.
func (c ringConfig) validate(mem Memory, max uint16) error {
	if c.size == 0 || c.size > max || c.size&(c.size-1) != 0 {
		return fmt.Errorf("queue size %d: want a power of two up to %d", c.size, max)
	}
	n := uint64(c.size)
	for _, r := range []struct {
		name       string
		addr, size uint64
		align      uint64
	}{
		{"descriptor table", c.desc, descSize * n, descAlign},
		{"available ring", c.avail, 6 + 2*n, availAlign},
		{"used ring", c.used, 6 + usedElemSize*n, usedAlign},
	} {
		if r.addr%r.align != 0 {
			return fmt.Errorf("%s at %#x: not %d-byte aligned", r.name, r.addr, r.align)
		}
		if _, err := guestSlices(mem, nil, r.addr, r.size); err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
	}
	return nil
}

// vring is the device side of a live split virtqueue. It is not safe for
// concurrent use: the transport serialises everything that touches one
// queue.
type vring struct {
	ringConfig
	mem      Memory
	indirect bool // VIRTIO_F_INDIRECT_DESC was negotiated
	eventIdx bool // VIRTIO_F_EVENT_IDX was negotiated
	log      *slog.Logger

	nextAvail uint16 // the next available ring entry to consume
	nextUsed  uint16 // the used index the device publishes next
	pushed    bool   // buffers were used since the last interrupt decision
	// With eventIdx: the used index at the last interrupt decision, and
	// whether there was one.
	decidedUsed  uint16
	decidedValid bool
	badChains    int   // malformed chains seen, for rate-limited logs
	err          error // set when the queue is unusable until reset
}

// chain is one descriptor chain resolved to host memory: the buffers the
// device reads (driver to device) and those it writes (device to driver),
// each in chain order.
type chain struct {
	head     uint16
	readable [][]byte
	writable [][]byte
	rlen     uint64 // total bytes in readable
	wlen     uint64 // total bytes in writable
	descs    int    // descriptors walked, for the length bound
}

func (c *chain) reset(head uint16) {
	c.head = head
	c.readable = c.readable[:0]
	c.writable = c.writable[:0]
	c.rlen, c.wlen, c.descs = 0, 0, 0
}

// desc is one descriptor as read from guest memory.
type desc struct {
	addr  uint64
	len   uint32
	flags uint16
	next  uint16
}

func newVring(cfg ringConfig, mem Memory, indirect bool, log *slog.Logger) *vring {
	return &vring{ringConfig: cfg, mem: mem, indirect: indirect, log: log}
}

// slice returns n bytes of guest memory at gpa. Ring fields are naturally
// aligned and never cross a page, so never cross a RAM region.
func (q *vring) slice(gpa, n uint64) ([]byte, error) {
	return q.mem.Slice(gpa, n)
}

// availWord returns the 4-byte-aligned word holding the available ring's
// idx and where idx sits in it (shift 16 or 0). The ring is only 2-byte
// aligned: at a 4-byte boundary the word is flags|idx<<16, otherwise idx
// starts a word.
func (q *vring) availWord(field uint64) ([]byte, uint, error) {
	addr := q.avail + field
	if addr%4 == 0 {
		b, err := q.slice(addr, 4)
		return b, 0, err
	}
	b, err := q.slice(addr-2, 4)
	return b, 16, err
}

// availIdx reads the driver's available index.
func (q *vring) availIdx() (uint16, error) {
	b, shift, err := q.availWord(2)
	if err != nil {
		return 0, fmt.Errorf("available ring idx: %w", err)
	}
	return uint16(load32(b) >> shift), nil
}

// usedEvent reads the driver's used_event, the last field of the
// available ring (VIRTIO_F_EVENT_IDX).
func (q *vring) usedEvent() (uint16, error) {
	b, shift, err := q.availWord(4 + 2*uint64(q.size))
	if err != nil {
		return 0, fmt.Errorf("available ring used_event: %w", err)
	}
	return uint16(load32(b) >> shift), nil
}

// setAvailEvent writes the device's avail_event, the last field of the
// used ring (VIRTIO_F_EVENT_IDX), as a full barrier, so that a read of the
// available index after it sees any buffer the driver added before it read
// avail_event. The field starts a 4-byte-aligned word (the used ring is);
// the word's other half lies past the ring and is kept as it is.
func (q *vring) setAvailEvent(v uint16) error {
	b, err := q.availEventWord()
	if err != nil {
		return err
	}
	storeLow16(b, v)
	return nil
}

// availEventWord returns the 4-byte word the device's avail_event starts
// (its low half), right after the used ring's elements.
func (q *vring) availEventWord() ([]byte, error) {
	b, err := q.slice(q.used+4+usedElemSize*uint64(q.size), 4)
	if err != nil {
		return nil, fmt.Errorf("used ring avail_event: %w", err)
	}
	return b, nil
}

// debugState gives the ring's indexes: the driver's available index and
// used_event, the device's next entry, used index and avail_event.
func (q *vring) debugState() string {
	avail, _ := q.availIdx()
	usedEvent, _ := q.usedEvent()
	var availEvent uint16
	if b, err := q.availEventWord(); err == nil {
		availEvent = uint16(load32(b))
	}
	return fmt.Sprintf("avail=%d next=%d used=%d used_event=%d avail_event=%d event_idx=%v err=%v",
		avail, q.nextAvail, q.nextUsed, usedEvent, availEvent, q.eventIdx, q.err)
}

// needEvent is the spec's vring_need_event: whether moving an index from
// old to new crossed event, the index the other side asked to hear about.
func needEvent(event, newIdx, oldIdx uint16) bool {
	return newIdx-event-1 < newIdx-oldIdx
}

// availFlags reads the driver's available ring flags.
func (q *vring) availFlags() (uint16, error) {
	b, shift, err := q.availWord(0)
	if err != nil {
		return 0, fmt.Errorf("available ring flags: %w", err)
	}
	return uint16(load32(b) >> shift), nil
}

// next pops the next available chain into c. It returns false when the
// queue is empty or unusable (q.err). A malformed chain with a valid head
// goes back to the driver unused and is skipped; anything worse (an index
// running ahead of the ring, a head out of range, rings outside RAM) makes
// the queue unusable until the driver resets the device.
func (q *vring) next(c *chain) bool {
	for q.err == nil {
		ok, err := q.pop(c)
		if err == nil {
			return ok
		}
		if !errors.Is(err, errBadChain) {
			q.err = err
			return false
		}
		if q.badChains < maxLoggedBadChains {
			q.log.Warn("virtio: malformed descriptor chain returned unused", "err", err)
		}
		q.badChains++
		q.push(c.head, 0)
	}
	return false
}

// pop consumes one available entry and walks its chain into c. It reports
// false with no error when no entry is available.
func (q *vring) pop(c *chain) (bool, error) {
	idx, err := q.availIdx()
	if err != nil {
		return false, err
	}
	pending := idx - q.nextAvail
	if pending == 0 && q.eventIdx {
		// Drained: ask for a notification at the next entry, then look
		// again, as a driver that added one meanwhile read the old
		// avail_event and may not notify. While the device is busy,
		// avail_event stays behind and the driver does not notify.
		if err := q.setAvailEvent(q.nextAvail); err != nil {
			return false, err
		}
		if idx, err = q.availIdx(); err != nil {
			return false, err
		}
		pending = idx - q.nextAvail
	}
	if pending == 0 {
		return false, nil
	}
	if pending > q.size {
		return false, fmt.Errorf("available idx %d is %d entries ahead of the device (queue size %d)", idx, pending, q.size)
	}
	b, err := q.slice(q.avail+4+2*uint64(q.nextAvail%q.size), 2)
	if err != nil {
		return false, fmt.Errorf("available ring entry: %w", err)
	}
	head := binary.LittleEndian.Uint16(b)
	if head >= q.size {
		return false, fmt.Errorf("available ring entry %d: descriptor %d is outside the queue of %d", q.nextAvail, head, q.size)
	}
	q.nextAvail++
	return true, q.walk(head, c)
}

// unpop gives back the chain the last pop consumed, for a device that
// cannot use it now (a receive buffer too small for a packet).
func (q *vring) unpop() {
	q.nextAvail--
}

// readDesc reads descriptor i of the table at table.
func (q *vring) readDesc(table uint64, i uint32) (desc, error) {
	b, err := q.slice(table+uint64(i)*descSize, descSize)
	if err != nil {
		return desc{}, err
	}
	return desc{
		addr:  binary.LittleEndian.Uint64(b[0:]),
		len:   binary.LittleEndian.Uint32(b[8:]),
		flags: binary.LittleEndian.Uint16(b[12:]),
		next:  binary.LittleEndian.Uint16(b[14:]),
	}, nil
}

// walk follows the chain starting at head (a valid index) and resolves its
// buffers into c. Every step is bounded: at most size descriptors in the
// descriptor table, at most maxChain in one indirect table or in the whole
// chain, so a looping chain ends in an error.
func (q *vring) walk(head uint16, c *chain) error {
	c.reset(head)
	table, tableLen := q.desc, uint32(q.size)
	i := uint32(head)
	budget := uint32(q.size) // descriptors left to visit in this table
	indirect := false
	for {
		if budget == 0 {
			return fmt.Errorf("%w: head %d: longer than its table (a loop?)", errBadChain, head)
		}
		budget--
		if c.descs++; c.descs > maxChain {
			return fmt.Errorf("%w: head %d: more than %d descriptors", errBadChain, head, maxChain)
		}
		if i >= tableLen {
			return fmt.Errorf("%w: head %d: next descriptor %d outside a table of %d", errBadChain, head, i, tableLen)
		}
		d, err := q.readDesc(table, i)
		if err != nil {
			return fmt.Errorf("%w: head %d: descriptor %d: %w", errBadChain, head, i, err)
		}
		if d.flags&descFIndirect != 0 {
			switch {
			case !q.indirect:
				return fmt.Errorf("%w: head %d: indirect descriptor, but VIRTIO_F_INDIRECT_DESC was not negotiated", errBadChain, head)
			case indirect:
				return fmt.Errorf("%w: head %d: indirect descriptor inside an indirect table", errBadChain, head)
			case d.flags&descFNext != 0:
				return fmt.Errorf("%w: head %d: indirect descriptor with NEXT set", errBadChain, head)
			case d.len == 0 || d.len%descSize != 0 || d.len/descSize > maxChain:
				return fmt.Errorf("%w: head %d: indirect table of %d bytes", errBadChain, head, d.len)
			case d.addr%descAlign != 0:
				return fmt.Errorf("%w: head %d: indirect table at %#x not %d-byte aligned", errBadChain, head, d.addr, descAlign)
			}
			table, tableLen, i = d.addr, d.len/descSize, 0
			budget, indirect = tableLen, true
			continue
		}
		if err := c.add(q.mem, d); err != nil {
			return fmt.Errorf("%w: head %d: descriptor %d: %w", errBadChain, head, i, err)
		}
		if d.flags&descFNext == 0 {
			return nil
		}
		i = uint32(d.next)
	}
}

// add resolves one buffer descriptor into c.
func (c *chain) add(mem Memory, d desc) error {
	if d.len == 0 {
		return nil
	}
	var err error
	if d.flags&descFWrite != 0 {
		c.writable, err = guestSlices(mem, c.writable, d.addr, uint64(d.len))
		c.wlen += uint64(d.len)
		return err
	}
	if len(c.writable) > 0 {
		return errors.New("device-readable buffer after a device-writable one")
	}
	c.readable, err = guestSlices(mem, c.readable, d.addr, uint64(d.len))
	c.rlen += uint64(d.len)
	return err
}

// push returns the chain at head to the driver with written bytes of its
// writable buffers filled, publishing the used index. A failure makes the
// queue unusable (q.err).
func (q *vring) push(head uint16, written uint32) {
	q.stage(head, written)
	q.publish()
}

// stage writes the used ring's next element, the chain at head with
// written bytes filled, without publishing it: the driver sees it with the
// next publish, together with every element staged before. A failure makes
// the queue unusable (q.err).
func (q *vring) stage(head uint16, written uint32) {
	if q.err != nil {
		return
	}
	b, err := q.slice(q.used+4+usedElemSize*uint64(q.nextUsed%q.size), usedElemSize)
	if err != nil {
		q.err = fmt.Errorf("used ring entry: %w", err)
		return
	}
	binary.LittleEndian.PutUint32(b[0:], uint32(head))
	binary.LittleEndian.PutUint32(b[4:], written)
	q.nextUsed++
}

// publish stores the used index past every staged element.
func (q *vring) publish() {
	if q.err != nil {
		return
	}
	w, err := q.slice(q.used, 4)
	if err != nil {
		q.err = fmt.Errorf("used ring idx: %w", err)
		return
	}
	// flags (0: the driver may always notify) and idx in one store, after
	// the element: the driver reads idx, then the element.
	store32(w, uint32(q.nextUsed)<<16)
	q.pushed = true
}

// needsInterrupt reports whether the driver wants an interrupt for the
// buffers pushed since the last call, and forgets them. It reads the
// driver's flags after the used index was published (store32 is a full
// barrier), so a driver that re-enables interrupts and then checks the used
// ring never misses both.
//
// With VIRTIO_F_EVENT_IDX it interrupts only when the used index moved
// past the driver's used_event since the last decision (the first
// decision always interrupts).
func (q *vring) needsInterrupt() bool {
	if !q.pushed {
		return false
	}
	q.pushed = false
	if q.eventIdx {
		old, valid := q.decidedUsed, q.decidedValid
		q.decidedUsed, q.decidedValid = q.nextUsed, true
		ev, err := q.usedEvent()
		return err != nil || !valid || needEvent(ev, q.nextUsed, old)
	}
	flags, err := q.availFlags()
	if err != nil {
		return true
	}
	return flags&availFNoInterrupt == 0
}

// Helpers over a chain's buffers as one byte stream.

// gather copies bytes of bufs from offset off into p and returns how many
// it copied (fewer when bufs end first).
func gather(p []byte, bufs [][]byte, off uint64) int {
	n := 0
	for _, b := range bufs {
		if n == len(p) {
			break
		}
		if off >= uint64(len(b)) {
			off -= uint64(len(b))
			continue
		}
		n += copy(p[n:], b[off:])
		off = 0
	}
	return n
}

// scatter copies p into bufs from their start and returns how many bytes
// it copied (fewer when bufs end first).
func scatter(bufs [][]byte, p []byte) int {
	n := 0
	for _, b := range bufs {
		if n == len(p) {
			break
		}
		n += copy(b, p[n:])
	}
	return n
}

// subrange returns the parts of bufs covering bytes [off, off+n) of their
// concatenation, appended to dst; it stops early when bufs end first.
func subrange(dst [][]byte, bufs [][]byte, off, n uint64) [][]byte {
	for _, b := range bufs {
		if n == 0 {
			break
		}
		if off >= uint64(len(b)) {
			off -= uint64(len(b))
			continue
		}
		s := b[off:]
		if uint64(len(s)) > n {
			s = s[:n]
		}
		dst = append(dst, s)
		n -= uint64(len(s))
		off = 0
	}
	return dst
}
