package api

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
)

// Descriptors passed with a request. Cloud Hypervisor's server reads a
// request with recvmsg and takes the descriptors that came as SCM_RIGHTS
// ancillary data along with it; vm.add-net gives them to the net (its
// "fds"), and Kata Containers passes its taps that way: one sendmsg per
// request, the whole request as data and the taps as SCM_RIGHTS, then it
// reads the reply before the next request. The server reads through
// net.Conn.Read, which drops ancillary data, so the listener hands out
// fdConns, which read with recvmsg and keep the descriptors received until
// a request takes them. Every request takes what its connection received
// up to the end of its body; what its route does not use is closed when
// the request ends, and what a closed connection still holds is closed with
// it. A client must wait for a reply before it sends descriptors with the
// next request on the same connection (as Kata does).

// maxPassedFDs bounds the descriptors one message may carry; a message
// with more has them cut off by the kernel (MSG_CTRUNC), and the request
// that would have taken them fails.
const maxPassedFDs = 32

// fdListener hands out fdConns.
type fdListener struct {
	net.Listener
}

// Accept accepts a connection and wraps a unix one in an fdConn.
func (l fdListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if uc, ok := c.(*net.UnixConn); ok {
		return &fdConn{UnixConn: uc, oob: make([]byte, syscall.CmsgSpace(4*maxPassedFDs))}, nil
	}
	return c, nil
}

// fdConn is a unix connection that keeps the descriptors it receives.
type fdConn struct {
	*net.UnixConn
	oob []byte // used by Read only: the server reads from one goroutine at a time

	mu        sync.Mutex
	files     []*os.File
	truncated bool // descriptors were lost: the request that takes them fails
	closed    bool
}

// Read reads data and keeps the descriptors that came with it. A failed
// read reports 0 bytes: ReadMsgUnix passes recvmsg's -1 on (a reset peer,
// a deadline that passed while it waited), which io.Reader forbids and
// bufio panics on.
func (c *fdConn) Read(b []byte) (int, error) {
	n, oobn, flags, _, err := c.ReadMsgUnix(b, c.oob)
	if oobn > 0 || flags&syscall.MSG_CTRUNC != 0 {
		c.keep(c.oob[:max(oobn, 0)], flags&syscall.MSG_CTRUNC != 0)
	}
	return max(n, 0), err
}

// keep parses the control messages in oob and keeps their descriptors
// (net's ReadMsgUnix received them close-on-exec).
func (c *fdConn) keep(oob []byte, truncated bool) {
	var fds []int
	if msgs, err := syscall.ParseSocketControlMessage(oob); err == nil {
		for _, m := range msgs {
			if got, err := syscall.ParseUnixRights(&m); err == nil {
				fds = append(fds, got...)
			}
		}
	} else {
		truncated = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.truncated = c.truncated || truncated
	for _, fd := range fds {
		f := os.NewFile(uintptr(fd), fmt.Sprintf("passed-fd-%d", fd))
		if c.closed {
			f.Close()
			continue
		}
		c.files = append(c.files, f)
	}
}

// take returns, and forgets, the descriptors received so far; an error
// (with the descriptors closed) when some were lost.
func (c *fdConn) take() ([]*os.File, error) {
	c.mu.Lock()
	files, truncated := c.files, c.truncated
	c.files, c.truncated = nil, false
	c.mu.Unlock()
	if truncated {
		closeFiles(files)
		return nil, badRequest("descriptors passed with the request were lost: at most %d may come in one message", maxPassedFDs)
	}
	return files, nil
}

// Close closes the connection and the descriptors no request took.
func (c *fdConn) Close() error {
	c.mu.Lock()
	files := c.files
	c.files, c.closed = nil, true
	c.mu.Unlock()
	closeFiles(files)
	return c.UnixConn.Close()
}

// closeFiles closes files.
func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// passedFiles takes the descriptors c received up to now (none for a
// connection that is not an fdConn).
func passedFiles(c net.Conn) ([]*os.File, error) {
	if lc, ok := c.(*limitConn); ok {
		c = lc.Conn
	}
	fc, ok := c.(*fdConn)
	if !ok {
		return nil, nil
	}
	return fc.take()
}

// errFDsInBody refuses descriptor numbers in a request body with no
// descriptors passed: they are numbers in the client's process.
var errFDsInBody = errors.New("fds: pass the taps' descriptors as SCM_RIGHTS with the request; descriptor numbers in the body mean nothing to vmm")
