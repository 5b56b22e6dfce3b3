package agent

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

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
func DialVsock(cid, port uint32) (*VsockConn, error) {
	fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("vsock socket: %w (is the vsock module loaded?)", err)
	}
	// A blocking connect: the kernel bounds it (2 s by default).
	if err := unix.Connect(fd, &unix.SockaddrVM{CID: cid, Port: port}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("vsock connect %d:%d: %w", cid, port, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("vsock connect %d:%d: %w", cid, port, err)
	}
	return newVsockConn(fd, fmt.Sprintf("vsock-%d:%d", cid, port))
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
