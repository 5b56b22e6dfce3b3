package virtio

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// Vsock tuning, named in one place.
const (
	// vsockBufAlloc is the buffer space the device gives each connection
	// for the guest's data (its buf_alloc): what a guest may send before
	// the host program has read any of it.
	vsockBufAlloc = 256 << 10
	// vsockCreditThreshold: once the host program read this much that the
	// guest has not heard of, the device sends a credit update unasked.
	vsockCreditThreshold = vsockBufAlloc / 4
	// vsockMaxConns bounds the connections at once; more are reset.
	vsockMaxConns = 1024
	// vsockMaxControl bounds the control packets waiting for receive
	// buffers (a guest that sends without receiving); past it new ones
	// are dropped, with a log line.
	vsockMaxControl = 4096
	// vsockConnectTimeout bounds a host-initiated connection's wait for
	// the guest's answer, and a guest-initiated one's dial of PATH_P.
	vsockConnectTimeout = 2 * time.Second
	// vsockHandshakeTimeout bounds the wait for a host program's
	// CONNECT line.
	vsockHandshakeTimeout = 5 * time.Second
	// vsockFirstHostPort is the first local port given to host-initiated
	// connections, counting up, as Cloud Hypervisor and Firecracker do.
	vsockFirstHostPort = 1 << 30
	// vsockMaxLogged bounds the log lines of each kind a guest can cause.
	vsockMaxLogged = 16
)

// VsockConfig describes a virtio-vsock device with Cloud Hypervisor's
// hybrid vsock backend (--vsock cid=N,socket=PATH).
type VsockConfig struct {
	// CID is the guest's context ID (3 or more, not 0xffffffff).
	CID uint64
	// Socket is the unix socket host programs connect to; a guest
	// connection to the host's port P reaches the socket Socket_P.
	Socket string
}

// Vsock is a virtio-vsock device whose host side is hybrid vsock: host
// programs reach guest ports through one unix socket, guest connections
// to the host (CID 2) port P reach a program listening on the unix
// socket PATH_P. Each connection has its own goroutines for the host
// socket, so a slow reader on either side stalls only its connection.
type Vsock struct {
	cid  uint64
	path string
	ln   *net.UnixListener
	log  *slog.Logger // until activate: the device's; then the transport's

	acceptDone chan struct{}
	conns      sync.WaitGroup // connection goroutines

	mu       sync.Mutex
	active   bool
	closed   bool
	byKey    map[vsockKey]*vsockConn
	shaking  map[*net.UnixConn]bool // host connections before their CONNECT line
	control  []vsockCtl             // packets for the guest that carry no data
	ready    []*vsockConn           // connections with host data for the guest
	nextPort uint32
	logged   map[string]int // log lines per kind, for vsockMaxLogged

	// While the driver runs (activate to deactivate).
	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

// vsockCtl is a control packet waiting for a receive buffer: its header
// and, while it lives, its connection (whose credit fields it carries).
type vsockCtl struct {
	hdr  vsockHdr
	conn *vsockConn
}

// NewVsock checks cfg and listens on its socket. A stale socket file at
// the path (a vmm that died) is replaced; any other file is an error.
func NewVsock(cfg VsockConfig) (*Vsock, error) {
	if err := CheckVsockCID(cfg.CID); err != nil {
		return nil, fmt.Errorf("vsock: %w", err)
	}
	if cfg.Socket == "" {
		return nil, fmt.Errorf("vsock: socket= is required")
	}
	if st, err := os.Lstat(cfg.Socket); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("vsock: socket %s: exists and is not a socket", cfg.Socket)
		}
		if err := os.Remove(cfg.Socket); err != nil {
			return nil, fmt.Errorf("vsock: socket %s: %w", cfg.Socket, err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: cfg.Socket, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("vsock: %w", err)
	}
	v := &Vsock{
		cid: cfg.CID, path: cfg.Socket, ln: ln, log: slog.Default(),
		acceptDone: make(chan struct{}),
		byKey:      map[vsockKey]*vsockConn{},
		shaking:    map[*net.UnixConn]bool{},
		nextPort:   vsockFirstHostPort,
		logged:     map[string]int{},
	}
	go v.acceptLoop()
	return v, nil
}

// CheckVsockCID refuses the CIDs a guest may not have: 0 (the
// hypervisor), 1 (local), 2 (the host) and 0xffffffff (any), with Cloud
// Hypervisor's words.
func CheckVsockCID(cid uint64) error {
	if cid <= VsockHostCID || cid == 0xffffffff || cid > 0xffffffff {
		return fmt.Errorf("%d is a special VSOCK CID", cid)
	}
	return nil
}

// Kind implements Device.
func (v *Vsock) Kind() string { return "virtio-vsock" }

// CID is the guest's context ID.
func (v *Vsock) CID() uint64 { return v.cid }

// Socket is the hybrid vsock unix socket's path.
func (v *Vsock) Socket() string { return v.path }

// Close stops listening, removes the socket file and closes every
// connection.
func (v *Vsock) Close() error {
	v.mu.Lock()
	v.closed = true
	v.closeAllLocked()
	for sock := range v.shaking {
		sock.Close() // ends the wait for a CONNECT line
	}
	v.mu.Unlock()
	err := v.ln.Close() // removes the file (unlink on close)
	<-v.acceptDone
	v.conns.Wait()
	if err != nil {
		return fmt.Errorf("vsock: socket %s: %w", v.path, err)
	}
	return nil
}

// debugState describes the connections for a state dump: how many there
// are, how many have host data waiting for receive buffers, and the
// control packets waiting.
func (v *Vsock) debugState() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return fmt.Sprintf("cid=%d conns=%d ready=%d control=%d", v.cid, len(v.byKey), len(v.ready), len(v.control))
}

