package api

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"github.com/vmmdev/vmm/vm/api/http1"
)

// maxReplyBytes bounds how much of a reply the client reads; replies are a
// few KiB (vm.info is the largest).
const maxReplyBytes = 4 << 20

// maxIdleConns bounds the connections a Client keeps for reuse.
const maxIdleConns = 64

// clientConn is one connection of a Client.
type clientConn struct {
	net.Conn
	r *bufio.Reader
}

// roundTrip sends a request with send and reads its reply, within ctx
// (its deadline, and its end cutting the connection's reads and writes
// short); replied says whether any of a reply came.
func (cc *clientConn) roundTrip(ctx context.Context, method string, send func() error) (rep http1.Reply, replied bool, err error) {
	dl, _ := ctx.Deadline()                                                    // none: the zero time
	cc.SetDeadline(dl)                                                         //nolint:errcheck // a unix conn takes deadlines
	stop := context.AfterFunc(ctx, func() { cc.SetDeadline(time.Unix(1, 0)) }) //nolint:errcheck
	defer func() {
		if !stop() && err == nil { // ctx ended meanwhile: the deadline is gone
			rep.Close = true
		}
	}()
	done := func(e error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The connection's deadline, ctx's own, can pass a moment
		// before ctx says so.
		if errors.Is(e, os.ErrDeadlineExceeded) && !dl.IsZero() && !time.Now().Before(dl) {
			return context.DeadlineExceeded
		}
		return e
	}
	if err := send(); err != nil {
		return rep, false, done(err)
	}
	if _, err := cc.r.Peek(1); err != nil {
		return rep, false, done(err)
	}
	rep, err = http1.ReadReply(cc.r, method, maxReplyBytes)
	if err != nil {
		return rep, true, done(err)
	}
	return rep, true, nil
}

// connPool holds a Client's idle connections.
type connPool struct {
	mu   sync.Mutex
	idle []*clientConn
}

// get returns an idle connection (reused) or dials a new one.
func (p *connPool) get(ctx context.Context, socketPath string) (cc *clientConn, reused bool, err error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		cc = p.idle[n-1]
		p.idle = p.idle[:n-1]
	}
	p.mu.Unlock()
	if cc != nil {
		return cc, true, nil
	}
	c, err := dial(ctx, socketPath)
	if err != nil {
		return nil, false, err
	}
	return &clientConn{Conn: c, r: bufio.NewReader(c)}, false, nil
}

// dial connects to the API socket.
func dial(ctx context.Context, socketPath string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", socketPath)
}

// put keeps cc for reuse, unless it is to be closed or the pool is full.
func (p *connPool) put(cc *clientConn, closeIt bool) {
	p.mu.Lock()
	if !closeIt && len(p.idle) < maxIdleConns && cc.r.Buffered() == 0 {
		p.idle = append(p.idle, cc)
		cc = nil
	}
	p.mu.Unlock()
	if cc != nil {
		cc.Close()
	}
}

// closeIdle closes the idle connections.
func (p *connPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, cc := range idle {
		cc.Close()
	}
}
