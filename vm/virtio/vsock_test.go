package virtio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseVsockPacket(t *testing.T) {
	hdr := func(op vsockOp, n uint32) []byte {
		b := make([]byte, vsockHdrSize)
		h := vsockHdr{srcCID: 3, dstCID: 2, srcPort: 7, dstPort: 9, len: n, typ: vsockTypeStream, op: op, bufAlloc: 100, fwdCnt: 5}
		h.encode(b)
		return b
	}
	for _, c := range []struct {
		name    string
		bufs    [][]byte
		payload string
		err     string
	}{
		{"header alone", [][]byte{hdr(vsockOpRequest, 0)}, "", ""},
		{"header then payload", [][]byte{hdr(vsockOpRW, 5), []byte("hello")}, "hello", ""},
		{"header and payload in one buffer", [][]byte{append(hdr(vsockOpRW, 3), "abcdef"...)}, "abc", ""},
		{"header split over buffers", [][]byte{hdr(vsockOpRW, 2)[:10], append(hdr(vsockOpRW, 2)[10:], "xy"...)}, "xy", ""},
		{"short header", [][]byte{hdr(vsockOpRW, 0)[:43]}, "", "shorter than the 44-byte header"},
		{"no buffers", nil, "", "shorter than"},
		{"len past the buffers", [][]byte{hdr(vsockOpRW, 6), []byte("hello")}, "", "buffers hold 5"},
		{"len above the maximum", [][]byte{hdr(vsockOpRW, vsockMaxPayload+1), make([]byte, vsockMaxPayload+1)}, "", "above"},
		{"payload on a control packet", [][]byte{hdr(vsockOpShutdown, 1), []byte("x")}, "", "SHUTDOWN with a 1-byte payload"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var rlen uint64
			for _, b := range c.bufs {
				rlen += uint64(len(b))
			}
			h, p, err := parseVsockPacket(c.bufs, rlen, nil)
			if c.err != "" {
				if err == nil || !errors.Is(err, errBadPacket) || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.srcCID != 3 || h.dstCID != 2 || h.srcPort != 7 || h.dstPort != 9 || h.bufAlloc != 100 || h.fwdCnt != 5 {
				t.Fatalf("header %+v", h)
			}
			if got := string(bytes.Join(p, nil)); got != c.payload {
				t.Fatalf("payload %q, want %q", got, c.payload)
			}
		})
	}
}

func TestVsockHeaderRoundTrip(t *testing.T) {
	h := vsockHdr{srcCID: 1<<40 + 3, dstCID: 2, srcPort: 1 << 31, dstPort: 1024, len: 17, typ: 1, op: vsockOpCreditUpdate,
		flags: 3, bufAlloc: 262144, fwdCnt: 0xfffffff0}
	var b [vsockHdrSize]byte
	h.encode(b[:])
	if got := decodeVsockHdr(b[:]); got != h {
		t.Fatalf("decoded %+v, want %+v", got, h)
	}
}

func TestParseConnectLine(t *testing.T) {
	for _, c := range []struct {
		line string
		port uint32
		err  bool
	}{
		{"CONNECT 1024", 1024, false},
		{"CONNECT 0", 0, false},
		{"CONNECT 4294967295", 0xffffffff, false},
		{"CONNECT  52", 52, false},
		{"CONNECT 52\r", 52, false},
		{"CONNECT 4294967296", 0, true},
		{"CONNECT -1", 0, true},
		{"CONNECT", 0, true},
		{"CONNECT ", 0, true},
		{"connect 52", 0, true},
		{"CONNECT 52 x", 0, true},
		{"CONNECT52", 0, true},
		{"HELLO", 0, true},
		{"", 0, true},
	} {
		port, err := parseConnectLine(c.line)
		if c.err != (err != nil) || port != c.port {
			t.Errorf("parseConnectLine(%q) = %d, %v", c.line, port, err)
		}
	}
}

func TestCheckVsockCID(t *testing.T) {
	for _, c := range []struct {
		cid uint64
		ok  bool
	}{{0, false}, {1, false}, {2, false}, {3, true}, {0xfffffffe, true}, {0xffffffff, false}, {1 << 32, false}} {
		err := CheckVsockCID(c.cid)
		if c.ok != (err == nil) {
			t.Errorf("CheckVsockCID(%d) = %v", c.cid, err)
		}
		if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("%d is a special VSOCK CID", c.cid)) && c.cid <= 0xffffffff {
			t.Errorf("CheckVsockCID(%d) = %v: want Cloud Hypervisor's words", c.cid, err)
		}
	}
}