func (v *Vsock) deviceID() uint32 { return vsockDeviceID }

// features: stream sockets only, which needs no feature bit.
func (v *Vsock) features() uint64 { return 0 }
func (v *Vsock) numQueues() int   { return 3 }
func (v *Vsock) configSize() int  { return vsockConfigSize }

func (v *Vsock) readConfig(offset uint64, data []byte) {
	var cfg [vsockConfigSize]byte
	binary.LittleEndian.PutUint64(cfg[:], v.cid)
	if offset < vsockConfigSize {
		copy(data, cfg[offset:])
	}
}

// writeConfig ignores writes: guest_cid is read-only.
func (v *Vsock) writeConfig(uint64, []byte) {}

func (v *Vsock) activate(qs queues) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.active = true
	v.log = qs.logger()
	v.wake = make(chan struct{}, 1)
	v.stop = make(chan struct{})
	v.done = make(chan struct{})
	wake, stop, done := v.wake, v.stop, v.done
	if err := qs.goWorker("rx", func() { v.pump(qs, wake, stop, done) }); err != nil {
		qs.logger().Error("virtio-vsock: no receive worker; the guest gets no packets", "err", err)
		close(done)
	}
}

// deactivate drops every connection (the driver that knew them is gone)
// and stops the receive pump.
func (v *Vsock) deactivate() {
	v.mu.Lock()
	v.active = false
	v.closeAllLocked()
	stop, done := v.stop, v.done
	v.mu.Unlock()
	close(stop)
	<-done
}

// closeAllLocked closes every connection without telling the guest.
func (v *Vsock) closeAllLocked() {
	for _, c := range v.byKey {
		v.dropLocked(c)
	}
	v.control, v.ready = nil, nil
}

// process serves a queue notification: new receive buffers wake the
// pump; transmitted packets are handled at once; the event queue's
// buffers stay with the device (it sends no events).
func (v *Vsock) process(i int, q *vring) {
	switch i {
	case vsockRXQueue:
		v.kick()
	case vsockTXQueue:
		v.transmit(q)
	}
}

