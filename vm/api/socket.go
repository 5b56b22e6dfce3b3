package api

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

const (
	// socketMode is the API socket's permission: only the VMM's user may
	// connect (connecting to a unix socket needs write permission).
	socketMode = 0o600
	// staleProbeTimeout bounds the dial that tells a live socket from a
	// stale one left by a dead process.
	staleProbeTimeout = time.Second
	// maxSocketPath is the size of sockaddr_un.sun_path on Linux, including
	// the terminating NUL.
	maxSocketPath = 108
)

// unixSocket is a listening API socket and what is needed to remove it.
type unixSocket struct {
	net.Listener
	path string
	// ident is the socket file as created; Close removes path only if it
	// is still this file.
	ident os.FileInfo

	closeOnce sync.Once
	closeErr  error
}

// listenUnix creates a listening unix socket at path with mode 0600.
//
// A socket file already at path is replaced when nothing accepts on it (a
// dead VMM left it); a socket something still listens on, and a path that is
// not a socket, are refused. The socket is created in a private directory,
// given its mode and then hard-linked into place, so it is never reachable
// with a wider mode and a file created at path meanwhile is never clobbered.
func listenUnix(path string) (*unixSocket, error) {
	if path == "" {
		return nil, errors.New("api socket: empty path")
	}
	if len(path) >= maxSocketPath {
		return nil, fmt.Errorf("api socket %s: path longer than %d bytes", path, maxSocketPath-1)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := listenPrivate(path)
	if err != nil {
		return nil, err
	}
	ident, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	return &unixSocket{Listener: ln, path: path, ident: ident}, nil
}

// listenFD takes the listening unix socket fd (--api-socket fd=N): one the
// launcher created, which Close closes but does not remove.
func listenFD(fd int) (*unixSocket, error) {
	f := os.NewFile(uintptr(fd), fmt.Sprintf("api-socket-fd-%d", fd))
	if f == nil {
		return nil, fmt.Errorf("api socket fd=%d: not an open file", fd)
	}
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("api socket fd=%d: not a listening socket: %w", fd, err)
	}
	if _, ok := ln.(*net.UnixListener); !ok {
		ln.Close()
		return nil, fmt.Errorf("api socket fd=%d: not a unix socket", fd)
	}
	return &unixSocket{Listener: ln}, nil
}

// removeStale removes a socket file at path that nothing listens on, and
// refuses anything else that exists at path.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("api socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("api socket %s: the path exists and is not a socket (%s); refusing to replace it", path, describeMode(fi.Mode()))
	}
	c, err := net.DialTimeout("unix", path, staleProbeTimeout)
	if err == nil {
		c.Close()
		return fmt.Errorf("api socket %s: another process is listening on it", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("api socket %s: cannot tell whether it is stale: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("api socket %s: remove stale socket: %w", path, err)
	}
	return nil
}

// listenPrivate binds the socket under a fresh 0700 directory next to path,
// sets its mode and links it to path. When that temporary name would be too
// long for a socket address, it binds path directly and sets the mode at
// once (the parent directory's permissions then guard the short window).
func listenPrivate(path string) (*net.UnixListener, error) {
	dir, err := os.MkdirTemp(filepath.Dir(path), ".vmm-api-")
	if err != nil {
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	if len(tmp) >= maxSocketPath {
		return bindAt(path, path)
	}
	ln, err := bindAt(tmp, path)
	if err != nil {
		return nil, err
	}
	if err := os.Link(tmp, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	return ln, nil
}

// bindAt listens on a unix socket at file and gives it mode 0600; name is
// the path errors speak of. The listener does not remove the file on close:
// the server removes its own path.
func bindAt(file, name string) (*net.UnixListener, error) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: file, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("api socket %s: %w", name, err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(file, socketMode); err != nil {
		ln.Close()
		os.Remove(file)
		return nil, fmt.Errorf("api socket %s: %w", name, err)
	}
	return ln, nil
}

// Close stops listening and removes the socket file if it is still the one
// this listener created. Calls after the first return the first's result.
func (u *unixSocket) Close() error {
	u.closeOnce.Do(func() {
		err := u.Listener.Close()
		if u.path == "" {
			u.closeErr = err
			return
		}
		if fi, serr := os.Lstat(u.path); serr == nil && os.SameFile(fi, u.ident) {
			if rerr := os.Remove(u.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
				err = rerr
			}
		}
		u.closeErr = err
	})
	return u.closeErr
}

// describeMode names a file type for the "not a socket" error.
func describeMode(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m.IsRegular():
		return "a regular file"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "type " + m.Type().String()
}
