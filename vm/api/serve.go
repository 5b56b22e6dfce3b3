package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vmmdev/vmm/vm/api/http1"
)

// The server's connections: one goroutine each, reading a request, routing
// it, writing its reply, and again while the client keeps the connection
// (HTTP/1.1 keep-alive; no pipelining is needed, as a client waits for each
// reply, but what it sends early waits in the reader).

// writeTimeout bounds the writing of one reply to a client that does not
// read it.
const writeTimeout = 30 * time.Second

// conns tracks the open connections, so that Shutdown can close the idle
// ones at once and wait for the busy ones.
type conns struct {
	mu      sync.Mutex
	open    map[net.Conn]bool // value: a request is being served
	closing bool
	wg      sync.WaitGroup
}

// add registers c; false once the server is closing.
func (cs *conns) add(c net.Conn) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closing {
		return false
	}
	if cs.open == nil {
		cs.open = map[net.Conn]bool{}
	}
	cs.open[c] = false
	cs.wg.Add(1)
	return true
}

// remove forgets c.
func (cs *conns) remove(c net.Conn) {
	cs.mu.Lock()
	delete(cs.open, c)
	cs.mu.Unlock()
	cs.wg.Done()
}

// setBusy marks c busy or idle; false once the server is closing, when
// the connection should end instead.
func (cs *conns) setBusy(c net.Conn, busy bool) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closing {
		return false
	}
	cs.open[c] = busy
	return true
}

// close stops new requests and closes the idle connections (all of them
// when all is set).
func (cs *conns) close(all bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.closing = true
	for c, busy := range cs.open {
		if all || !busy {
			c.Close()
		}
	}
}

// wait waits for every connection to end, or for ctx.
func (cs *conns) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { cs.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// accept serves every connection l accepts until l is closed. A shortage
// of descriptors or memory (EMFILE and the like) is waited out, as
// net/http does, rather than taken for the end.
func (s *Server) accept(l net.Listener) error {
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			if !transient(err) {
				return err
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("api: accept", "error", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if !s.conns.add(c) {
			c.Close()
			continue
		}
		go s.serveConn(c)
	}
}

// transient reports whether an Accept error passes.
func transient(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// serveConn serves the requests of one connection until the client closes
// it, a request asks for the end, a read times out or the server closes.
func (s *Server) serveConn(c net.Conn) {
	defer s.conns.remove(c)
	defer c.Close()
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("api: connection panic", "panic", v, "stack", string(debug.Stack()))
		}
	}()
	r := bufio.NewReaderSize(c, 4<<10)
	var out []byte
	// The first request's line and header fields must come within the
	// header time of the connection; a later one's first byte within the
	// idle time of the reply before, and the rest of its head within the
	// header time of that byte; a whole request within the read time of
	// its first byte (net/http's ReadHeaderTimeout, IdleTimeout and
	// ReadTimeout).
	start := time.Now()
	c.SetReadDeadline(start.Add(s.opts.ReadHeaderTimeout)) //nolint:errcheck // a unix conn takes deadlines
	for first := true; ; first = false {
		if !first {
			c.SetReadDeadline(time.Now().Add(s.opts.IdleTimeout)) //nolint:errcheck
		}
		if _, err := r.Peek(1); err != nil {
			return
		}
		if !s.conns.setBusy(c, true) {
			return
		}
		if !first {
			start = time.Now()
			c.SetReadDeadline(start.Add(s.opts.ReadHeaderTimeout)) //nolint:errcheck
		}
		req, err := http1.ReadRequest(r, maxHeaderBytes)
		var rep response
		if err != nil {
			var perr *http1.Error
			if !errors.As(err, &perr) {
				return // the client went, or was too slow: nothing to answer
			}
			writeError(&rep, perr.Status, []string{http1.StatusText(perr.Status), perr.Msg})
			rep.close = true
		} else {
			c.SetReadDeadline(start.Add(s.opts.ReadTimeout)) //nolint:errcheck
			rep = s.serveRequest(c, r, req)
			rep.close = rep.close || req.Close
		}
		fields := []http1.Field{{Name: "Content-Type", Value: "application/json"}}
		if rep.allow != "" {
			fields = append(fields, http1.Field{Name: "Allow", Value: rep.allow})
		}
		if rep.close {
			fields = append(fields, http1.Field{Name: "Connection", Value: "close"})
		}
		out = http1.AppendReply(out[:0], rep.status, fields, rep.body)
		c.SetWriteDeadline(time.Now().Add(writeTimeout)) //nolint:errcheck
		_, werr := c.Write(out)
		if rep.after != nil {
			rep.after()
		}
		if werr != nil || rep.close || !s.conns.setBusy(c, false) {
			return
		}
	}
}

// response is what a route answers; the connection writes it once the route
// has returned.
type response struct {
	status int
	body   []byte
	// allow is the Allow field of a 405.
	allow string
	// close ends the connection after the reply.
	close bool
	// after runs once the reply is written.
	after func()
}

// serveRequest routes one request: 404 for an unknown path, 405 with Allow
// for a wrong method, 413 for a body over the limit, then the route's
// handler. The descriptors passed with the request (up to the end of its
// body) are closed when it ends, whatever its route did with them.
func (s *Server) serveRequest(c net.Conn, r *bufio.Reader, req *http1.Request) (rep response) {
	defer func() {
		files, _ := passedFiles(c)
		closeFiles(files)
	}()
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("api: handler panic", "path", req.Path, "panic", v, "stack", string(debug.Stack()))
			rep = response{}
			writeError(&rep, http1.StatusInternalServerError, []string{"Internal Server Error", fmt.Sprint(v)})
		}
	}()
	name, ok := strings.CutPrefix(req.Path, Prefix)
	rt, found := s.routes[name]
	switch {
	case !ok || !found:
		writeError(&rep, http1.StatusNotFound, []string{"Not Found", fmt.Sprintf("no API endpoint %s", req.Path)})
	case req.Method != rt.method:
		rep.allow = rt.method
		writeError(&rep, http1.StatusMethodNotAllowed, []string{"Method Not Allowed", fmt.Sprintf("%s takes %s, not %s", rt.name, rt.method, req.Method)})
	}
	if rep.status != 0 {
		// The body is read and dropped, so that the connection can go on.
		if err := s.skipBody(c, r, req); err != nil {
			rep.close = true
		}
		return rep
	}
	body, err := s.readBody(c, r, req)
	files, ferr := passedFiles(c)
	defer closeFiles(files)
	if err == nil {
		err = ferr
	}
	if err == nil {
		err = checkBody(rt, body)
	}
	if err == nil {
		err = rt.handle(s, &rep, input{body: body, files: files})
	}
	if err != nil {
		status := statusOf(err)
		msgs := errorBody(rt, status, err)
		s.log.Info("api: request failed", "route", rt.name, "status", status, "error", strings.Join(msgs, ": "))
		var re *requestError
		rep = response{close: errors.As(err, &re) && re.close}
		writeError(&rep, status, msgs)
	}
	return rep
}

