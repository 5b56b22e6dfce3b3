package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// virtio-blk (virtio 1.2, 5.2 "Block Device").
const (
	// blockDeviceID is the virtio device ID of a block device.
	blockDeviceID = 2
	// SectorSize is virtio-blk's unit of addresses and capacity.
	SectorSize = 512

	// Feature bits.
	blkFSegMax  = 1 << 2
	blkFRO      = 1 << 5
	blkFBlkSize = 1 << 6
	blkFFlush   = 1 << 9
	blkFMQ      = 1 << 12

	// Request types.
	blkTIn    = 0
	blkTOut   = 1
	blkTFlush = 4
	blkTGetID = 8

	// Request status.
	blkSOK     = 0
	blkSIOErr  = 1
	blkSUnsupp = 2

	// blkHeaderSize is the request header: type u32, reserved u32,
	// sector u64.
	blkHeaderSize = 16
	// blkIDSize is the length of a GET_ID answer (VIRTIO_BLK_ID_BYTES).
	blkIDSize = 20

	// Configuration space offsets (struct virtio_blk_config).
	blkCfgCapacity  = 0
	blkCfgSegMax    = 12
	blkCfgBlkSize   = 20
	blkCfgNumQueues = 34
	// blkConfigSize covers struct virtio_blk_config up to
	// write_zeroes_may_unmap; fields not offered read as zero.
	blkConfigSize = 60
)

// blkSegMax is the most data segments per request the device accepts: the
// queue size minus the header and the status descriptors, as the spec
// bounds a chain by the queue size.
const blkSegMax = MaxQueueSize - 2

// MaxBlockQueues bounds a disk's request queues.
const MaxBlockQueues = 64

// BlockConfig describes a virtio-blk device.
type BlockConfig struct {
	// Path is the raw image: a regular file or a block device.
	Path string
	// Readonly opens it read-only; the guest's writes fail.
	Readonly bool
	// NumQueues is how many request queues the guest may use, 1 to
	// MaxBlockQueues (VIRTIO_BLK_F_MQ when more than one); 0 means 1.
	// Each has its worker, so requests on different queues run in
	// parallel.
	NumQueues int
	// Direct opens the image with O_DIRECT: the guest's data goes through
	// an aligned buffer per queue, bypassing the host's page cache.
	Direct bool
}

// Block is a virtio-blk device backed by a raw image: a regular file or a
// block device. Requests run on the queue's worker goroutine with
// pread/pwrite; a guest flush is an fdatasync of the image.
type Block struct {
	// queueOnly: only writeback (VIRTIO_BLK_F_CONFIG_WCE, not offered)
	// would make the configuration writable.
	queueOnly
	path     string
	readonly bool
	queues   int
	file     *os.File
	sectors  uint64
	config   [blkConfigSize]byte
	id       [blkIDSize]byte
	workers  []blockWorker // per queue
	// direct is the O_DIRECT mapping the workers' bounce buffers are
	// cut from, nil without direct.
	direct []byte
	// ioErrors counts the requests the host failed (IOERR to the guest),
	// by blockOp.
	ioErrors [numOps]atomic.Uint64
}

// blockWorker is what one request queue's worker reuses between requests.
type blockWorker struct {
	scratch [][]byte
	// bounce is the aligned buffer its O_DIRECT I/O goes through, nil
	// without direct.
	bounce []byte
	// err is the host's error behind the last request that failed, for
	// process to log, and op what failed.
	err error
	op  blockOp
}

// blockOp is what a failed request did on the image.
type blockOp int

const (
	opRead blockOp = iota
	opWrite
	opFlush
	numOps
)

// maxLoggedIOErrors bounds the log lines failing I/O on the image (a
// truncated file, a full disk) causes, for reads, writes and flushes
// each; later failures are counted.
const maxLoggedIOErrors = 8

// NewBlock opens the raw image at path, read-only when readonly is set,
// as a disk with one request queue (OpenBlock).
func NewBlock(path string, readonly bool) (*Block, error) {
	return OpenBlock(BlockConfig{Path: path, Readonly: readonly})
}