func TestNewVsockSocketPath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewVsock(VsockConfig{CID: 3, Socket: file}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("NewVsock over a regular file: %v", err)
	}
	if _, err := NewVsock(VsockConfig{CID: 3}); err == nil {
		t.Fatal("NewVsock without a socket path succeeded")
	}
	// A stale socket (a vmm that died) is replaced; Close removes it.
	path := filepath.Join(dir, "v.sock")
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	v, err := NewVsock(VsockConfig{CID: 3, Socket: path})
	if err != nil {
		t.Fatalf("NewVsock over a stale socket: %v", err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket left after Close: %v", err)
	}
}

func TestVsockConfigSpaceWithFakeDriver(t *testing.T) {
	g := newFakeVsockGuest(t)
	if got := g.d.r32(regDeviceID); got != vsockDeviceID {
		t.Fatalf("device id %d", got)
	}
	var b [8]byte
	g.d.dev.Read(regConfig, b[:])
	equalBytes(t, "guest_cid", b[:], fillConfig(testGuestCID))
}

func TestVsockHostInitiatedWithFakeDriver(t *testing.T) {
	for _, tr := range []struct {
		name      string
		newDriver func(testing.TB, Device) *fakeDriver
	}{{"virtio-mmio", newFakeDriver}, {"virtio-pci", newFakePCIDriver}} {
		t.Run(tr.name, func(t *testing.T) { testVsockHostInitiated(t, newFakeVsockGuestOn(t, tr.newDriver)) })
	}
}

func testVsockHostInitiated(t *testing.T, g *fakeVsockGuest) {
	c, hport := g.established(1024)
	// Host to guest, then guest to host.
	c.Write([]byte("hello"))
	h, p := g.expect(vsockOpRW)
	if h.srcPort != hport || h.dstPort != 1024 || string(p) != "hello" {
		t.Fatalf("RW %+v %q", h, p)
	}
	g.send(pkt(vsockOpRW, 1024, hport), []byte("world"))
	if got := readN(t, c, 5); got != "world" {
		t.Fatalf("host read %q", got)
	}
	// The guest closes: SHUTDOWN both ways, the host sees EOF and the
	// device answers RST.
	sd := pkt(vsockOpShutdown, 1024, hport)
	sd.flags = vsockShutdownBoth
	g.send(sd, nil)
	expectEOF(t, c)
	g.expect(vsockOpRst)
}

func TestVsockHostConnectionRefusedByGuestWithFakeDriver(t *testing.T) {
	g := newFakeVsockGuest(t)
	c, req := g.hostConnect(2222)
	g.send(pkt(vsockOpRst, 2222, req.srcPort), nil)
	expectEOF(t, c)
	// The device carries on.
	c2, _ := g.established(2223)
	c2.Write([]byte("x"))
	g.expect(vsockOpRW)
}

func TestVsockBadHandshakesWithFakeDriver(t *testing.T) {
	g := newFakeVsockGuest(t)
	for _, line := range []string{"HELLO\n", "CONNECT x\n", "CONNECT 99999999999\n", strings.Repeat("C", 100)} {
		c, err := net.Dial("unix", g.path)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(line))
		expectEOF(t, c)
		c.Close()
	}
	c, _ := g.established(5)
	c.Write([]byte("still here"))
	if _, p := g.expect(vsockOpRW); string(p) != "still here" {
		t.Fatalf("RW %q", p)
	}
}

func TestVsockHostConnectTimesOutWithFakeDriver(t *testing.T) {
	g := newFakeVsockGuest(t)
	c, _ := g.hostConnect(77) // the guest never answers
	_ = c.SetReadDeadline(time.Now().Add(vsockConnectTimeout + 3*time.Second))
	var b [8]byte
	if n, err := c.Read(b[:]); err == nil {
		t.Fatalf("read %q, want EOF", b[:n])
	}
	g.expect(vsockOpRst)
}

