package virtio

import (
	"sync"
	"time"
)

// vsockKey names a connection by its two ports: the host's (the port a
// host program reached through PATH_P, or the local port given to a
// host-initiated connection) and the guest's.
type vsockKey struct{ host, guest uint32 }

// vsockState is where a connection is in its life.
type vsockState int

const (
	// vsockConnecting: a host program asked for a guest port; the device
	// sent REQUEST and waits for RESPONSE or RST.
	vsockConnecting vsockState = iota
	// vsockDialing: the guest sent REQUEST; the device dials PATH_P.
	vsockDialing
	// vsockEstablished: data flows both ways.
	vsockEstablished
)

// vsockConn is one connection between a guest socket and a host unix
// socket. All its fields are guarded by the device's mu; its goroutines
// wait on cond.
//
// Credit (5.10.6.3 "Flow control"): the guest may have at most
// vsockBufAlloc bytes the host program has not read (rxCnt - fwdCnt);
// the device sends the guest at most its buf_alloc bytes it has not
// consumed (txCnt - peerFwdCnt). Counters wrap, as the spec's do.
type vsockConn struct {
	key   vsockKey
	cid   uint64 // the guest's
	state vsockState
	sock  unixStream // nil while dialing
	cond  *sync.Cond
	timer *time.Timer // a host-initiated connection's wait for the guest

	// Guest to host.
	wbuf     []byte // received from the guest, not yet written to sock
	rxCnt    uint32 // bytes received from the guest
	fwdCnt   uint32 // bytes written to sock
	told     uint32 // the fwd_cnt the guest last heard
	wroteEOF bool   // the guest shut SEND and sock got every byte and its EOF

	// Host to guest.
	pending      []byte // read from sock, not yet in the guest's buffers
	txCnt        uint32 // bytes given to the guest
	peerBufAlloc uint32
	peerFwdCnt   uint32
	hostEOF      bool // sock's read side ended; SHUTDOWN(SEND) queued

	peerShut     uint32 // the guest's shutdown flags, cumulative
	inReady      bool   // on the device's ready list
	creditQueued bool   // a CREDIT_UPDATE waits in the control list
	closed       bool
}

// unixStream is the host side of a connection: a *net.UnixConn.
type unixStream interface {
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
	CloseWrite() error
	SetWriteDeadline(t time.Time) error
	Close() error
}

// newConnLocked registers a connection in state st.
func (v *Vsock) newConnLocked(key vsockKey, st vsockState, peer vsockHdr) *vsockConn {
	c := &vsockConn{key: key, cid: v.cid, state: st, cond: sync.NewCond(&v.mu),
		peerBufAlloc: peer.bufAlloc, peerFwdCnt: peer.fwdCnt}
	v.byKey[key] = c
	return c
}

// credit is how many bytes the guest can take now.
func (c *vsockConn) credit() uint32 {
	used := c.txCnt - c.peerFwdCnt
	if used >= c.peerBufAlloc {
		return 0
	}
	return c.peerBufAlloc - used
}

// stampLocked fills a header's credit fields, which tell the guest how
// much the host program has read.
func (c *vsockConn) stampLocked(h *vsockHdr) {
	h.bufAlloc, h.fwdCnt = vsockBufAlloc, c.fwdCnt
	c.told = c.fwdCnt
}

// takeLocked moves up to len(dst) pending bytes, within the guest's
// credit, into dst and writes their RW header into hdr. It returns how
// many bytes it moved: 0 when there are none or no credit.
func (c *vsockConn) takeLocked(dst, hdr []byte) int {
	if c.closed || c.state != vsockEstablished || c.peerShut&vsockShutdownRcv != 0 {
		return 0
	}
	n := min(len(c.pending), len(dst), int(c.credit()))
	if n == 0 {
		return 0
	}
	copy(dst, c.pending[:n])
	c.pending = c.pending[n:]
	c.txCnt += uint32(n)
	h := vsockHdr{srcCID: VsockHostCID, dstCID: c.cid, srcPort: c.key.host, dstPort: c.key.guest,
		len: uint32(n), typ: vsockTypeStream, op: vsockOpRW}
	c.stampLocked(&h)
	h.encode(hdr)
	return n
}

