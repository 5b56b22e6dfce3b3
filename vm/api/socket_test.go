package api

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestServerWithFakeBackend_SocketHasMode0600(t *testing.T) {
	old := syscall.Umask(0) // the widest umask: the mode must not come from it
	defer syscall.Umask(old)
	s, _ := startFakeServer(t, Options{})
	fi, err := os.Lstat(s.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		t.Errorf("%s is %v, not a socket", s.SocketPath(), fi.Mode())
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode %o, want 600", perm)
	}
	entries, err := os.ReadDir(filepath.Dir(s.SocketPath()))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the socket (temporary files left?)", len(entries))
	}
}

func TestServerWithFakeBackend_StaleSocketIsReplaced(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "api.sock")
	// A socket nobody listens on: what a killed VMM leaves.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket not left: %v", err)
	}
	s, err := NewServer(path, newFakeBackend(), Options{Logger: discardLogger()})
	if err != nil {
		t.Fatalf("NewServer over a stale socket: %v", err)
	}
	defer s.Close()
	if _, err := NewClient(path).Ping(context.Background()); err != nil {
		t.Errorf("ping: %v", err)
	}
}

func TestServerWithFakeBackend_LiveSocketIsRefused(t *testing.T) {
	s, _ := startFakeServer(t, Options{})
	_, err := NewServer(s.SocketPath(), newFakeBackend(), Options{Logger: discardLogger()})
	if err == nil || !strings.Contains(err.Error(), "another process is listening") {
		t.Fatalf("second server on a live socket: %v", err)
	}
	if _, err := NewClient(s.SocketPath()).Ping(context.Background()); err != nil {
		t.Errorf("first server broken by the second: %v", err)
	}
}

func TestServerWithFakeBackend_NonSocketPathIsRefused(t *testing.T) {
	dir := shortTempDir(t)
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "dir")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, kind string }{{file, "a regular file"}, {sub, "a directory"}, {link, "a symbolic link"}} {
		_, err := NewServer(tc.path, newFakeBackend(), Options{Logger: discardLogger()})
		if err == nil {
			t.Errorf("%s: NewServer succeeded", tc.path)
			continue
		}
		if !strings.Contains(err.Error(), "not a socket") || !strings.Contains(err.Error(), tc.kind) {
			t.Errorf("%s: unclear error %q", tc.path, err)
		}
	}
	if data, err := os.ReadFile(file); err != nil || string(data) != "keep me" {
		t.Errorf("regular file changed: %q, %v", data, err)
	}
}

func TestServerWithFakeBackend_SocketRemovedOnClose(t *testing.T) {
	s, _ := startFakeServer(t, Options{})
	path := s.SocketPath()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket still there after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	select {
	case <-s.Done():
	default:
		t.Error("Done not closed after Close")
	}
	if err := s.Err(); err != nil {
		t.Errorf("Err after Close: %v", err)
	}
}

func TestServerWithFakeBackend_CloseLeavesAnotherProcessSocket(t *testing.T) {
	s, _ := startFakeServer(t, Options{})
	path := s.SocketPath()
	// Someone removed our socket and made their own at the path.
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("Close removed a socket it did not create: %v", err)
	}
}

func TestServerWithFakeBackend_LongSocketPathFallsBack(t *testing.T) {
	dir := shortTempDir(t)
	// Long enough that the temporary name would not fit, short enough for
	// the socket itself.
	name := strings.Repeat("s", maxSocketPath-len(dir)-2-5)
	path := filepath.Join(dir, name)
	s, err := NewServer(path, newFakeBackend(), Options{Logger: discardLogger()})
	if err != nil {
		t.Fatalf("NewServer(%d-byte path): %v", len(path), err)
	}
	defer s.Close()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode %o, want 600", perm)
	}
	if _, err := NewServer(path+strings.Repeat("x", 10), newFakeBackend(), Options{}); err == nil {
		t.Error("a path too long for a socket was accepted")
	}
}