func TestVsockGuestInitiatedWithFakeDriver(t *testing.T) {
	g := newFakeVsockGuest(t)
	ln, err := net.Listen("unix", g.path+"_5000")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	g.send(pkt(vsockOpRequest, 40000, 5000), nil)
	h, _ := g.expect(vsockOpResponse)
	if h.srcPort != 5000 || h.dstPort != 40000 || h.bufAlloc != vsockBufAlloc {
		t.Fatalf("RESPONSE %+v", h)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	g.send(pkt(vsockOpRW, 40000, 5000), []byte("from the guest"))
	if got := readN(t, c, 14); got != "from the guest" {
		t.Fatalf("host read %q", got)
	}
	c.Write([]byte("from the host"))
	if _, p := g.expect(vsockOpRW); string(p) != "from the host" {
		t.Fatalf("guest read %q", p)
	}
	// The host closes: the guest gets SHUTDOWN(SEND) and can still
	// send; its own SHUTDOWN then ends the connection with an RST.
	c.(*net.UnixConn).CloseWrite()
	if h, _ := g.expect(vsockOpShutdown); h.flags != vsockShutdownSend {
		t.Fatalf("SHUTDOWN flags %d, want SEND", h.flags)
	}
	g.send(pkt(vsockOpRW, 40000, 5000), []byte("late"))
	if got := readN(t, c, 4); got != "late" {
		t.Fatalf("host read %q after its half-close", got)
	}
	sd := pkt(vsockOpShutdown, 40000, 5000)
	sd.flags = vsockShutdownSend
	g.send(sd, nil)
	expectEOF(t, c)
	g.expect(vsockOpRst)
}

func TestVsockGuestConnectionRefusedWithFakeDriver(t *testing.T) {
	g := newFakeVsockGuest(t)
	g.send(pkt(vsockOpRequest, 40001, 6000), nil) // nobody listens on PATH_6000
	h, _ := g.expect(vsockOpRst)
	if h.srcPort != 6000 || h.dstPort != 40001 {
		t.Fatalf("RST %+v", h)
	}
}

func TestVsockUnknownConnectionIsResetWithFakeDriver(t *testing.T) {
	g := newFakeVsockGuest(t)
	for _, op := range []vsockOp{vsockOpRW, vsockOpShutdown, vsockOpCreditUpdate, vsockOpResponse, vsockOpInvalid, 99} {
		var payload []byte
		if op == vsockOpRW {
			payload = []byte("x")
		}
		g.send(pkt(op, 1, 2), payload)
		if h, _ := g.expect(vsockOpRst); h.srcPort != 2 || h.dstPort != 1 {
			t.Fatalf("%s: RST %+v", op, h)
		}
	}
	g.send(pkt(vsockOpRst, 1, 2), nil) // an RST is not answered
	seq := pkt(vsockOpRequest, 1, 2)
	seq.typ = 2 // SEQPACKET is not served
	g.send(seq, nil)
	g.expect(vsockOpRst)
	// Foreign addresses are dropped without an answer.
	bad := pkt(vsockOpRequest, 1, 2)
	bad.srcCID = 9
	g.send(bad, nil)
	g.d.expectNoUsed(vsockRXQueue)
}

func TestVsockCreditTowardGuestWithFakeDriver(t *testing.T) {
	g := newFakeVsockGuest(t)
	c, req := g.hostConnect(1)
	resp := pkt(vsockOpResponse, 1, req.srcPort)
	resp.bufAlloc = 8 // the guest takes 8 bytes at a time
	g.send(resp, nil)
	readN(t, c, len(fmt.Sprintf("OK %d\n", req.srcPort)))
	c.Write([]byte("0123456789abcdefghij"))
	if _, p := g.expect(vsockOpRW); string(p) != "01234567" {
		t.Fatalf("first RW %q, want the 8 bytes of credit", p)
	}
	g.d.expectNoUsed(vsockRXQueue)
	// The guest read 8: a credit update lets 8 more through.
	upd := pkt(vsockOpCreditUpdate, 1, req.srcPort)
	upd.bufAlloc, upd.fwdCnt = 8, 8
	g.send(upd, nil)
	if _, p := g.expect(vsockOpRW); string(p) != "89abcdef" {
		t.Fatalf("second RW %q", p)
	}
}

func TestVsockCreditTowardHostWithFakeDriver(t *testing.T) {
	g := newFakeVsockGuest(t)
	c, hport := g.established(1)
	// A credit request is answered with the device's buf_alloc and
	// fwd_cnt.
	g.send(pkt(vsockOpCreditRequest, 1, hport), nil)
	if h, _ := g.expect(vsockOpCreditUpdate); h.bufAlloc != vsockBufAlloc || h.fwdCnt != 0 {
		t.Fatalf("CREDIT_UPDATE %+v", h)
	}
	// The host reads slowly: the guest fills the credit, then the host
	// reads it all and the device tells the guest unasked.
	chunk := bytes.Repeat([]byte("z"), vsockMaxPayload)
	for range vsockBufAlloc / vsockMaxPayload {
		g.send(pkt(vsockOpRW, 1, hport), chunk)
	}
	readN(t, c, vsockBufAlloc)
	h, _ := g.expect(vsockOpCreditUpdate)
	if h.fwdCnt < vsockCreditThreshold {
		t.Fatalf("CREDIT_UPDATE fwd_cnt %d after the host read %d", h.fwdCnt, vsockBufAlloc)
	}
}

func TestVsockGuestPastCreditIsResetWithFakeDriver(t *testing.T) {
	g := newFakeVsockGuest(t)
	c, hport := g.established(1)
	chunk := bytes.Repeat([]byte("z"), vsockMaxPayload)
	// The first chunk reaches the host program.
	g.send(pkt(vsockOpRW, 1, hport), chunk)
	readN(t, c, len(chunk))
	// Then nobody reads c: the host socket buffers some, the device holds
	// buf_alloc, and a guest that ignores its credit is reset.
	var got vsockHdr
	for range 64 {
		g.send(pkt(vsockOpRW, 1, hport), chunk)
		if g.d.usedIdx(g.d.queues[vsockRXQueue]) != g.d.queues[vsockRXQueue].usedSeen {
			got, _ = g.recv()
			if got.op == vsockOpRst {
				break
			}
		}
	}
	if got.op != vsockOpRst {
		t.Fatalf("a guest 4 MiB past its credit was not reset (last %s)", got.op)
	}
	// A reset is an abort: what the device still held is dropped (as a
	// TCP RST drops it), and the host program's socket is closed: it
	// reads what reached it, then EOF.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("the host side did not reach EOF after the reset: %v", err)
	}
}

