package virtio

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmmdev/vmm/vm/pci"
)

func TestPCIIdentityAndCapabilitiesAsLinuxFindsThem(t *testing.T) {
	blk, err := NewBlock(newTestImage(t, 8), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		dev      Device
		deviceID uint32
		class    uint32
		queues   int
		devCfg   bool
	}{
		{"virtio-blk", blk, 0x1042, 0x010000, 1, true},
		{"virtio-rng", newTestRNG(t, nil), 0x1044, 0xff0000, 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := newFakePCIDriver(t, c.dev)
			p := d.pci
			for _, r := range []struct {
				name string
				reg  uint64
				n    int
				want uint32
			}{
				{"vendor and device", pci.RegVendorID, 4, c.deviceID<<16 | 0x1af4},
				{"revision 1: modern only", pci.RegRevision, 1, 1},
				{"class", pci.RegRevision, 4, c.class<<8 | 1},
				{"subsystem", pci.RegSubsystemVendorID, 4, 0x1100<<16 | 0x1af4},
				{"BAR 0: 64-bit memory", pci.RegBAR0, 4, uint32(testSegment.Window64.Base) | 0x4},
				{"BAR 0 high", pci.RegBAR0 + 4, 4, uint32(testSegment.Window64.Base >> 32)},
				{"no other BAR", pci.RegBAR0 + 8, 4, 0},
				{"no INTx pin", pci.RegInterruptPin, 1, 0},
				{"memory decoding on", pci.RegCommand, 2, pci.CommandMemory},
			} {
				if got := p.cfg(r.reg, r.n); got != r.want {
					t.Errorf("%s: %#x, want %#x", r.name, got, r.want)
				}
			}
			// BAR sizing as Linux does it, decoding off.
			p.setCfg(pci.RegCommand, 2, 0)
			p.setCfg(pci.RegBAR0, 4, 0xffffffff)
			p.setCfg(pci.RegBAR0+4, 4, 0xffffffff)
			size := ^(uint64(p.cfg(pci.RegBAR0, 4)&^0xf) | uint64(p.cfg(pci.RegBAR0+4, 4))<<32) + 1
			if size != pciBARSize {
				t.Errorf("BAR 0 sizes to %#x, want %#x", size, pciBARSize)
			}
			p.setCfg(pci.RegBAR0, 4, uint32(testSegment.Window64.Base))
			p.setCfg(pci.RegBAR0+4, 4, uint32(testSegment.Window64.Base>>32))
			p.setCfg(pci.RegCommand, 2, pci.CommandMemory)

			wantCaps := map[byte]uint64{pciCapCommon: pciCommonOffset, pciCapNotify: pciNotifyOffset, pciCapISR: pciISROffset, pciCapPCICfg: 0}
			if c.devCfg {
				wantCaps[pciCapDevice] = pciDeviceOffset
			}
			for typ, off := range wantCaps {
				if got, ok := p.caps[typ]; !ok || got != off {
					t.Errorf("capability type %d at BAR offset %#x (%v), want %#x", typ, got, ok, off)
				}
			}
			if len(p.caps) != len(wantCaps) {
				t.Errorf("capabilities %v, want %v", p.caps, wantCaps)
			}
			if p.mult != PCINotifyMultiplier {
				t.Errorf("notify_off_multiplier %d", p.mult)
			}
			// Linux's vp_modern_map_capability: the common structure is at
			// least 56 bytes and 4-byte aligned, the ISR one byte.
			if l := p.cfg(p.capOff[pciCapCommon]+12, 4); l < 56 {
				t.Errorf("common structure of %d bytes", l)
			}
			if l := p.cfg(p.capOff[pciCapNotify]+12, 4); l != uint32(c.queues*PCINotifyMultiplier) {
				t.Errorf("notify structure of %d bytes", l)
			}
			if l := p.cfg(p.capOff[pciCapNotify]+2, 1); l != 20 {
				t.Errorf("notify capability length %d, want 20", l)
			}
			if len(p.vectors) != c.queues+1 {
				t.Errorf("%d MSI-X vectors, want one per queue and one for configuration", len(p.vectors))
			}
			if got := p.common(commonNumQueues, 2); got != uint64(c.queues) {
				t.Errorf("num_queues %d", got)
			}
			for _, f := range []uint64{commonConfigMSIXVector, commonQueueMSIXVector} {
				if got := p.common(f, 2); got != NoVector {
					t.Errorf("vector field %#x reads %#x at reset, want NO_VECTOR", f, got)
				}
			}
			if got := p.common(commonQueueSize, 2); got != MaxQueueSize {
				t.Errorf("queue_size %d at reset, want %d", got, MaxQueueSize)
			}
			p.setCommon(commonQueueSelect, 2, 5)
			if got := p.common(commonQueueSize, 2); got != 0 {
				t.Errorf("queue_size %d for a missing queue, want 0", got)
			}
		})
	}
}