// kick wakes the receive pump. Called with or without v.mu.
func (v *Vsock) kick() {
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

// logLimited logs msg at warning level, at most vsockMaxLogged times per
// msg: what a guest or a host program can cause without bound.
func (v *Vsock) logLimited(msg string, args ...any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.logLimitedLocked(msg, args...)
}

// logLimitedLocked is logLimited with v.mu held.
func (v *Vsock) logLimitedLocked(msg string, args ...any) {
	n := v.logged[msg]
	v.logged[msg] = n + 1
	if n < vsockMaxLogged {
		v.log.Warn("virtio-vsock: "+msg, args...)
	}
}

// transmit handles every packet the guest queued.
func (v *Vsock) transmit(q *vring) {
	var c chain
	var payload [][]byte
	for q.next(&c) {
		h, p, err := parseVsockPacket(c.readable, c.rlen, payload)
		payload = p
		if err != nil {
			v.logLimited("transmitted packet dropped", "err", err)
			q.push(c.head, 0)
			continue
		}
		v.handle(h, payload)
		q.push(c.head, 0)
	}
}

// pump fills the guest's receive buffers with control packets first,
// then the connections' host data, round robin, until stop closes.
func (v *Vsock) pump(qs queues, wake, stop, done chan struct{}) {
	defer close(done)
	buf := make([]byte, vsockHdrSize+vsockMaxPayload)
	var c chain
	for {
		select {
		case <-wake:
		case <-stop:
			return
		}
		qs.with(vsockRXQueue, func(q *vring) {
			for {
				if !v.hasRx() || !q.next(&c) {
					return
				}
				if c.wlen < vsockHdrSize {
					v.logLimited("receive buffer shorter than a header returned unused", "bytes", c.wlen)
					q.push(c.head, 0)
					continue
				}
				room := min(c.wlen-vsockHdrSize, vsockMaxPayload)
				n, ok := v.nextRx(buf, room)
				if !ok {
					q.unpop()
					return
				}
				scatter(c.writable, buf[:n])
				q.push(c.head, uint32(n))
			}
		})
	}
}

// hasRx reports whether a packet waits for the guest.
func (v *Vsock) hasRx() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.control) > 0 || len(v.ready) > 0
}

// nextRx writes the next packet for the guest into buf (header and at
// most room payload bytes) and returns its length, or false when none
// waits.
func (v *Vsock) nextRx(buf []byte, room uint64) (int, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for len(v.control) > 0 {
		ctl := v.control[0]
		v.control[0] = vsockCtl{}
		v.control = v.control[1:]
		if ctl.conn != nil && ctl.conn.closed && ctl.hdr.op != vsockOpRst {
			continue // what a closed connection had to say is moot
		}
		if ctl.conn != nil {
			ctl.conn.stampLocked(&ctl.hdr)
			if ctl.hdr.op == vsockOpCreditUpdate {
				ctl.conn.creditQueued = false
			}
		}
		ctl.hdr.encode(buf)
		return vsockHdrSize, true
	}
	for len(v.ready) > 0 {
		c := v.ready[0]
		v.ready = v.ready[1:]
		c.inReady = false
		n := c.takeLocked(buf[vsockHdrSize:vsockHdrSize+room], buf[:vsockHdrSize])
		if n == 0 {
			continue // no credit or data any more: dropped from the list
		}
		if len(c.pending) > 0 {
			v.readyLocked(c) // round robin
		} else {
			c.cond.Broadcast() // the reader may read more
		}
		return vsockHdrSize + n, true
	}
	return 0, false
}

// readyLocked puts c on the list of connections with data for the guest.
func (v *Vsock) readyLocked(c *vsockConn) {
	if !c.inReady && len(c.pending) > 0 {
		c.inReady = true
		v.ready = append(v.ready, c)
		v.kick()
	}
}

// sendLocked queues a control packet of op for c (nil for a reset of an
// unknown connection, whose header hdr gives the addresses to answer).
func (v *Vsock) sendLocked(c *vsockConn, op vsockOp, flags uint32, to vsockHdr) {
	if len(v.control) >= vsockMaxControl {
		v.logLimitedLocked("control packet dropped: the guest takes no packets", "op", op)
		return
	}
	h := vsockHdr{
		srcCID: VsockHostCID, dstCID: v.cid, typ: vsockTypeStream, op: op, flags: flags,
		srcPort: to.dstPort, dstPort: to.srcPort,
	}
	if c != nil {
		h.srcPort, h.dstPort = c.key.host, c.key.guest
	}
	v.control = append(v.control, vsockCtl{hdr: h, conn: c})
	v.kick()
}