func TestVsockManyConnectionsWithFakeDriver(t *testing.T) {
	g := newFakeVsockGuest(t)
	const n = 16
	conns := make([]*net.UnixConn, n)
	hports := make([]uint32, n)
	for i := range n {
		conns[i], hports[i] = g.established(uint32(100 + i))
	}
	for i, c := range conns {
		fmt.Fprintf(c, "conn %02d", i)
	}
	seen := map[uint32]string{}
	for range n {
		h, p := g.expect(vsockOpRW)
		seen[h.dstPort] = string(p)
	}
	for i := range n {
		if want := fmt.Sprintf("conn %02d", i); seen[uint32(100+i)] != want {
			t.Fatalf("port %d got %q, want %q", 100+i, seen[uint32(100+i)], want)
		}
	}
	for i, c := range conns {
		g.send(pkt(vsockOpRW, uint32(100+i), hports[i]), []byte{byte(i)})
		if got := readN(t, c, 1); got[0] != byte(i) {
			t.Fatalf("conn %d read %v", i, got)
		}
	}
}

func TestVsockResetClosesConnectionsWithFakeDriver(t *testing.T) {
	g := newFakeVsockGuest(t)
	c, _ := g.established(1)
	if got := g.d.dev.DebugState(); !strings.Contains(got, "virtio-vsock") || !strings.Contains(got, "cid=3 conns=1 ") {
		t.Fatalf("state dump %q: want the connection count", got)
	}
	g.d.ops().setStatus(0) // the driver resets the device
	expectEOF(t, c)
}

