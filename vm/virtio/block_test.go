package virtio

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// blkFeatures is what a Linux virtio_blk driver accepts from this device.
const blkFeatures = featureVersion1 | featureIndirectDesc | blkFSegMax | blkFBlkSize | blkFFlush | blkFRO

// newTestImage writes a raw image of sectors sectors, sector i filled with
// byte i, and returns its path.
func newTestImage(t *testing.T, sectors int) string {
	t.Helper()
	img := make([]byte, sectors*SectorSize)
	for i := range img {
		img[i] = byte(i / SectorSize)
	}
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, img, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// blkRequest is one request the fake driver sends.
type blkRequest struct {
	typ    uint32
	sector uint64
	data   []byte // OUT payload
	in     uint32 // IN/GET_ID data length
}

// blkDo sends req as header, data and status buffers, waits for it, and
// returns the status, the used length and the IN data.
func blkDo(t *testing.T, d *fakeDriver, req blkRequest) (status byte, used uint32, in []byte) {
	t.Helper()
	hdr := d.buf(blkHeaderSize, false)
	h := d.data(hdr)
	binary.LittleEndian.PutUint32(h[0:], req.typ)
	binary.LittleEndian.PutUint64(h[8:], req.sector)
	bufs := []fakeBuf{hdr}
	var inBuf fakeBuf
	if len(req.data) > 0 {
		out := d.buf(uint32(len(req.data)), false)
		copy(d.data(out), req.data)
		bufs = append(bufs, out)
	}
	if req.in > 0 {
		inBuf = d.buf(req.in, true)
		bufs = append(bufs, inBuf)
	}
	st := d.buf(1, true)
	d.data(st)[0] = 0xff
	bufs = append(bufs, st)
	head := d.submit(0, bufs...)
	id, used := d.waitUsed(0)
	if id != uint32(head) {
		t.Fatalf("used id %d, want head %d", id, head)
	}
	if req.in > 0 {
		in = d.data(inBuf)
	}
	return d.data(st)[0], used, in
}

func startBlock(t *testing.T, path string, readonly bool) (*fakeDriver, *Block) {
	t.Helper()
	b, err := NewBlock(path, readonly)
	if err != nil {
		t.Fatal(err)
	}
	d := newFakeDriver(t, b)
	d.start(blkFeatures, 1, 16)
	return d, b
}

func TestBlockConfigAndFeaturesWithFakeDriver(t *testing.T) {
	for _, ro := range []bool{false, true} {
		d, _ := startBlock(t, newTestImage(t, 8), ro)
		if got := d.r32(regDeviceID); got != blockDeviceID {
			t.Errorf("device id %d", got)
		}
		f := d.deviceFeatures()
		if f&blkFFlush == 0 || f&blkFSegMax == 0 || f&blkFBlkSize == 0 {
			t.Errorf("features %#x lack FLUSH, SEG_MAX or BLK_SIZE", f)
		}
		if got := f&blkFRO != 0; got != ro {
			t.Errorf("readonly=%v: VIRTIO_BLK_F_RO offered = %v", ro, got)
		}
		var capacity [8]byte
		d.dev.Read(regConfig+blkCfgCapacity, capacity[:4])
		d.dev.Read(regConfig+blkCfgCapacity+4, capacity[4:])
		if got := binary.LittleEndian.Uint64(capacity[:]); got != 8 {
			t.Errorf("capacity %d sectors, want 8", got)
		}
		if got := d.r32(regConfig + blkCfgBlkSize); got != SectorSize {
			t.Errorf("blk_size %d", got)
		}
		if got := d.r32(regConfig + blkCfgSegMax); got != blkSegMax {
			t.Errorf("seg_max %d", got)
		}
		var one [1]byte
		d.dev.Read(regConfig+blkCfgCapacity, one[:])
		if one[0] != 8 {
			t.Errorf("1-byte config read = %d", one[0])
		}
	}
}

func TestBlockReadWriteFlushWithFakeDriver(t *testing.T) {
	path := newTestImage(t, 8)
	d, _ := startBlock(t, path, false)

	st, used, in := blkDo(t, d, blkRequest{typ: blkTIn, sector: 3, in: 2 * SectorSize})
	if st != blkSOK || used != 2*SectorSize+1 {
		t.Fatalf("read: status %d used %d", st, used)
	}
	if !bytes.Equal(in, append(bytes.Repeat([]byte{3}, SectorSize), bytes.Repeat([]byte{4}, SectorSize)...)) {
		t.Fatalf("read sectors 3-4: wrong data")
	}

	payload := bytes.Repeat([]byte("guest wrote this"), SectorSize/16)
	if st, used, _ := blkDo(t, d, blkRequest{typ: blkTOut, sector: 6, data: payload}); st != blkSOK || used != 1 {
		t.Fatalf("write: status %d used %d", st, used)
	}
	if st, _, _ := blkDo(t, d, blkRequest{typ: blkTFlush}); st != blkSOK {
		t.Fatalf("flush: status %d", st)
	}
	img, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(img[6*SectorSize:7*SectorSize], payload) {
		t.Fatal("the write did not reach the image")
	}
	if img[7*SectorSize] != 7 || img[5*SectorSize+SectorSize-1] != 5 {
		t.Fatal("the write spilled over its sector")
	}
	if _, _, in := blkDo(t, d, blkRequest{typ: blkTIn, sector: 6, in: SectorSize}); !bytes.Equal(in, payload) {
		t.Fatal("reading back the write: wrong data")
	}
}

func TestBlockRefusesBadRequestsWithFakeDriver(t *testing.T) {
	d, _ := startBlock(t, newTestImage(t, 8), false)
	for _, c := range []struct {
		name string
		req  blkRequest
		want byte
	}{
		{"read past the end", blkRequest{typ: blkTIn, sector: 7, in: 2 * SectorSize}, blkSIOErr},
		{"read at a huge sector", blkRequest{typ: blkTIn, sector: 1 << 62, in: SectorSize}, blkSIOErr},
		{"read of a partial sector", blkRequest{typ: blkTIn, sector: 0, in: 100}, blkSIOErr},
		{"write past the end", blkRequest{typ: blkTOut, sector: 8, data: make([]byte, SectorSize)}, blkSIOErr},
		{"unknown type", blkRequest{typ: 99, in: 8}, blkSUnsupp},
		{"discard", blkRequest{typ: 11, data: make([]byte, 16)}, blkSUnsupp},
	} {
		if st, _, _ := blkDo(t, d, c.req); st != c.want {
			t.Errorf("%s: status %d, want %d", c.name, st, c.want)
		}
	}
}

func TestBlockGetIDWithFakeDriver(t *testing.T) {
	d, _ := startBlock(t, newTestImage(t, 1), false)
	st, used, in := blkDo(t, d, blkRequest{typ: blkTGetID, in: blkIDSize})
	if st != blkSOK || used != blkIDSize+1 {
		t.Fatalf("status %d used %d", st, used)
	}
	if got := strings.TrimRight(string(in), "\x00"); got != "disk.img" {
		t.Fatalf("id %q, want disk.img", got)
	}
}

func TestBlockReadonlyRefusesWritesWithFakeDriver(t *testing.T) {
	path := newTestImage(t, 4)
	d, _ := startBlock(t, path, true)
	if st, _, _ := blkDo(t, d, blkRequest{typ: blkTOut, sector: 1, data: bytes.Repeat([]byte{0xee}, SectorSize)}); st != blkSIOErr {
		t.Fatalf("write to a read-only disk: status %d, want IOERR", st)
	}
	img, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if img[SectorSize] != 1 {
		t.Fatal("a read-only disk was written")
	}
	if st, _, in := blkDo(t, d, blkRequest{typ: blkTIn, sector: 2, in: SectorSize}); st != blkSOK || in[0] != 2 {
		t.Fatalf("read from a read-only disk: status %d", st)
	}
	if st, _, _ := blkDo(t, d, blkRequest{typ: blkTFlush}); st != blkSOK {
		t.Fatalf("flush of a read-only disk: status %d", st)
	}
}

func TestBlockIndirectAndScatteredBuffersWithFakeDriver(t *testing.T) {
	d, _ := startBlock(t, newTestImage(t, 8), false)
	q := d.queues[0]
	// Header, two 512-byte pieces split unevenly (100 + 924), status: in
	// an indirect table.
	hdr := d.buf(blkHeaderSize, false)
	binary.LittleEndian.PutUint32(d.data(hdr)[0:], blkTIn)
	binary.LittleEndian.PutUint64(d.data(hdr)[8:], 2)
	a, b, st := d.buf(100, true), d.buf(2*SectorSize-100, true), d.buf(1, true)
	table := d.alloc(4*descSize, descAlign)
	for i, x := range []fakeBuf{hdr, a, b, st} {
		flags := uint16(descFNext)
		if x.write {
			flags |= descFWrite
		}
		if i == 3 {
			flags &^= descFNext
		}
		d.writeDesc(table, uint16(i), x.gpa, x.len, flags, uint16(i+1))
	}
	head := q.nextDesc
	q.nextDesc++
	d.writeDesc(q.desc, head, table, 4*descSize, descFIndirect, 0)
	d.offer(q, head)
	d.w32(regQueueNotify, 0)
	if id, used := d.waitUsed(0); id != uint32(head) || used != 2*SectorSize+1 {
		t.Fatalf("used id %d len %d", id, used)
	}
	got := append(append([]byte(nil), d.data(a)...), d.data(b)...)
	want := append(bytes.Repeat([]byte{2}, SectorSize), bytes.Repeat([]byte{3}, SectorSize)...)
	if d.data(st)[0] != blkSOK || !bytes.Equal(got, want) {
		t.Fatalf("indirect read: status %d, data wrong", d.data(st)[0])
	}
}

func TestNewBlockErrorsNameThePath(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.img")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path string
		readonly   bool
		want       string
	}{
		{"missing", filepath.Join(dir, "nope.img"), false, "no such file"},
		{"missing read-only", filepath.Join(dir, "nope.img"), true, "no such file"},
		{"directory", dir, true, "not a regular file"},
		{"directory read-write", dir, false, "is a directory"},
		{"empty", empty, false, "smaller than one"},
		{"no path", "", false, "no path"},
	} {
		_, err := NewBlock(c.path, c.readonly)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "disk") || !strings.Contains(err.Error(), c.path) {
			t.Errorf("%s: error %q lacks %q or the path", c.name, err, c.want)
		}
	}
}