func TestPCIRNGServesRequestsOnTheQueuesVector(t *testing.T) {
	d := newFakePCIDriver(t, newTestRNG(t, []byte("entropy, over PCI")))
	d.start(featureVersion1, 1, 8)
	a := d.buf(7, true)
	d.submit(0, a)
	if _, n := d.waitUsed(0); n != 7 || string(d.data(a)) != "entropy" {
		t.Fatalf("used %d bytes: %q", n, d.data(a))
	}
	waitFor(t, "queue 0's vector (1)", func() bool { return d.pci.sent(1) == 1 })
	if d.pci.sent(0) != 0 {
		t.Error("the configuration vector fired")
	}
	if got := d.pci.vectors[1].message; got != "0xfee00000/0x31" {
		t.Errorf("vector 1 routed to %s", got)
	}
	// With MSI-X in use a driver does not read the ISR; reading it
	// acknowledges.
	if got := d.pci.rd(pciISROffset, 1); got != interruptUsedBuffer {
		t.Errorf("ISR %#x", got)
	}
	if got := d.pci.rd(pciISROffset, 1); got != 0 {
		t.Errorf("ISR %#x after a read", got)
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 5s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPCIBlockReadsAndWritesLikeOnMMIO(t *testing.T) {
	b, err := NewBlock(newTestImage(t, 16), false)
	if err != nil {
		t.Fatal(err)
	}
	d := newFakePCIDriver(t, b)
	d.start(blkFeatures, 1, 16)
	if got := d.pci.rd(pciDeviceOffset+blkCfgCapacity, 8); got != 16 {
		t.Errorf("capacity %d sectors through the device structure", got)
	}
	payload := bytes.Repeat([]byte{0x5a}, 2*SectorSize)
	if st, _, _ := blkDo(t, d, blkRequest{typ: blkTOut, sector: 3, data: payload}); st != blkSOK {
		t.Fatalf("write status %d", st)
	}
	st, used, in := blkDo(t, d, blkRequest{typ: blkTIn, sector: 3, in: 2 * SectorSize})
	if st != blkSOK || used != 2*SectorSize+1 || !bytes.Equal(in, payload) {
		t.Fatalf("read back: status %d, used %d", st, used)
	}
	waitFor(t, "two interrupts on vector 1", func() bool { return d.pci.sent(1) >= 2 })
}

func TestPCINotificationsThroughIOEventFDsFollowTheBAR(t *testing.T) {
	d := newFakePCIDriver(t, newTestRNG(t, []byte("abcdefgh")))
	p := d.pci
	base := testSegment.Window64.Base
	if got := p.events.addrs(); !slices.Equal(got, []uint64{base + pciNotifyOffset}) {
		t.Fatalf("ioeventfds at %#x, want the notify address %#x", got, base+pciNotifyOffset)
	}
	for _, e := range p.events.fds {
		if e.Len != 2 || e.Datamatch != nil {
			t.Errorf("ioeventfd %+v: want a 2-byte write, no data match", e)
		}
	}
	d.start(featureVersion1, 1, 8)
	q := d.queues[0]
	b := d.buf(4, true)
	d.offer(q, d.chainDescs(q, []fakeBuf{b}))
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	if _, err := unix.Write(p.events.fds[base+pciNotifyOffset].EventFD, one[:]); err != nil {
		t.Fatal(err)
	}
	if _, n := d.waitUsed(0); n != 4 || string(d.data(b)) != "abcd" {
		t.Fatalf("used %d: %q", n, d.data(b))
	}

	// The guest moves the BAR: the ioeventfds follow; decoding off drops them.
	moved := base + 1<<20
	p.setCfg(pci.RegBAR0, 4, uint32(moved))
	if got := p.events.addrs(); !slices.Equal(got, []uint64{moved + pciNotifyOffset}) {
		t.Errorf("after the move, ioeventfds at %#x", got)
	}
	c := d.buf(4, true)
	d.submit(0, c) // through the BAR at its new address
	if _, n := d.waitUsed(0); n != 4 || string(d.data(c)) != "efgh" {
		t.Fatalf("after the move: used %d: %q", n, d.data(c))
	}
	p.setCfg(pci.RegCommand, 2, 0)
	if got := p.events.addrs(); len(got) != 0 {
		t.Errorf("decoding off, ioeventfds at %#x", got)
	}
	p.setCfg(pci.RegCommand, 2, pci.CommandMemory)
	d.pci.tr.Close()
	if got := p.events.addrs(); len(got) != 0 {
		t.Errorf("closed, ioeventfds at %#x", got)
	}
}

func TestPCIResetForgetsVectorsAndQueues(t *testing.T) {
	d := newFakePCIDriver(t, newTestRNG(t, nil))
	d.start(featureVersion1, 1, 8)
	p := d.pci
	p.setCommon(commonQueueSelect, 2, 0)
	if p.common(commonQueueEnable, 2) != 1 || p.common(commonQueueSize, 2) != 8 {
		t.Fatal("queue 0 not set up")
	}
	p.setStatus(0)
	if got := p.status(); got != 0 {
		t.Errorf("status %#x after reset", got)
	}
	for _, c := range []struct {
		field uint64
		n     int
		want  uint64
	}{
		{commonConfigMSIXVector, 2, NoVector},
		{commonQueueMSIXVector, 2, NoVector},
		{commonQueueEnable, 2, 0},
		{commonQueueSize, 2, MaxQueueSize},
		{commonQueueDesc, 4, 0},
		{commonDriverFeature, 4, 0},
	} {
		if got := p.common(c.field, c.n); got != c.want {
			t.Errorf("field %#x reads %#x after reset, want %#x", c.field, got, c.want)
		}
	}
	// A vector the table lacks reads back as NO_VECTOR.
	p.setCommon(commonConfigMSIXVector, 2, 7)
	if got := p.common(commonConfigMSIXVector, 2); got != NoVector {
		t.Errorf("vector 7 of 2 reads %#x", got)
	}
}

func TestPCIBrokenQueueRaisesTheConfigurationVector(t *testing.T) {
	d := newFakePCIDriver(t, newTestRNG(t, nil))
	d.start(featureVersion1, 1, 8)
	d.setAvailIdx(d.queues[0], 100)
	d.pci.notify(0)
	waitFor(t, "DEVICE_NEEDS_RESET", func() bool { return d.pci.status()&statusDeviceNeedsReset != 0 })
	waitFor(t, "the configuration vector", func() bool { return d.pci.sent(0) == 1 })
}

func TestPCIMaskedQueueVectorIsPendingUntilUnmasked(t *testing.T) {
	d := newFakePCIDriver(t, newTestRNG(t, []byte("0123456789")))
	d.start(featureVersion1, 1, 8)
	p := d.pci
	entry := uint64(pciMSIXTable + 1*pci.MSIXEntrySize)
	p.wr(entry+12, 4, 1) // mask queue 0's vector
	d.submit(0, d.buf(4, true))
	d.waitUsed(0)
	waitFor(t, "the pending bit", func() bool { return p.rd(pciMSIXPBA, 8)&2 != 0 })
	if p.sent(1) != 0 {
		t.Fatal("a masked vector fired")
	}
	p.wr(entry+12, 4, 0)
	if p.sent(1) != 1 || p.rd(pciMSIXPBA, 8) != 0 {
		t.Errorf("after unmasking: %d sent, PBA %#x", p.sent(1), p.rd(pciMSIXPBA, 8))
	}
}

func TestPCIConfigurationAccessCapabilityReachesTheBAR(t *testing.T) {
	d := newFakePCIDriver(t, newTestRNG(t, nil))
	p := d.pci
	capOff := p.capOff[pciCapPCICfg]
	set := func(bar byte, offset, length uint32) {
		p.setCfg(capOff+4, 1, uint32(bar))
		p.setCfg(capOff+8, 4, offset)
		p.setCfg(capOff+12, 4, length)
	}
	set(0, pciCommonOffset+commonNumQueues, 2)
	if got := p.cfg(capOff+16, 2); got != 1 {
		t.Errorf("num_queues through pci_cfg_data: %d", got)
	}
	set(0, pciCommonOffset+commonDeviceStatus, 1)
	p.setCfg(capOff+16, 1, statusAcknowledge)
	if got := p.status(); got != statusAcknowledge {
		t.Errorf("status %#x after a write through pci_cfg_data", got)
	}
	// Another BAR, a misaligned or odd length: nothing happens.
	for _, bad := range []struct {
		bar            byte
		offset, length uint32
	}{{1, 0x14, 1}, {0, 0x13, 2}, {0, 0x14, 3}, {0, pciBARSize, 4}} {
		set(bad.bar, bad.offset, bad.length)
		p.setCfg(capOff+16, 4, 0)
		if got := p.cfg(capOff+16, 4); got != 0 {
			t.Errorf("access %+v reads %#x", bad, got)
		}
	}
	if got := p.status(); got != statusAcknowledge {
		t.Errorf("status %#x after refused accesses", got)
	}
}

func TestNewPCIRefusesWhatCannotBe(t *testing.T) {
	mem := newFakeMemory(testRAMBase, testRAMSize)
	alloc := func() (pci.MSIVector, error) { return &fakeVector{}, nil }
	for _, c := range []struct {
		name string
		dev  Device
		cfg  PCIConfig
	}{
		{"no device", nil, PCIConfig{Memory: mem, MSI: alloc}},
		{"no memory", newTestRNG(t, nil), PCIConfig{MSI: alloc}},
		{"no vectors", newTestRNG(t, nil), PCIConfig{Memory: mem}},
		{"a queue size that is not a power of two", newTestRNG(t, nil), PCIConfig{Memory: mem, MSI: alloc, QueueSize: 100}},
	} {
		if _, err := NewPCI(c.dev, c.cfg); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}

// FuzzPCIRegisters plays arbitrary BAR and configuration space accesses,
// of any size at any offset, against a block or entropy device behind
// virtio-pci whose guest RAM is arbitrary too: nothing may panic or hang,
// and Close must stop it.
func FuzzPCIRegisters(f *testing.F) {
	img := filepath.Join(f.TempDir(), "fuzz.img")
	if err := os.WriteFile(img, make([]byte, 8*SectorSize), 0o644); err != nil {
		f.Fatal(err)
	}
	// A driver's start-up, in BAR writes: status, features, queue 0 of 8
	// at 0x1000, its vector, enable, DRIVER_OK, a notification.
	var ops []byte
	w := func(cfgSpace bool, off uint64, n int, v uint32) {
		kind := byte(1)
		if cfgSpace {
			kind = 3
		}
		ops = append(ops, kind, byte(n))
		ops = binary.LittleEndian.AppendUint16(ops, uint16(off))
		ops = binary.LittleEndian.AppendUint32(ops, v)
	}
	w(false, commonDeviceStatus, 1, statusAcknowledge|statusDriver)
	w(false, commonDriverFeatureSelect, 4, 1)
	w(false, commonDriverFeature, 4, 1)
	w(false, commonDeviceStatus, 1, statusAcknowledge|statusDriver|statusFeaturesOK)
	w(false, commonQueueSize, 2, 8)
	w(false, commonQueueDesc, 4, 0x1000)
	w(false, commonQueueDriver, 4, 0x1100)
	w(false, commonQueueDevice, 4, 0x1200)
	w(false, commonQueueMSIXVector, 2, 1)
	w(false, commonQueueEnable, 2, 1)
	w(true, 0x42, 2, 0x8000) // MSI-X on, wherever its capability is
	w(false, commonDeviceStatus, 1, statusAcknowledge|statusDriver|statusFeaturesOK|statusDriverOK)
	w(false, pciNotifyOffset, 2, 0)
	ram := make([]byte, 0x1400)
	binary.LittleEndian.PutUint64(ram[0x1000:], 0x800)
	binary.LittleEndian.PutUint32(ram[0x1008:], 16)
	binary.LittleEndian.PutUint16(ram[0x1102:], 1)
	f.Add(false, ops, ram)
	f.Add(true, ops, ram)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, block bool, ops, ram []byte) {
		mem := newFakeMemory(0, 0x4000)
		copy(mem.regions[0].b, ram)
		var dev Device
		var err error
		if block {
			dev, err = NewBlock(img, false)
		} else {
			dev, err = NewRNG("/dev/zero")
		}
		if err != nil {
			t.Fatal(err)
		}
		tr, err := NewPCI(dev, PCIConfig{Memory: mem, Log: log, IOEvents: &fakeRegistry{fds: map[uint64]IOEventFD{}},
			MSI: func() (pci.MSIVector, error) { return &fakeVector{}, nil }})
		if err != nil {
			t.Fatal(err)
		}
		fn := tr.Function()
		for ; len(ops) >= 8; ops = ops[8:] {
			kind, n := ops[0]%4, int(ops[1]%9)
			off := uint64(binary.LittleEndian.Uint16(ops[2:]))
			data := make([]byte, 8)
			copy(data, ops[4:8])
			data = data[:n]
			switch kind {
			case 0:
				tr.ReadBAR(0, off%(pciBARSize+16), data)
			case 1:
				tr.WriteBAR(0, off%(pciBARSize+16), data)
				fn.WriteBAR(0, off%(pciBARSize+16), data)
			case 2:
				fn.ReadConfig(off%(pci.ConfigSize+16), data)
			case 3:
				fn.WriteConfig(off%(pci.ConfigSize+16), data)
			}
		}
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestPCIMultiQueueBlockServesEveryQueueOnItsOwnVector(t *testing.T) {
	b, err := OpenBlock(BlockConfig{Path: newTestImage(t, 16), NumQueues: 3})
	if err != nil {
		t.Fatal(err)
	}
	d := newFakePCIDriver(t, b)
	if f := d.deviceFeatures(); f&blkFMQ == 0 {
		t.Fatalf("features %#x lack VIRTIO_BLK_F_MQ", f)
	}
	if got := d.pci.rd(pciDeviceOffset+blkCfgNumQueues, 2); got != 3 {
		t.Errorf("num_queues in the configuration: %d", got)
	}
	if len(d.pci.vectors) != 4 {
		t.Errorf("%d vectors, want 4", len(d.pci.vectors))
	}
	d.start(blkFeatures|blkFMQ, 3, 8)
	for q := range 3 {
		hdr := d.buf(blkHeaderSize, false)
		binary.LittleEndian.PutUint64(d.data(hdr)[8:], uint64(q))
		in, st := d.buf(SectorSize, true), d.buf(1, true)
		d.submit(q, hdr, in, st)
		if _, n := d.waitUsed(q); n != SectorSize+1 || d.data(st)[0] != blkSOK || d.data(in)[0] != byte(q) {
			t.Fatalf("queue %d: used %d, status %d, sector byte %d", q, n, d.data(st)[0], d.data(in)[0])
		}
		waitFor(t, "the queue's vector", func() bool { return d.pci.sent(q+1) == 1 })
	}
}

func TestOpenBlockRefusesImpossibleQueueCounts(t *testing.T) {
	img := newTestImage(t, 8)
	for _, n := range []int{-1, MaxBlockQueues + 1} {
		if _, err := OpenBlock(BlockConfig{Path: img, NumQueues: n}); err == nil {
			t.Errorf("num_queues=%d accepted", n)
		}
	}
	b, err := OpenBlock(BlockConfig{Path: img})
	if err != nil || b.NumQueues() != 1 || b.features()&blkFMQ != 0 {
		t.Fatalf("default disk: %v, %d queues, features %#x", err, b.NumQueues(), b.features())
	}
	b.Close()
}

func TestPCIQueueSizeIsTheTransportsSetting(t *testing.T) {
	tr, err := NewPCI(newTestRNG(t, nil), PCIConfig{Memory: newFakeMemory(testRAMBase, testRAMSize), QueueSize: 1024,
		MSI: func() (pci.MSIVector, error) { return &fakeVector{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var b [2]byte
	tr.ReadBAR(0, pciCommonOffset+commonQueueSize, b[:])
	if got := binary.LittleEndian.Uint16(b[:]); got != 1024 {
		t.Errorf("queue_size %d, want 1024", got)
	}
}
