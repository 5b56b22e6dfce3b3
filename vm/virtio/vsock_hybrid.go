package virtio

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// The hybrid vsock backend: host programs on unix sockets, as Cloud
// Hypervisor and Firecracker have them.

// acceptLoop takes host programs' connections to the device's socket
// until Close.
func (v *Vsock) acceptLoop() {
	defer close(v.acceptDone)
	for {
		sock, err := v.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			v.logLimited("accept on the vsock socket failed", "socket", v.path, "err", err)
			time.Sleep(10 * time.Millisecond) // EMFILE and the like: do not spin
			continue
		}
		v.mu.Lock()
		if v.closed {
			v.mu.Unlock()
			sock.Close()
			return
		}
		v.conns.Add(1)
		v.shaking[sock] = true
		v.mu.Unlock()
		go v.handshake(sock)
	}
}

// handshake reads a host program's CONNECT line and asks the guest for
// the port. A bad line closes the connection, with a log line.
func (v *Vsock) handshake(sock *net.UnixConn) {
	defer v.conns.Done()
	_ = sock.SetReadDeadline(time.Now().Add(vsockHandshakeTimeout))
	line, err := readConnectLine(sock)
	v.mu.Lock()
	delete(v.shaking, sock)
	closed := v.closed
	v.mu.Unlock()
	if closed {
		sock.Close()
		return
	}
	var port uint32
	if err == nil {
		port, err = parseConnectLine(line)
	}
	if err != nil {
		v.logLimited("host connection refused: bad handshake", "socket", v.path, "err", err)
		sock.Close()
		return
	}
	_ = sock.SetReadDeadline(time.Time{})
	v.hostConnect(sock, port)
}

// readConnectLine reads one line, without its newline, a byte at a time:
// what follows it is the connection's data, which must stay in the
// socket.
func readConnectLine(r io.Reader) (string, error) {
	var buf [vsockMaxConnectLine]byte
	for n := 0; n < len(buf); n++ {
		if _, err := io.ReadFull(r, buf[n:n+1]); err != nil {
			return "", fmt.Errorf("after %d bytes of the CONNECT line: %w", n, err)
		}
		if buf[n] == '\n' {
			return string(buf[:n]), nil
		}
	}
	return "", fmt.Errorf("CONNECT line longer than %d bytes", vsockMaxConnectLine)
}

// hostConnect asks the guest for a connection to port on behalf of the
// host program on sock; the guest's RESPONSE (handle) sends it the OK
// line and starts the connection.
func (v *Vsock) hostConnect(sock *net.UnixConn, port uint32) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.active || v.closed {
		v.logLimitedLocked("host connection refused: the guest's vsock driver is not running", "port", port)
		sock.Close()
		return
	}
	if len(v.byKey) >= vsockMaxConns {
		v.logLimitedLocked("host connection refused: too many connections", "port", port, "max", vsockMaxConns)
		sock.Close()
		return
	}
	key := vsockKey{host: v.allocPortLocked(port), guest: port}
	c := v.newConnLocked(key, vsockConnecting, vsockHdr{})
	c.sock = sock
	v.sendLocked(c, vsockOpRequest, 0, vsockHdr{})
	c.timer = time.AfterFunc(vsockConnectTimeout, func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		if !c.closed && c.state == vsockConnecting {
			v.logLimitedLocked("host connection refused: the guest did not answer", "port", port, "after", vsockConnectTimeout)
			v.resetLocked(c)
		}
	})
}

// allocPortLocked picks the next free local port for a host-initiated
// connection to guestPort.
func (v *Vsock) allocPortLocked(guestPort uint32) uint32 {
	for {
		p := v.nextPort
		v.nextPort++
		if v.nextPort < vsockFirstHostPort {
			v.nextPort = vsockFirstHostPort
		}
		if _, used := v.byKey[vsockKey{host: p, guest: guestPort}]; !used {
			return p
		}
	}
}

