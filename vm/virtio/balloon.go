package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
)

// virtio-balloon (virtio 1.2, 5.5 "Traditional Memory Balloon Device"):
// the host sets how many pages it wants the guest to give up (num_pages);
// the driver inflates the balloon with pages it takes from its allocator
// (their page frame numbers on the inflate queue) and deflates it again;
// with free page reporting the driver also hands the host ranges of pages
// it has free. Pages inflated or reported go back to the host at once.
const (
	// balloonDeviceID is the virtio device ID of a memory balloon.
	balloonDeviceID = 5
	// BalloonPageSize is the balloon's page: the driver counts and names
	// pages of 4 KiB whatever its own page size (VIRTIO_BALLOON_PFN_SHIFT).
	BalloonPageSize = 4096

	// balloonConfigSize is struct virtio_balloon_config: num_pages and
	// actual, then free_page_hint_cmd_id and poison_val, each le32.
	balloonConfigSize  = 16
	balloonCfgNumPages = 0
	balloonCfgActual   = 4
)

// Feature bits (virtio 1.2, 5.5.3). The device offers DEFLATE_ON_OOM and
// REPORTING when configured; never MUST_TELL_HOST (deflating needs nothing
// of the host: a page given back reads zeros until the guest writes it),
// STATS_VQ or FREE_PAGE_HINT.
const (
	balloonFDeflateOnOOM = 1 << 2
	balloonFReporting    = 1 << 5
)

// Queue indexes. A queue exists only when its feature is offered, and the
// driver numbers the queues that exist without gaps: with neither
// STATS_VQ nor FREE_PAGE_HINT offered, the reporting queue is 2.
const (
	balloonInflateQ   = 0
	balloonDeflateQ   = 1
	balloonReportingQ = 2
)

// BalloonConfig is a balloon's features and how it gives memory back.
type BalloonConfig struct {
	// Target is the balloon size, in bytes, the device asks for at start
	// (balloon.size); a multiple of BalloonPageSize (rounded down).
	Target uint64
	// DeflateOnOOM lets the guest deflate the balloon when it runs out of
	// memory (VIRTIO_BALLOON_F_DEFLATE_ON_OOM).
	DeflateOnOOM bool
	// FreePageReporting adds the reporting queue
	// (VIRTIO_BALLOON_F_REPORTING).
	FreePageReporting bool
	// ReleasePages gives guest physical [gpa, gpa+n) back to the host: the
	// pages the guest put in the balloon. Nil releases nothing.
	ReleasePages func(gpa, n uint64) error
	// ReleaseHost gives the host memory behind b, guest RAM the driver
	// reported free, back to the host. Nil releases nothing.
	ReleaseHost func(b []byte) error
	// Log gets a line per target change and per page the host could not
	// take back; nil logs through slog.Default.
	Log *slog.Logger
}

// Balloon is a virtio-balloon device.
type Balloon struct {
	queueOnly
	cfg BalloonConfig
	log *slog.Logger

	hostConfig
	// numPages is the target in pages, actual what the driver says the
	// balloon holds.
	numPages, actual uint32
	// reported counts the bytes free page reporting gave back.
	reported uint64
}

// NewBalloon makes a balloon device.
func NewBalloon(cfg BalloonConfig) (*Balloon, error) {
	b := &Balloon{cfg: cfg, log: cfg.Log}
	if b.log == nil {
		b.log = slog.Default()
	}
	n, err := balloonPages(cfg.Target)
	if err != nil {
		return nil, err
	}
	b.numPages = n
	return b, nil
}

// ErrBalloonSize is a balloon size the device cannot ask for.
var ErrBalloonSize = errors.New("virtio-balloon")

// balloonPages is size in balloon pages, rounded down.
func balloonPages(size uint64) (uint32, error) {
	n := size / BalloonPageSize
	if n > 1<<32-1 {
		return 0, fmt.Errorf("%w: %d bytes is more than the device can ask for", ErrBalloonSize, size)
	}
	return uint32(n), nil
}

// Kind implements Device.
func (b *Balloon) Kind() string { return "virtio-balloon" }

// Close implements Device: the balloon holds nothing of its own.
func (b *Balloon) Close() error { return nil }