// OpenBlock opens the disk cfg describes. A missing or unreadable image
// is an error that names the path; so is an image smaller than one
// sector. The capacity is the image size rounded down to whole sectors.
func OpenBlock(cfg BlockConfig) (*Block, error) {
	path, readonly := cfg.Path, cfg.Readonly
	if path == "" {
		return nil, errors.New("disk: no path")
	}
	if cfg.NumQueues == 0 {
		cfg.NumQueues = 1
	}
	if cfg.NumQueues < 0 || cfg.NumQueues > MaxBlockQueues {
		return nil, fmt.Errorf("disk %s: num_queues=%d: want 1 to %d", path, cfg.NumQueues, MaxBlockQueues)
	}
	flags := os.O_RDWR
	if readonly {
		flags = os.O_RDONLY
	}
	if cfg.Direct {
		flags |= unix.O_DIRECT
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // "no such file or directory", "permission denied"
		}
		hint := ""
		if !readonly && errors.Is(err, fs.ErrPermission) {
			hint = " (readonly=on opens it read-only)"
		}
		if cfg.Direct && errors.Is(err, unix.EINVAL) {
			hint = " (the file system does not take O_DIRECT: direct=off)"
		}
		return nil, fmt.Errorf("disk %s: %w%s", path, err, hint)
	}
	b := &Block{path: path, readonly: readonly, queues: cfg.NumQueues, file: f, workers: make([]blockWorker, cfg.NumQueues)}
	if cfg.Direct {
		if b.direct, err = unix.Mmap(-1, 0, directBounceSize*cfg.NumQueues, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS); err != nil {
			f.Close()
			return nil, fmt.Errorf("disk %s: O_DIRECT buffer: %w", path, err)
		}
		for q := range b.workers {
			b.workers[q].bounce = b.direct[q*directBounceSize : (q+1)*directBounceSize]
		}
	}
	if err := b.probe(); err != nil {
		b.Close()
		return nil, fmt.Errorf("disk %s: %w", path, err)
	}
	return b, nil
}

// directBounceSize is the O_DIRECT buffer: page aligned (mmap), as large
// as the biggest request Linux sends by default (max_sectors_kb 1280 is
// rounded down to it; bigger requests go through in pieces).
const directBounceSize = 1 << 20

// probe checks the image and fills the configuration space and the serial.
func (b *Block) probe() error {
	st, err := b.file.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() && st.Mode()&fs.ModeDevice == 0 {
		return fmt.Errorf("not a regular file or a block device (%s)", st.Mode().Type())
	}
	size, err := b.file.Seek(0, io.SeekEnd) // a block device's size too
	if err != nil {
		return fmt.Errorf("size: %w", err)
	}
	if size < SectorSize {
		return fmt.Errorf("image of %d bytes: smaller than one %d-byte sector", size, SectorSize)
	}
	b.sectors = uint64(size) / SectorSize
	binary.LittleEndian.PutUint64(b.config[blkCfgCapacity:], b.sectors)
	binary.LittleEndian.PutUint32(b.config[blkCfgSegMax:], blkSegMax)
	binary.LittleEndian.PutUint32(b.config[blkCfgBlkSize:], SectorSize)
	binary.LittleEndian.PutUint16(b.config[blkCfgNumQueues:], uint16(b.queues))
	copy(b.id[:], filepath.Base(b.path)) // /sys/block/vdX/serial
	return nil
}

// Kind implements Device.
func (b *Block) Kind() string { return "virtio-blk" }

// Path is the image's path.
func (b *Block) Path() string { return b.path }

// NumQueues is the disk's request queues.
func (b *Block) NumQueues() int { return b.queues }

// Readonly reports whether the guest may not write.
func (b *Block) Readonly() bool { return b.readonly }

// Sectors is the capacity in 512-byte sectors.
func (b *Block) Sectors() uint64 { return b.sectors }

// Close closes the image.
func (b *Block) Close() error {
	if b.direct != nil {
		_ = unix.Munmap(b.direct)
		b.direct = nil
	}
	return closeFile(b.file, "disk "+b.path)
}

// Direct reports whether the image is opened with O_DIRECT.
func (b *Block) Direct() bool { return b.direct != nil }

func (b *Block) deviceID() uint32 { return blockDeviceID }

func (b *Block) features() uint64 {
	f := uint64(blkFSegMax | blkFBlkSize | blkFFlush)
	if b.readonly {
		f |= blkFRO
	}
	if b.queues > 1 {
		f |= blkFMQ
	}
	return f
}

func (b *Block) numQueues() int { return b.queues }

func (b *Block) configSize() int { return blkConfigSize }

func (b *Block) readConfig(offset uint64, data []byte) {
	if offset < blkConfigSize {
		copy(data, b.config[offset:])
	}
}

// process serves every available request of queue i.
func (b *Block) process(i int, q *vring) {
	var c chain
	w := &b.workers[i]
	for q.next(&c) {
		q.push(c.head, b.serve(&c, w))
		if w.err != nil {
			if n := b.ioErrors[w.op].Add(1); n <= maxLoggedIOErrors {
				q.log.Warn("virtio-blk: I/O on the image failed; the guest gets an I/O error", "path", b.path, "err", w.err, "failures", n)
			}
			w.err = nil
		}
	}
}

// IOErrors is how many requests failed on the host's side (the image
// could not be read, written or synced) and got an I/O error.
func (b *Block) IOErrors() uint64 {
	var n uint64
	for i := range b.ioErrors {
		n += b.ioErrors[i].Load()
	}
	return n
}