func TestNewBlockRoundsCapacityDown(t *testing.T) {
	p := filepath.Join(t.TempDir(), "odd.img")
	if err := os.WriteFile(p, make([]byte, 3*SectorSize+100), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := NewBlock(p, false)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Sectors() != 3 {
		t.Fatalf("capacity %d sectors, want 3", b.Sectors())
	}
}

// TestBlockImageTruncatedUnderTheGuestGivesIOErrorsWithFakeDriver: reads
// past the end of an image cut short while the disk runs fail with an I/O
// error to the guest, counted and logged, even after writes failed more
// often than are logged; reads before it still work.
func TestBlockImageTruncatedUnderTheGuestGivesIOErrorsWithFakeDriver(t *testing.T) {
	path := newTestImage(t, 8)
	d, b := startBlock(t, path, false)
	for range maxLoggedIOErrors + 2 {
		b.ioErrors[opWrite].Add(1) // as from a full disk
	}
	if err := os.Truncate(path, 2*SectorSize); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := blkDo(t, d, blkRequest{typ: blkTIn, sector: 5, in: SectorSize}); st != blkSIOErr {
		t.Errorf("read past the cut: status %d, want IOERR", st)
	}
	if st, _, in := blkDo(t, d, blkRequest{typ: blkTIn, sector: 1, in: SectorSize}); st != blkSOK || in[0] != 1 {
		t.Errorf("read before the cut: status %d", st)
	}
	if n := b.ioErrors[opRead].Load(); n != 1 {
		t.Errorf("%d read errors counted, want 1", n)
	}
	if n := b.IOErrors(); n != maxLoggedIOErrors+3 {
		t.Errorf("%d I/O errors counted in all, want %d", n, maxLoggedIOErrors+3)
	}
}
