package api

import (
	"context"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmmdev/vmm/vm/config"
)

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// waitFDs waits until the process has want descriptors open again.
func waitFDs(t *testing.T, want int, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for openFDs(t) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d descriptors open, want %d", what, openFDs(t), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// inode is f's inode number.
func inode(t *testing.T, f *os.File) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// pipeFiles is two open files of distinct inodes, a pipe's read end and a
// temporary file, closed at the end of the test.
func pipeFiles(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pw.Close()
	w, err = os.CreateTemp(t.TempDir(), "fd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// unixPair returns both ends of a connected unix stream socketpair, the
// server's as an fdConn; the client's end is closed when the test ends.
func unixPair(t *testing.T) (client *net.UnixConn, server *fdConn) {
	t.Helper()
	pair, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	client = conn(pair[0])
	t.Cleanup(func() { client.Close() })
	return client, &fdConn{UnixConn: conn(pair[1]), oob: make([]byte, syscall.CmsgSpace(4*maxPassedFDs))}
}

func TestFDConnOnASocketpairKeepsPassedDescriptorsUntilTakenOrClosed(t *testing.T) {
	client, fc := unixPair(t)
	r, w := pipeFiles(t)
	base := openFDs(t)

	if _, _, err := client.WriteMsgUnix([]byte("first"), syscall.UnixRights(int(r.Fd()), int(w.Fd())), nil); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := fc.Read(buf)
	if err != nil || string(buf[:n]) != "first" {
		t.Fatalf("Read: %q, %v", buf[:n], err)
	}
	files, err := fc.take()
	if err != nil || len(files) != 2 {
		t.Fatalf("take: %d files, %v; want the 2 passed", len(files), err)
	}
	if inode(t, files[0]) != inode(t, r) || inode(t, files[1]) != inode(t, w) {
		t.Error("the descriptors taken are not the pipe's ends, in order")
	}
	if again, _ := fc.take(); len(again) != 0 {
		t.Errorf("a second take got %d files, want none", len(again))
	}
	closeFiles(files)
	waitFDs(t, base, "after closing what was taken")

	// Descriptors nobody takes go with the connection.
	if _, _, err := client.WriteMsgUnix([]byte("second"), syscall.UnixRights(int(r.Fd())), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := fc.Read(buf); err != nil {
		t.Fatal(err)
	}
	if openFDs(t) != base+1 {
		t.Errorf("after receiving one: %d open, want %d", openFDs(t), base+1)
	}
	fc.Close()
	waitFDs(t, base-1, "after closing the connection") // its own socket too
}

func TestAddNetWithFakeBackendTakesTheTapsPassedAsSCMRights(t *testing.T) {
	s, fb := startFakeServer(t, Options{})
	r, w := pipeFiles(t)
	c := NewClient(s.SocketPath())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	base := openFDs(t)
	c2 := func(ctx context.Context, method, route string, f *os.File) (int, []byte, error) {
		return c.DoWithFiles(ctx, method, route, []byte(`{}`), f)
	}

	// Kata's body: no "fds"; the taps come as SCM_RIGHTS.
	if _, err := c.AddNetFDs(ctx, config.Net{MAC: "52:54:00:12:34:56"}, r); err != nil {
		t.Fatalf("add-net with a descriptor: %v", err)
	}
	// Numbers in the body are replaced by what is passed.
	if _, err := c.AddNetFDs(ctx, config.Net{FDs: []int{99}}, w); err != nil {
		t.Fatalf("add-net with fds in the body and a descriptor passed: %v", err)
	}
	fb.mu.Lock()
	got := fb.netFDs
	fb.mu.Unlock()
	if len(got) != 2 || len(got[0]) != 1 || got[0][0] != inode(t, r) || len(got[1]) != 1 || got[1][0] != inode(t, w) {
		t.Errorf("the backend's nets got descriptors of inodes %v, want [[%d] [%d]]", got, inode(t, r), inode(t, w))
	}
	waitFDs(t, base, "after the requests: the server closed its copies")

	// Descriptors passed with a request that takes none are closed too.
	status, body, err := c.DoWithFiles(ctx, http.MethodGet, RouteInfo, nil, r, w)
	if err != nil || status != http.StatusOK {
		t.Fatalf("vm.info with descriptors: %d %s %v", status, body, err)
	}
	waitFDs(t, base, "after vm.info with descriptors")

	// An unknown path and a wrong method read no body: their descriptors
	// are closed all the same.
	for _, c := range []struct{ method, route string }{{http.MethodPut, "vm.add-rng"}, {http.MethodGet, RouteAddNet}} {
		status, _, err := c2(ctx, c.method, c.route, r)
		if err != nil || (status != http.StatusNotFound && status != http.StatusMethodNotAllowed) {
			t.Fatalf("%s %s with a descriptor: %d %v", c.method, c.route, status, err)
		}
		waitFDs(t, base, "after "+c.route+" with a descriptor")
	}

	// Numbers in the body alone mean nothing in vmm's process.
	status, body, err = c.DoWithFiles(ctx, http.MethodPut, RouteAddNet, []byte(`{"fds":[3]}`))
	if err != nil || status != http.StatusBadRequest || !strings.Contains(string(body), "SCM_RIGHTS") {
		t.Errorf("add-net with fds only in the body: %d %s %v; want 400 naming SCM_RIGHTS", status, body, err)
	}
	status, body, err = c.DoWithFiles(ctx, http.MethodPut, RouteCreate, []byte(`{"payload":{"kernel":"/k"},"net":[{"fds":[3]}]}`))
	if err != nil || status != http.StatusBadRequest || !strings.Contains(string(body), "vm.add-net") {
		t.Errorf("vm.create with fds: %d %s %v; want 400 naming vm.add-net", status, body, err)
	}
}

func TestAddNetWithFakeBackendTakesEachRequestsDescriptorsOnOneConnection(t *testing.T) {
	// Kata sends its nets one after the other on one connection, each
	// request in one sendmsg with its taps, reading each reply first.
	s, fb := startFakeServer(t, Options{})
	r, w := pipeFiles(t)
	conn, err := net.Dial("unix", s.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	send := func(route, want string, files ...*os.File) {
		t.Helper()
		body := `{"mac":"52:54:00:12:34:56"}`
		req := "PUT /api/v1/" + route + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: " +
			strconv.Itoa(len(body)) + "\r\n\r\n" + body
		var oob []byte
		for _, f := range files {
			oob = syscall.UnixRights(int(f.Fd()))
		}
		if _, _, err := conn.(*net.UnixConn).WriteMsgUnix([]byte(req), oob, nil); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		if err != nil || !strings.HasPrefix(string(buf[:n]), want) {
			t.Fatalf("%s: reply %q, %v; want %s", route, buf[:n], err, want)
		}
	}
	send(RouteAddNet, "HTTP/1.1 204", r)
	send(RouteAddNet, "HTTP/1.1 204", w)
	// A request to an unknown path leaves its descriptor to nobody.
	send("vm.nope", "HTTP/1.1 404", r)
	send(RouteAddNet, "HTTP/1.1 204")
	fb.mu.Lock()
	got := fb.netFDs
	fb.mu.Unlock()
	if len(got) != 3 || len(got[0]) != 1 || got[0][0] != inode(t, r) || len(got[1]) != 1 || got[1][0] != inode(t, w) || len(got[2]) != 0 {
		t.Errorf("the nets got inodes %v, want [[%d] [%d] []]", got, inode(t, r), inode(t, w))
	}
}

// A failed read must report 0 bytes (io.Reader): recvmsg's -1 made bufio,
// under net/http, panic in a handler reading the body of a client that
// went away.
func TestFDConnReadThatFailsReportsNoBytes(t *testing.T) {
	cases := []struct {
		name string
		fail func(t *testing.T, client *net.UnixConn, server *fdConn)
	}{
		{"the peer reset the connection", func(t *testing.T, client *net.UnixConn, server *fdConn) {
			// A unix socket closed with unread data resets its peer.
			if _, err := server.Write([]byte("unread")); err != nil {
				t.Fatal(err)
			}
			client.Close()
		}},
		{"a deadline passed while the read waited", func(t *testing.T, _ *net.UnixConn, server *fdConn) {
			time.AfterFunc(50*time.Millisecond, func() { server.SetReadDeadline(time.Now()) })
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			client, server := unixPair(t)
			defer server.Close()
			c.fail(t, client, server)
			n, err := server.Read(make([]byte, 64))
			if err == nil || n != 0 {
				t.Errorf("Read = %d, %v; want 0 and an error", n, err)
			}
		})
	}
}