// serve runs one request and returns the bytes written to its writable
// buffers, the status byte included. A request is header (readable), data
// (readable for OUT, writable for IN and GET_ID), status byte (writable).
func (b *Block) serve(c *chain, w *blockWorker) uint32 {
	scratch := &w.scratch
	if c.wlen == 0 {
		return 0 // nowhere to put a status: the driver broke the protocol
	}
	statusBuf := c.writable[len(c.writable)-1]
	status := &statusBuf[len(statusBuf)-1]
	dataIn := c.wlen - 1 // writable bytes before the status
	var hdr [blkHeaderSize]byte
	if gather(hdr[:], c.readable, 0) < blkHeaderSize {
		*status = blkSIOErr
		return 1
	}
	typ := binary.LittleEndian.Uint32(hdr[0:])
	sector := binary.LittleEndian.Uint64(hdr[8:])
	switch typ {
	case blkTIn:
		if !b.inRange(sector, dataIn) {
			*status = blkSIOErr
			return 1
		}
		*scratch = subrange((*scratch)[:0], c.writable, 0, dataIn)
		*status = b.io(w, *scratch, sector, false)
		return uint32(min(dataIn+1, 1<<32-1))
	case blkTOut:
		dataOut := c.rlen - blkHeaderSize
		if b.readonly || !b.inRange(sector, dataOut) {
			*status = blkSIOErr
			return 1
		}
		*scratch = subrange((*scratch)[:0], c.readable, blkHeaderSize, dataOut)
		*status = b.io(w, *scratch, sector, true)
		return 1
	case blkTFlush:
		*status = b.flush(w)
		return 1
	case blkTGetID:
		*scratch = subrange((*scratch)[:0], c.writable, 0, min(dataIn, blkIDSize))
		n := scatter(*scratch, b.id[:])
		*status = blkSOK
		return uint32(n) + 1
	}
	*status = blkSUnsupp
	return 1
}

// inRange checks that n bytes from sector are whole sectors inside the
// image.
func (b *Block) inRange(sector, n uint64) bool {
	return n%SectorSize == 0 && sector <= b.sectors && n/SectorSize <= b.sectors-sector
}

// io reads (write false) or writes the image at sector through bufs and
// returns the request status.
func (b *Block) io(w *blockWorker, bufs [][]byte, sector uint64, write bool) byte {
	if w.bounce != nil {
		return b.directIO(w, bufs, sector, write)
	}
	off := int64(sector * SectorSize)
	for _, s := range bufs {
		var err error
		if write {
			_, err = b.file.WriteAt(s, off)
		} else {
			_, err = b.file.ReadAt(s, off)
		}
		if err != nil {
			// EOF included: the image shrank under the guest.
			w.err, w.op = fmt.Errorf("%s at byte %d: %w", rw(write), off, err), opOf(write)
			return blkSIOErr
		}
		off += int64(len(s))
	}
	return blkSOK
}

// directIO is io through the aligned bounce buffer, in pieces of its size.
func (b *Block) directIO(w *blockWorker, bufs [][]byte, sector uint64, write bool) byte {
	bounce := w.bounce
	var total uint64
	for _, s := range bufs {
		total += uint64(len(s))
	}
	off := int64(sector * SectorSize)
	for done := uint64(0); done < total; {
		n := min(total-done, uint64(len(bounce)))
		chunk := bounce[:n]
		var err error
		if write {
			gather(chunk, bufs, done)
			_, err = b.file.WriteAt(chunk, off)
		} else if _, err = b.file.ReadAt(chunk, off); err == nil {
			var part [][]byte
			scatter(subrange(part, bufs, done, n), chunk)
		}
		if err != nil {
			w.err, w.op = fmt.Errorf("%s at byte %d: %w", rw(write), off, err), opOf(write)
			return blkSIOErr
		}
		done += n
		off += int64(n)
	}
	return blkSOK
}

// flush makes every completed write durable (fdatasync).
func (b *Block) flush(w *blockWorker) byte {
	rc, err := b.file.SyscallConn()
	if err != nil {
		w.err, w.op = fmt.Errorf("flush: %w", err), opFlush
		return blkSIOErr
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fdatasync(int(fd)) }); err != nil || serr != nil {
		w.err, w.op = fmt.Errorf("flush: %w", errors.Join(err, serr)), opFlush
		return blkSIOErr
	}
	return blkSOK
}

// opOf is a transfer's blockOp.
func opOf(write bool) blockOp {
	if write {
		return opWrite
	}
	return opRead
}

// rw names a transfer's direction.
func rw(write bool) string {
	if write {
		return "write"
	}
	return "read"
}
