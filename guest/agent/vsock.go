package agent

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// VsockListener is a listening AF_VSOCK stream socket.
type VsockListener struct {
	f  *os.File
	rc syscall.RawConn
}

// ListenVsock listens on vsock port of any local CID.
func ListenVsock(port uint32) (*VsockListener, error) {
	fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("vsock socket: %w (is the vsock module loaded?)", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrVM{CID: unix.VMADDR_CID_ANY, Port: port}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("vsock bind port %d: %w", port, err)
	}
	if err := unix.Listen(fd, 128); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("vsock listen port %d: %w", port, err)
	}
	f := os.NewFile(uintptr(fd), fmt.Sprintf("vsock-listen-%d", port))
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("vsock listen port %d: %w", port, err)
	}
	return &VsockListener{f: f, rc: rc}, nil
}

// AcceptVsock waits for the next connection.
func (l *VsockListener) AcceptVsock() (*VsockConn, error) {
	var nfd int
	var aerr error
	err := l.rc.Read(func(fd uintptr) bool {
		nfd, _, aerr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		return !errors.Is(aerr, unix.EAGAIN)
	})
	if err == nil {
		err = aerr
	}
	if err != nil {
		return nil, fmt.Errorf("vsock accept: %w", err)
	}
	return newVsockConn(nfd, "vsock-conn")
}

// Accept implements Listener.
func (l *VsockListener) Accept() (io.ReadWriteCloser, error) { return l.AcceptVsock() }

// Close stops listening.
func (l *VsockListener) Close() error { return l.f.Close() }

// VsockConn is a connected AF_VSOCK stream socket.
type VsockConn struct {
	*os.File
}

func newVsockConn(fd int, name string) (*VsockConn, error) {
	f := os.NewFile(uintptr(fd), name)
	if f == nil {
		unix.Close(fd)
		return nil, errors.New("vsock: bad descriptor")
	}
	return &VsockConn{File: f}, nil
}

// DialVsock connects to port of cid (2 is the host).
//
// The connect is non-blocking and waited for with poll: a blocking
// connect that a signal interrupts (the Go runtime's preemption signals
// do, often with many connections at once) fails with EINTR, and Linux's
// vsock then abandons the attempt, where poll can simply be called again.
func DialVsock(cid, port uint32) (*VsockConn, error) {
	fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("vsock socket: %w (is the vsock module loaded?)", err)
	}
	if err := connectVsock(fd, cid, port); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("vsock connect %d:%d: %w", cid, port, err)
	}
	return newVsockConn(fd, fmt.Sprintf("vsock-%d:%d", cid, port))
}

// vsockConnectWait bounds the wait for a connection: the kernel gives up
// on its own after 2 s (vsock's connect timeout) and says so in SO_ERROR.
const vsockConnectWait = 10 * time.Second

// connectVsock connects the non-blocking socket fd and waits until the
// connection is made or refused.
func connectVsock(fd int, cid, port uint32) error {
	err := unix.Connect(fd, &unix.SockaddrVM{CID: cid, Port: port})
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINPROGRESS) {
		return err
	}
	deadline := time.Now().Add(vsockConnectWait)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return unix.ETIMEDOUT
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if errors.Is(err, unix.EINTR) || err == nil && n == 0 {
			continue
		}
		if err != nil {
			return err
		}
		break
	}
	soErr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return err
	}
	if soErr != 0 {
		return unix.Errno(soErr)
	}
	return nil
}

// CloseWrite shuts the sending side: the peer reads EOF.
func (c *VsockConn) CloseWrite() error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Shutdown(int(fd), unix.SHUT_WR) }); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("vsock shutdown: %w", serr)
	}
	return nil
}