// Actual is the balloon's size, in bytes, as the driver last reported it.
func (b *Balloon) Actual() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return uint64(b.actual) * BalloonPageSize
}

// Target is the size, in bytes, the device asks the balloon to have.
func (b *Balloon) Target() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return uint64(b.numPages) * BalloonPageSize
}

// Reported is how many bytes free page reporting has given back so far.
func (b *Balloon) Reported() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reported
}

// Resize asks the driver for a balloon of size bytes (rounded down to
// whole pages) and tells it. It returns before the driver acts: Actual
// says how far it got.
func (b *Balloon) Resize(size uint64) error {
	n, err := balloonPages(size)
	if err != nil {
		return err
	}
	if setHostField(&b.hostConfig, &b.numPages, n) {
		b.log.Info("virtio-balloon: target changed", "mib", size>>20)
	}
	return nil
}

func (b *Balloon) deviceID() uint32 { return balloonDeviceID }

func (b *Balloon) features() uint64 {
	var f uint64
	if b.cfg.DeflateOnOOM {
		f |= balloonFDeflateOnOOM
	}
	if b.cfg.FreePageReporting {
		f |= balloonFReporting
	}
	return f
}

func (b *Balloon) numQueues() int {
	if b.cfg.FreePageReporting {
		return 3
	}
	return 2
}

func (b *Balloon) configSize() int { return balloonConfigSize }

func (b *Balloon) readConfig(offset uint64, data []byte) {
	var c [balloonConfigSize]byte
	b.mu.Lock()
	binary.LittleEndian.PutUint32(c[balloonCfgNumPages:], b.numPages)
	binary.LittleEndian.PutUint32(c[balloonCfgActual:], b.actual)
	b.mu.Unlock()
	if offset < balloonConfigSize {
		copy(data, c[offset:])
	}
}

// writeConfig takes the driver's write of actual, the only field it
// writes; the others are read-only.
func (b *Balloon) writeConfig(offset uint64, data []byte) {
	if offset < balloonCfgActual || offset+uint64(len(data)) > balloonCfgActual+4 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var v [4]byte
	binary.LittleEndian.PutUint32(v[:], b.actual)
	copy(v[offset-balloonCfgActual:], data)
	b.actual = binary.LittleEndian.Uint32(v[:])
}

// process serves the inflate, deflate and reporting queues.
func (b *Balloon) process(i int, q *vring) {
	var c chain
	for q.next(&c) {
		switch i {
		case balloonInflateQ:
			b.inflate(c.readable)
		case balloonReportingQ:
			b.report(c.writable)
		}
		// Deflated pages need nothing of the host.
		q.push(c.head, 0)
	}
}

// inflate gives back the pages whose frame numbers (le32 each) fill
// bufs, contiguous ones together.
func (b *Balloon) inflate(bufs [][]byte) {
	var start, n uint64 // the run of pages being gathered
	flush := func() {
		if n > 0 {
			b.releasePages(start*BalloonPageSize, n*BalloonPageSize)
		}
		n = 0
	}
	var pfn [4]byte
	var off uint64
	for {
		if gather(pfn[:], bufs, off) < len(pfn) {
			break
		}
		off += 4
		p := uint64(binary.LittleEndian.Uint32(pfn[:]))
		if n > 0 && p == start+n {
			n++
			continue
		}
		flush()
		start, n = p, 1
	}
	flush()
}

// releasePages gives one run of inflated pages back to the host.
func (b *Balloon) releasePages(gpa, n uint64) {
	if b.cfg.ReleasePages == nil {
		return
	}
	if err := b.cfg.ReleasePages(gpa, n); err != nil {
		b.log.Warn("virtio-balloon: inflated pages not given back to the host", "gpa", fmt.Sprintf("%#x", gpa), "bytes", n, "err", err)
	}
}

// report gives back the free ranges the driver reported, one per buffer.
func (b *Balloon) report(bufs [][]byte) {
	for _, buf := range bufs {
		if b.cfg.ReleaseHost != nil {
			if err := b.cfg.ReleaseHost(buf); err != nil {
				b.log.Warn("virtio-balloon: reported pages not given back to the host", "bytes", len(buf), "err", err)
				continue
			}
		}
		b.mu.Lock()
		b.reported += uint64(len(buf))
		b.mu.Unlock()
	}
}