// FuzzVsockPacket feeds arbitrary transmitted bytes, split over two
// buffers, to the packet parser and then to a running device's packet
// handling: nothing may panic, and what is parsed stays inside the
// buffers.
func FuzzVsockPacket(f *testing.F) {
	seed := make([]byte, vsockHdrSize+4)
	h := vsockHdr{srcCID: testGuestCID, dstCID: VsockHostCID, srcPort: 1, dstPort: 2, len: 4, typ: 1, op: vsockOpRW}
	h.encode(seed)
	f.Add(seed, uint8(44))
	h.op, h.len = vsockOpRequest, 0
	h.encode(seed)
	f.Add(seed[:vsockHdrSize], uint8(10))
	f.Add([]byte{1, 2, 3}, uint8(1))
	v, err := NewVsock(VsockConfig{CID: testGuestCID, Socket: filepath.Join(f.TempDir(), "v.sock")})
	if err != nil {
		f.Fatal(err)
	}
	defer v.Close()
	v.mu.Lock()
	v.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	v.active, v.wake = true, make(chan struct{}, 1)
	v.mu.Unlock()
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		at := min(int(split), len(data))
		bufs := [][]byte{data[:at], data[at:]}
		h, p, err := parseVsockPacket(bufs, uint64(len(data)), nil)
		if err != nil {
			return
		}
		n := 0
		for _, b := range p {
			n += len(b)
		}
		if n != int(h.len) || n > len(data)-vsockHdrSize {
			t.Fatalf("payload of %d bytes for len %d in %d bytes", n, h.len, len(data))
		}
		v.handle(h, p)
		v.mu.Lock()
		if len(v.control) > vsockMaxControl {
			t.Fatalf("%d control packets queued", len(v.control))
		}
		v.mu.Unlock()
	})
}

// FuzzConnectLine: the handshake parser takes any line without panicking
// and accepts only what it can print back.
func FuzzConnectLine(f *testing.F) {
	for _, s := range []string{"CONNECT 1024", "CONNECT 4294967296", "CONNECT  1", "", "OK 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		port, err := parseConnectLine(line)
		if err != nil {
			return
		}
		if !strings.HasPrefix(line, "CONNECT ") || !strings.Contains(line, fmt.Sprint(port)) {
			t.Fatalf("parseConnectLine(%q) = %d", line, port)
		}
		if _, err := readConnectLine(strings.NewReader(line + "\nrest")); err != nil && len(line) < vsockMaxConnectLine {
			t.Fatalf("readConnectLine(%q): %v", line, err)
		}
	})
}

func TestVsockCloseDoesNotWaitForAHandshake(t *testing.T) {
	v, err := NewVsock(VsockConfig{CID: 3, Socket: filepath.Join(t.TempDir(), "v.sock")})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("unix", v.Socket())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("CONN")) // and nothing more
	time.Sleep(50 * time.Millisecond)
	began := time.Now()
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d > time.Second {
		t.Fatalf("Close took %v with a handshake pending", d)
	}
}

func TestVsockSlowReaderStallsOnlyItsConnectionWithFakeDriver(t *testing.T) {
	g := newFakeVsockGuest(t)
	// A: the guest gives 8 bytes of credit and never more; its host
	// program never reads.
	a, reqA := g.hostConnect(1)
	resp := pkt(vsockOpResponse, 1, reqA.srcPort)
	resp.bufAlloc = 8
	g.send(resp, nil)
	readN(t, a, len(fmt.Sprintf("OK %d\n", reqA.srcPort)))
	b, hportB := g.established(2)
	go a.Write(bytes.Repeat([]byte("a"), 1<<20)) // blocks once the socket is full
	if h, p := g.expect(vsockOpRW); h.dstPort != 1 || string(p) != "aaaaaaaa" {
		t.Fatalf("A's first packet %+v %q", h, p)
	}
	// Toward the host: the guest fills A's buffer, which nobody reads.
	chunk := bytes.Repeat([]byte("z"), vsockMaxPayload)
	rw := pkt(vsockOpRW, 1, reqA.srcPort)
	rw.bufAlloc = 8 // still no credit toward the guest
	for range vsockBufAlloc / vsockMaxPayload {
		g.send(rw, chunk)
	}
	// B flows both ways meanwhile.
	b.Write([]byte("to the guest"))
	h, p := g.recv()
	for h.op == vsockOpCreditUpdate { // what A's host socket took in
		h, p = g.recv()
	}
	if h.op != vsockOpRW || h.dstPort != 2 || string(p) != "to the guest" {
		t.Fatalf("B's packet %+v %q while A is stalled", h, p)
	}
	g.send(pkt(vsockOpRW, 2, hportB), []byte("to the host"))
	if got := readN(t, b, 11); got != "to the host" {
		t.Fatalf("B read %q while A is stalled", got)
	}
}