// handle applies one transmitted packet.
func (v *Vsock) handle(h vsockHdr, payload [][]byte) {
	if h.srcCID != v.cid || h.dstCID != VsockHostCID {
		v.logLimited("packet with foreign addresses dropped", "src_cid", h.srcCID, "dst_cid", h.dstCID, "op", h.op)
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.active || v.closed {
		return
	}
	key := vsockKey{host: h.dstPort, guest: h.srcPort}
	c := v.byKey[key]
	if h.typ != vsockTypeStream {
		v.logLimitedLocked("packet of an unsupported socket type reset", "type", h.typ, "op", h.op)
		if c != nil {
			v.resetLocked(c)
		} else if h.op != vsockOpRst {
			v.sendLocked(nil, vsockOpRst, 0, h)
		}
		return
	}
	if c == nil {
		switch h.op {
		case vsockOpRequest:
			v.guestConnectLocked(key, h)
		case vsockOpRst:
		default:
			v.sendLocked(nil, vsockOpRst, 0, h)
		}
		return
	}
	c.peerBufAlloc, c.peerFwdCnt = h.bufAlloc, h.fwdCnt
	c.cond.Broadcast() // the credit may have grown
	v.readyLocked(c)
	switch h.op {
	case vsockOpRW:
		v.receiveLocked(c, h, payload)
	case vsockOpCreditUpdate:
	case vsockOpCreditRequest:
		v.creditUpdateLocked(c)
	case vsockOpShutdown:
		c.peerShut |= h.flags & vsockShutdownBoth
		if c.peerShut&vsockShutdownRcv != 0 {
			c.pending = nil
		}
		v.finishLocked(c)
	case vsockOpRst:
		if c.state == vsockConnecting {
			v.logLimitedLocked("host connection refused by the guest: nobody listens on its port", "port", c.key.guest)
		}
		v.dropLocked(c)
	case vsockOpResponse:
		if c.state != vsockConnecting {
			v.logLimitedLocked("unexpected RESPONSE: connection reset", "host_port", key.host, "guest_port", key.guest)
			v.resetLocked(c)
			return
		}
		c.timer.Stop()
		c.state = vsockEstablished
		v.startLocked(c, connectOK(c.key.host))
	default:
		v.logLimitedLocked("unexpected packet: connection reset", "op", h.op, "host_port", key.host, "guest_port", key.guest)
		v.resetLocked(c)
	}
}

// receiveLocked takes an RW packet's payload for the host program. Data
// before the connection is up, after the guest shut SEND, or past the
// credit the device gave resets the connection.
func (v *Vsock) receiveLocked(c *vsockConn, h vsockHdr, payload [][]byte) {
	switch {
	case c.state != vsockEstablished:
		v.logLimitedLocked("data before the connection is up: connection reset", "port", c.key.host)
	case c.peerShut&vsockShutdownSend != 0:
		v.logLimitedLocked("data after the guest shut its sending side: connection reset", "port", c.key.host)
	case c.rxCnt+h.len-c.fwdCnt > vsockBufAlloc:
		v.logLimitedLocked("the guest sent past its credit: connection reset", "port", c.key.host,
			"unread", c.rxCnt-c.fwdCnt, "len", h.len, "buf_alloc", vsockBufAlloc)
	default:
		for _, b := range payload {
			c.wbuf = append(c.wbuf, b...)
		}
		c.rxCnt += h.len
		c.cond.Broadcast()
		return
	}
	v.resetLocked(c)
}

// creditUpdateLocked queues a CREDIT_UPDATE for c, unless one waits.
func (v *Vsock) creditUpdateLocked(c *vsockConn) {
	if !c.creditQueued {
		c.creditQueued = true
		v.sendLocked(c, vsockOpCreditUpdate, 0, vsockHdr{})
	}
}

// finishLocked ends a connection whose work is done: every byte of the
// guest reached the host program with its EOF, and either the host
// program's EOF reached the guest or the guest receives no more. The
// guest gets the RST that closes the connection (5.10.6.6).
func (v *Vsock) finishLocked(c *vsockConn) {
	if c.wroteEOF && (c.hostEOF || c.peerShut&vsockShutdownRcv != 0) {
		v.resetLocked(c)
	}
}

// resetLocked sends the guest an RST for c and closes it.
func (v *Vsock) resetLocked(c *vsockConn) {
	if c.closed {
		return
	}
	v.sendLocked(c, vsockOpRst, 0, vsockHdr{})
	v.dropLocked(c)
}

// dropLocked closes c without telling the guest.
func (v *Vsock) dropLocked(c *vsockConn) {
	if c.closed {
		return
	}
	c.closed = true
	delete(v.byKey, c.key)
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.sock != nil {
		_ = c.sock.Close() // ends the goroutines' blocked reads and writes
	}
	c.pending, c.wbuf = nil, nil
	c.cond.Broadcast()
}

// startLocked starts an established connection's goroutines; preface
// goes to the host program first (the handshake's OK line).
func (v *Vsock) startLocked(c *vsockConn, preface string) {
	v.conns.Add(2)
	go v.readHost(c)
	go v.writeHost(c, preface)
}