// guestConnectLocked serves a guest's REQUEST to the host's port
// key.host: it dials PATH_<port> and answers RESPONSE, or RST when
// nobody listens there.
func (v *Vsock) guestConnectLocked(key vsockKey, h vsockHdr) {
	if len(v.byKey) >= vsockMaxConns {
		v.logLimitedLocked("guest connection refused: too many connections", "port", key.host, "max", vsockMaxConns)
		v.sendLocked(nil, vsockOpRst, 0, h)
		return
	}
	c := v.newConnLocked(key, vsockDialing, h)
	path := v.path + "_" + strconv.FormatUint(uint64(key.host), 10)
	v.conns.Add(1)
	go func() {
		defer v.conns.Done()
		sock, err := net.DialTimeout("unix", path, vsockConnectTimeout)
		v.mu.Lock()
		defer v.mu.Unlock()
		if c.closed {
			if sock != nil {
				sock.Close()
			}
			return
		}
		if err != nil {
			v.logLimitedLocked("guest connection refused: nobody listens on the host port", "port", key.host, "err", err)
			v.resetLocked(c)
			return
		}
		c.sock = sock.(*net.UnixConn)
		c.state = vsockEstablished
		v.sendLocked(c, vsockOpResponse, 0, vsockHdr{})
		v.startLocked(c, "")
	}()
}

// readHost moves the host program's bytes toward the guest, reading no
// more than the guest's credit allows and one chunk at a time, so that a
// guest that does not read stalls only this connection. The host's EOF
// becomes a SHUTDOWN(SEND) after its last byte.
func (v *Vsock) readHost(c *vsockConn) {
	defer v.conns.Done()
	buf := make([]byte, vsockMaxPayload)
	v.mu.Lock()
	defer v.mu.Unlock()
	for {
		for !c.closed && (len(c.pending) > 0 || c.peerShut&vsockShutdownRcv != 0 || c.credit() == 0) {
			c.cond.Wait()
		}
		if c.closed {
			return
		}
		n := min(int(c.credit()), len(buf))
		v.mu.Unlock()
		k, err := c.sock.Read(buf[:n])
		v.mu.Lock()
		if c.closed {
			return
		}
		if k > 0 && c.peerShut&vsockShutdownRcv == 0 {
			c.pending = buf[:k]
			v.readyLocked(c)
		}
		switch {
		case errors.Is(err, io.EOF):
			for !c.closed && len(c.pending) > 0 {
				c.cond.Wait()
			}
			if !c.closed {
				c.hostEOF = true
				v.sendLocked(c, vsockOpShutdown, vsockShutdownSend, vsockHdr{})
				v.finishLocked(c)
			}
			return
		case err != nil:
			v.logLimitedLocked("host socket read failed: connection reset", "port", c.key.host, "err", err)
			v.resetLocked(c)
			return
		}
	}
}

// writeHost writes the guest's bytes to the host program, then the EOF
// once the guest shut its sending side. It tells the guest of the space
// it freed once that is worth a packet.
func (v *Vsock) writeHost(c *vsockConn, preface string) {
	defer v.conns.Done()
	if preface != "" {
		_ = c.sock.SetWriteDeadline(time.Now().Add(vsockHandshakeTimeout))
		_, err := io.WriteString(c.sock, preface)
		_ = c.sock.SetWriteDeadline(time.Time{})
		if err != nil {
			v.mu.Lock()
			v.logLimitedLocked("host program gone before the handshake's answer: connection reset", "port", c.key.guest, "err", err)
			v.resetLocked(c)
			v.mu.Unlock()
			return
		}
	}
	var out []byte
	v.mu.Lock()
	defer v.mu.Unlock()
	for {
		for !c.closed && len(c.wbuf) == 0 && (c.peerShut&vsockShutdownSend == 0 || c.wroteEOF) {
			c.cond.Wait()
		}
		if c.closed {
			return
		}
		if len(c.wbuf) == 0 {
			c.wroteEOF = true
			if err := c.sock.CloseWrite(); err != nil {
				v.logLimitedLocked("host socket shutdown failed: connection reset", "port", c.key.host, "err", err)
				v.resetLocked(c)
				return
			}
			v.finishLocked(c)
			continue
		}
		out, c.wbuf = c.wbuf, out[:0]
		v.mu.Unlock()
		n, err := c.sock.Write(out)
		v.mu.Lock()
		if c.closed {
			return
		}
		c.fwdCnt += uint32(n)
		if err != nil {
			v.logLimitedLocked("host socket write failed: connection reset", "port", c.key.host, "err", err)
			v.resetLocked(c)
			return
		}
		if c.fwdCnt-c.told >= vsockCreditThreshold {
			v.creditUpdateLocked(c)
		}
	}
}