// readBody reads the request body up to the limit, first telling a client
// that waits for it to go on ("100 Continue"). Over the limit it answers
// 413 and closes the connection; it first discards what the client still
// sends (up to http1.MaxDiscard, within the read timeout), because many
// clients, Go's among them, report a write error instead of the reply when
// the server closes a connection they are still writing to. A client that
// sent "Expect: 100-continue" gets the 413 without sending its body.
func (s *Server) readBody(c net.Conn, r *bufio.Reader, req *http1.Request) ([]byte, error) {
	limit := s.opts.MaxBodyBytes
	tooLarge := func() error {
		return &requestError{status: http1.StatusRequestEntityTooLarge,
			msg: fmt.Sprintf("request body is over the limit of %d bytes", limit), close: true}
	}
	if req.ContentLength > limit {
		if !req.ExpectContinue {
			drain(r, min(req.ContentLength, http1.MaxDiscard))
		}
		return nil, tooLarge()
	}
	if err := continueIfAsked(c, req); err != nil {
		return nil, err
	}
	data, err := req.ReadBody(r, limit)
	switch {
	case errors.Is(err, http1.ErrBodyTooLarge): // chunked: ReadBody drained it
		return nil, tooLarge()
	case err != nil:
		return nil, &requestError{status: http1.StatusBadRequest, msg: fmt.Sprintf("read request body: %v", err), close: true}
	}
	return data, nil
}

// skipBody reads and drops the body of a request that is refused before
// its route reads it; an error when the connection cannot go on.
func (s *Server) skipBody(c net.Conn, r *bufio.Reader, req *http1.Request) error {
	if req.ContentLength == 0 || req.ExpectContinue {
		// A client waiting for "100 Continue" takes the final reply
		// instead and sends no body, or sends it on a new connection.
		if req.ExpectContinue {
			return errors.New("body not sent")
		}
		return nil
	}
	_, err := req.ReadBody(r, s.opts.MaxBodyBytes)
	return err
}

// continueIfAsked writes "100 Continue" to a client that waits for it.
func continueIfAsked(c net.Conn, req *http1.Request) error {
	if !req.ExpectContinue {
		return nil
	}
	c.SetWriteDeadline(time.Now().Add(writeTimeout)) //nolint:errcheck
	if _, err := c.Write([]byte("HTTP/1.1 100 Continue\r\n\r\n")); err != nil {
		return &requestError{status: http1.StatusBadRequest, msg: fmt.Sprintf("write 100 Continue: %v", err), close: true}
	}
	return nil
}

// drain reads and drops up to n bytes.
func drain(r *bufio.Reader, n int64) {
	for n > 0 {
		k, err := r.Discard(int(min(n, 64<<10)))
		n -= int64(k)
		if err != nil {
			return
		}
	}
}
