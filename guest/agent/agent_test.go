package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeHybrid plays the vmm's hybrid vsock socket for one guest port: it
// answers "CONNECT <port>" with OK and hands the stream to an agent
// Server, and closes any other handshake, as a guest with nobody on the
// port would make the vmm do.
func fakeHybrid(t *testing.T, port uint32) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "v.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	inner := make(chan net.Conn)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				line, err := readByteLine(c, 64)
				if err != nil || line != fmt.Sprintf("CONNECT %d", port) {
					c.Close()
					return
				}
				fmt.Fprintf(c, "OK %d\n", 1<<30)
				inner <- c
			}()
		}
	}()
	srv := &Server{Dir: t.TempDir()}
	go func() { _ = srv.Serve(chanListener(inner)) }()
	return path
}

// chanListener is a Listener of the connections sent on it.
type chanListener chan net.Conn

func (l chanListener) Accept() (io.ReadWriteCloser, error) {
	c, ok := <-l
	if !ok {
		return nil, net.ErrClosed
	}
	return c, nil
}

func (l chanListener) Close() error { return nil }

func TestClientRunsCommandsLikeTheConsoleShell(t *testing.T) {
	cl := Client{Socket: fakeHybrid(t, Port)}
	ctx := context.Background()
	for _, c := range []struct {
		cmd    string
		out    string
		status int
	}{
		{"echo hello", "hello", 0},
		{"printf 'a\\nb\\n\\n\\n'", "a\nb", 0},
		{"echo out; echo err >&2; exit 3", "out\nerr", 3},
		{"true", "", 0},
		{"kill -9 $$", "", 137},
		{"if then", "", 2},
		{"sleep 30 & echo started", "started", 0},
	} {
		t.Run(c.cmd, func(t *testing.T) {
			began := time.Now()
			out, status, err := cl.Run(ctx, c.cmd)
			if err != nil {
				t.Fatal(err)
			}
			if status != c.status || (c.status != 2 && out != c.out) {
				t.Fatalf("Run(%q) = %q, %d; want %q, %d", c.cmd, out, status, c.out, c.status)
			}
			if d := time.Since(began); d > 5*time.Second {
				t.Fatalf("Run(%q) took %v", c.cmd, d)
			}
		})
	}
}

func TestClientRunsRequestsConcurrently(t *testing.T) {
	cl := Client{Socket: fakeHybrid(t, Port)}
	began := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, _, err := cl.Run(context.Background(), fmt.Sprintf("sleep 0.5; echo %d", i))
			if err == nil && out != fmt.Sprint(i) {
				err = fmt.Errorf("request %d got %q", i, out)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(began); d > 3*time.Second {
		t.Fatalf("8 half-second commands took %v: not concurrent", d)
	}
}

func TestCancelKillsTheCommand(t *testing.T) {
	cl := Client{Socket: fakeHybrid(t, Port)}
	dir := t.TempDir()
	mark := filepath.Join(dir, "mark")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, _, err := cl.Run(ctx, "sleep 1; touch "+mark)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run past its context: %v", err)
	}
	time.Sleep(1500 * time.Millisecond)
	if _, err := os.Stat(mark); err == nil {
		t.Fatal("the command ran on after its client cancelled")
	}
}

func TestRequestTimeout(t *testing.T) {
	srv := &Server{Dir: t.TempDir()}
	resp := srv.Run(context.Background(), Request{Version: Version, Cmd: "echo before; sleep 5", Timeout: 200 * time.Millisecond})
	if !strings.Contains(resp.Error, "timed out") || string(resp.Output) != "before\n" {
		t.Fatalf("response %+v", resp)
	}
}

func TestOutputIsCapped(t *testing.T) {
	c := &capped{max: 4}
	c.Write([]byte("ab"))
	c.Write([]byte("cdef"))
	if string(c.bytes()) != "abcd" || !c.cut {
		t.Fatalf("capped kept %q, cut %v", c.bytes(), c.cut)
	}
}

func TestServerRefusesBadRequests(t *testing.T) {
	for _, c := range []struct{ line, want string }{
		{`{"version":99,"cmd":"true"}`, "protocol version 99"},
		{`not json`, "decode"},
	} {
		a, b := net.Pipe()
		go (&Server{Dir: t.TempDir()}).serveConn(a)
		fmt.Fprintln(b, c.line)
		var resp Response
		if err := readLine(bufio.NewReader(b), maxResponse, &resp); err != nil || !strings.Contains(resp.Error, c.want) {
			t.Errorf("%s: %+v, %v; want an error with %q", c.line, resp, err, c.want)
		}
		b.Close()
	}
}

func TestDialHybridRefused(t *testing.T) {
	path := fakeHybrid(t, Port)
	_, err := DialHybrid(context.Background(), path, 7777)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("DialHybrid to a port nobody listens on: %v", err)
	}
	if _, err := DialHybrid(context.Background(), filepath.Join(t.TempDir(), "none"), 1); err == nil {
		t.Fatal("DialHybrid without a socket succeeded")
	}
}

func TestParseOK(t *testing.T) {
	for _, c := range []struct {
		line string
		port uint32
		ok   bool
	}{{"OK 1073741824", 1 << 30, true}, {"OK x", 0, false}, {"NO 1", 0, false}, {"OK", 0, false}} {
		p, err := parseOK(c.line)
		if c.ok != (err == nil) || p != c.port {
			t.Errorf("parseOK(%q) = %d, %v", c.line, p, err)
		}
	}
}

func TestPatternIsFixedBySeed(t *testing.T) {
	a, _ := io.ReadAll(Pattern(1, 1000))
	b, _ := io.ReadAll(Pattern(1, 1000))
	c, _ := io.ReadAll(Pattern(2, 1000))
	if len(a) != 1000 || string(a) != string(b) || string(a) == string(c) {
		t.Fatal("Pattern is not a fixed stream per seed")
	}
	s := NewSummer()
	s.Write(a)
	if s.String() != PatternSum(1, 1000) || !strings.HasPrefix(s.String(), "bytes=1000 sha256=") {
		t.Fatalf("sum %s", s)
	}
}

// flakyListener fails its first Accept with err, then is a chanListener.
type flakyListener struct {
	chanListener
	err error
}

func (l *flakyListener) Accept() (io.ReadWriteCloser, error) {
	if err := l.err; err != nil {
		l.err = nil
		return nil, err
	}
	return l.chanListener.Accept()
}

func TestServeKeepsServingAfterAFailedAcceptOfAFakeListener(t *testing.T) {
	conns := make(chanListener)
	done := make(chan error, 1)
	go func() {
		done <- (&Server{Dir: t.TempDir()}).Serve(&flakyListener{chanListener: conns, err: syscall.ECONNRESET})
	}()
	host, guest := net.Pipe()
	conns <- guest
	resp, err := Exec(context.Background(), host, Request{Cmd: "echo still here"})
	if err != nil || string(resp.Output) != "still here\n" {
		t.Fatalf("after a failed accept: %+v, %v", resp, err)
	}
	close(conns)
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Serve returned %v, want the closed listener's error", err)
	}
}
