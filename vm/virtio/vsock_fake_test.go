package virtio

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// The fake guest side of virtio-vsock: a guest driver over the fake
// virtio driver, laying out its receive buffers as Linux 6.1 does (a
// header descriptor, then a 4 KiB payload descriptor) and sending each
// packet as a header and, for RW, a payload descriptor.

// Test addresses.
const (
	testGuestCID = 3
	// fakeRxBufs is how many receive buffers the fake guest keeps posted.
	fakeRxBufs    = 8
	fakeRxPayload = 4096
)

// fakeVsockGuest is a guest's vsock driver for the device's tests.
type fakeVsockGuest struct {
	t    *testing.T
	d    *fakeDriver
	v    *Vsock
	path string
	rx   map[uint32][2]fakeBuf // posted receive chains by head
	txH  fakeBuf               // the transmit header buffer, reused
	txP  fakeBuf               // the transmit payload buffer, reused
}

// newFakeVsockGuest makes a device on a socket in a temporary directory
// behind virtio-mmio and starts the fake guest's driver with its receive
// buffers posted.
func newFakeVsockGuest(t *testing.T) *fakeVsockGuest {
	t.Helper()
	return newFakeVsockGuestOn(t, newFakeDriver)
}

// newFakeVsockGuestOn is newFakeVsockGuest on the transport newDriver
// puts the device behind.
func newFakeVsockGuestOn(t *testing.T, newDriver func(testing.TB, Device) *fakeDriver) *fakeVsockGuest {
	t.Helper()
	path := filepath.Join(t.TempDir(), "v.sock")
	v, err := NewVsock(VsockConfig{CID: testGuestCID, Socket: path})
	if err != nil {
		t.Fatal(err)
	}
	d := newDriver(t, v)
	d.start(featureVersion1, 3, 16)
	g := &fakeVsockGuest{t: t, d: d, v: v, path: path, rx: map[uint32][2]fakeBuf{},
		txH: d.buf(vsockHdrSize, false), txP: d.buf(vsockMaxPayload, false)}
	for range fakeRxBufs {
		h, p := d.buf(vsockHdrSize, true), d.buf(fakeRxPayload, true)
		head := d.submit(vsockRXQueue, h, p)
		g.rx[uint32(head)] = [2]fakeBuf{h, p}
	}
	return g
}

// send transmits one packet from the guest and waits for the device to
// take it.
func (g *fakeVsockGuest) send(h vsockHdr, payload []byte) {
	g.t.Helper()
	h.len = uint32(len(payload))
	h.encode(g.d.data(g.txH))
	bufs := []fakeBuf{g.txH}
	if len(payload) > 0 {
		copy(g.d.data(g.txP), payload)
		bufs = append(bufs, fakeBuf{gpa: g.txP.gpa, len: uint32(len(payload))})
	}
	g.d.submit(vsockTXQueue, bufs...)
	g.d.waitUsed(vsockTXQueue)
}

// pkt is a stream packet from the guest's port gport to the host's hport.
func pkt(op vsockOp, gport, hport uint32) vsockHdr {
	return vsockHdr{srcCID: testGuestCID, dstCID: VsockHostCID, srcPort: gport, dstPort: hport,
		typ: vsockTypeStream, op: op, bufAlloc: 1 << 20}
}

// recv waits for the next packet to the guest and posts its buffer again.
func (g *fakeVsockGuest) recv() (vsockHdr, []byte) {
	g.t.Helper()
	id, n := g.d.waitUsed(vsockRXQueue)
	bufs, ok := g.rx[id]
	if !ok || n < vsockHdrSize {
		g.t.Fatalf("receive buffer %d used with %d bytes", id, n)
	}
	h := decodeVsockHdr(g.d.data(bufs[0]))
	if uint32(n) != vsockHdrSize+h.len {
		g.t.Fatalf("%s: used length %d for a %d-byte payload", h.op, n, h.len)
	}
	payload := append([]byte(nil), g.d.data(bufs[1])[:h.len]...)
	if h.srcCID != VsockHostCID || h.dstCID != testGuestCID || h.typ != vsockTypeStream {
		g.t.Fatalf("packet %+v: want host to guest, stream", h)
	}
	head := g.d.submit(vsockRXQueue, bufs[0], bufs[1])
	delete(g.rx, id)
	g.rx[uint32(head)] = bufs
	return h, payload
}

// expect waits for the next packet and checks its operation.
func (g *fakeVsockGuest) expect(op vsockOp) (vsockHdr, []byte) {
	g.t.Helper()
	h, p := g.recv()
	if h.op != op {
		g.t.Fatalf("got %s (%+v), want %s", h.op, h, op)
	}
	return h, p
}

// hostConnect connects a host program to guest port and returns the
// socket and the REQUEST the guest got.
func (g *fakeVsockGuest) hostConnect(port uint32) (*net.UnixConn, vsockHdr) {
	g.t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: g.path, Net: "unix"})
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "CONNECT %d\n", port)
	h, _ := g.expect(vsockOpRequest)
	if h.dstPort != port || h.srcPort < vsockFirstHostPort {
		g.t.Fatalf("REQUEST %+v: want dst_port %d and a local port from %d", h, port, vsockFirstHostPort)
	}
	return c, h
}

// established connects a host program to guest port through the
// handshake and returns its socket (past the OK line) and the guest's
// view of the connection's ports.
func (g *fakeVsockGuest) established(port uint32) (*net.UnixConn, uint32) {
	g.t.Helper()
	c, req := g.hostConnect(port)
	g.send(pkt(vsockOpResponse, port, req.srcPort), nil)
	want := fmt.Sprintf("OK %d\n", req.srcPort)
	if got := readN(g.t, c, len(want)); got != want {
		g.t.Fatalf("handshake answer %q, want %q", got, want)
	}
	return c, req.srcPort
}

// readN reads exactly n bytes from c, with a deadline.
func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, n)
	for off := 0; off < n; {
		k, err := c.Read(b[off:])
		if err != nil {
			t.Fatalf("read %d of %d bytes: %v (%q)", off, n, err, b[:off])
		}
		off += k
	}
	return string(b)
}

// expectEOF checks that c's read side ends.
func expectEOF(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [64]byte
	n, err := c.Read(b[:])
	if err == nil {
		t.Fatalf("read %q, want EOF", b[:n])
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("no EOF within 5s")
	}
}

// fillConfig is the little-endian guest CID as the configuration space
// holds it.
func fillConfig(cid uint64) []byte {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], cid)
	return b[:]
}

// equalBytes fails the test when got is not want.
func equalBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
}
