package virtio

import (
	"encoding/binary"
	"errors"
	"reflect"
	"sync"
	"testing"
	"unsafe"
)

// balloonLog records what a balloon gave back to the host.
type balloonLog struct {
	mu    sync.Mutex
	pages [][2]uint64 // gpa, bytes
	host  []uintptr   // the reported buffers' first bytes
	sizes []int
	fail  bool
}

func (l *balloonLog) releasePages(gpa, n uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail {
		return errors.New("madvise failed")
	}
	l.pages = append(l.pages, [2]uint64{gpa, n})
	return nil
}

func (l *balloonLog) releaseHost(b []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail {
		return errors.New("madvise failed")
	}
	l.host = append(l.host, uintptr(unsafe.Pointer(&b[0])))
	l.sizes = append(l.sizes, len(b))
	return nil
}

func newTestBalloon(t *testing.T, cfg BalloonConfig, l *balloonLog) *Balloon {
	t.Helper()
	cfg.ReleasePages, cfg.ReleaseHost = l.releasePages, l.releaseHost
	b, err := NewBalloon(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pfnBuf is a readable buffer holding pfns as le32.
func pfnBuf(d *fakeDriver, pfns ...uint32) fakeBuf {
	buf := d.buf(uint32(4*len(pfns)), false)
	for i, p := range pfns {
		binary.LittleEndian.PutUint32(d.data(buf)[4*i:], p)
	}
	return buf
}

func TestBalloonOffersItsFeaturesAndQueues(t *testing.T) {
	for _, c := range []struct {
		cfg      BalloonConfig
		features uint64
		queues   int
	}{
		{BalloonConfig{}, 0, 2},
		{BalloonConfig{DeflateOnOOM: true}, balloonFDeflateOnOOM, 2},
		{BalloonConfig{FreePageReporting: true}, balloonFReporting, 3},
	} {
		b := newTestBalloon(t, c.cfg, &balloonLog{})
		if b.features() != c.features || b.numQueues() != c.queues || b.deviceID() != 5 {
			t.Errorf("%+v: features %#x, %d queues, id %d; want %#x, %d, 5", c.cfg, b.features(), b.numQueues(), b.deviceID(), c.features, c.queues)
		}
	}
}

func TestBalloonInflatesDeflatesAndReportsWithFakeDriver(t *testing.T) {
	l := &balloonLog{}
	b := newTestBalloon(t, BalloonConfig{Target: 64 << 20, FreePageReporting: true}, l)
	d := newFakeDriver(t, b)
	d.start(featureVersion1|balloonFReporting, 3, 16)
	if got := d.r32(regConfig + balloonCfgNumPages); got != 64<<20/BalloonPageSize {
		t.Fatalf("num_pages %d, want %d", got, 64<<20/BalloonPageSize)
	}

	// Pages 0x100-0x102 are one run, 0x200 and 0x1ff two more (not in
	// order), across two buffers.
	d.submit(balloonInflateQ, pfnBuf(d, 0x100, 0x101), pfnBuf(d, 0x102, 0x200, 0x1ff))
	d.waitUsed(balloonInflateQ)
	want := [][2]uint64{{0x100000, 3 * 4096}, {0x200000, 4096}, {0x1ff000, 4096}}
	if !reflect.DeepEqual(l.pages, want) {
		t.Errorf("released %#x, want %#x", l.pages, want)
	}
	d.w32(regConfig+balloonCfgActual, 5)
	if got := b.Actual(); got != 5*BalloonPageSize {
		t.Errorf("Actual %d after the driver wrote 5 pages", got)
	}

	// A deflate gives nothing back; a PFN list cut short is read as far
	// as it goes.
	d.submit(balloonDeflateQ, pfnBuf(d, 0x100))
	d.waitUsed(balloonDeflateQ)
	short := d.buf(6, false)
	binary.LittleEndian.PutUint32(d.data(short), 0x300)
	d.submit(balloonInflateQ, short)
	d.waitUsed(balloonInflateQ)
	if len(l.pages) != 4 || l.pages[3] != [2]uint64{0x300000, 4096} {
		t.Errorf("released %#x after a deflate and a short inflate", l.pages)
	}

	// A report: the driver's free ranges come back as they are.
	r1, r2 := d.buf(8192, true), d.buf(4096, true)
	d.submit(balloonReportingQ, r1, r2)
	if _, n := d.waitUsed(balloonReportingQ); n != 0 {
		t.Errorf("report used with %d bytes written, want 0", n)
	}
	wantHost := []uintptr{uintptr(unsafe.Pointer(&d.data(r1)[0])), uintptr(unsafe.Pointer(&d.data(r2)[0]))}
	if !reflect.DeepEqual(l.host, wantHost) || !reflect.DeepEqual(l.sizes, []int{8192, 4096}) || b.Reported() != 12288 {
		t.Errorf("reported %v (%v bytes, %d counted), want the buffers %v", l.host, l.sizes, b.Reported(), wantHost)
	}
}

func TestBalloonResizeRaisesConfigChangeWithFakeDriver(t *testing.T) {
	b := newTestBalloon(t, BalloonConfig{}, &balloonLog{})
	d := newFakeDriver(t, b)
	d.start(featureVersion1, 2, 16)
	if err := b.Resize(512<<20 + 100); err != nil {
		t.Fatal(err)
	}
	if d.irq.count.Load() != 1 || d.r32(regInterruptStatus)&interruptConfigChange == 0 {
		t.Fatalf("interrupts %d, status %#x: want the configuration change", d.irq.count.Load(), d.r32(regInterruptStatus))
	}
	if got := d.r32(regConfig + balloonCfgNumPages); got != 512<<20/BalloonPageSize || b.Target() != 512<<20 {
		t.Errorf("num_pages %d, Target %d, want 512 MiB in pages", got, b.Target())
	}
	if err := b.Resize(512 << 20); err != nil || d.irq.count.Load() != 1 {
		t.Errorf("same size: err %v, interrupts %d", err, d.irq.count.Load())
	}
	if err := b.Resize(1 << 50); !errors.Is(err, ErrBalloonSize) {
		t.Errorf("1 PiB: err %v, want ErrBalloonSize", err)
	}
	// num_pages is the device's: a driver write there changes nothing.
	d.w32(regConfig+balloonCfgNumPages, 7)
	if b.Target() != 512<<20 {
		t.Errorf("Target %d after the driver wrote num_pages", b.Target())
	}
}

func TestBalloonKeepsGoingWhenTheHostCannotTakePagesBack(t *testing.T) {
	l := &balloonLog{fail: true}
	b := newTestBalloon(t, BalloonConfig{FreePageReporting: true}, l)
	d := newFakeDriver(t, b)
	d.start(featureVersion1|balloonFReporting, 3, 16)
	d.submit(balloonInflateQ, pfnBuf(d, 1, 2))
	d.waitUsed(balloonInflateQ)
	d.submit(balloonReportingQ, d.buf(4096, true))
	d.waitUsed(balloonReportingQ)
	if b.Reported() != 0 {
		t.Errorf("Reported %d when the host took nothing back", b.Reported())
	}
}

// FuzzBalloon feeds arbitrary PFN lists to inflate, arbitrary report
// buffers and arbitrary configuration writes: no panic, every run given
// back is whole pages named by the list, actual is what the driver wrote
// last, and num_pages only ever what the host asked for.
func FuzzBalloon(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 1, 1, 0, 0}, uint64(4), []byte{5, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0}, uint64(0), []byte{1})
	f.Fuzz(func(t *testing.T, pfns []byte, cfgOff uint64, cfgData []byte) {
		l := &balloonLog{}
		b := newTestBalloon(t, BalloonConfig{Target: 1 << 20, FreePageReporting: true}, l)
		b.inflate([][]byte{pfns[:len(pfns)/2], pfns[len(pfns)/2:]})
		var pages uint64
		for _, r := range l.pages {
			if r[0]%BalloonPageSize != 0 || r[1] == 0 || r[1]%BalloonPageSize != 0 {
				t.Fatalf("released %#x+%#x: not whole pages", r[0], r[1])
			}
			pages += r[1] / BalloonPageSize
		}
		if pages != uint64(len(pfns)/4) {
			t.Fatalf("released %d pages from %d PFNs", pages, len(pfns)/4)
		}
		if len(pfns) > 0 {
			b.report([][]byte{pfns})
		}
		before := b.Actual()
		b.writeConfig(cfgOff, cfgData)
		if b.Target() != 1<<20 {
			t.Fatalf("a config write changed the target to %d", b.Target())
		}
		inActual := cfgOff >= balloonCfgActual && cfgOff < balloonCfgActual+4
		if !inActual && b.Actual() != before {
			t.Fatalf("a write at %d changed actual", cfgOff)
		}
		var c [balloonConfigSize + 8]byte
		b.readConfig(cfgOff%(balloonConfigSize+8), c[:])
	})
}
