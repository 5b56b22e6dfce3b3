package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// unixHTTPClient is an HTTP client on the API socket with one kept-alive
// connection.
func unixHTTPClient(socket string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConnsPerHost: 1,
	}}
}

// hostileConn opens a connection, sends what, and then neither sends nor
// reads more; closed reports once the server has closed it.
func hostileConn(t *testing.T, socket, what string, halfClose bool) (closed <-chan struct{}) {
	t.Helper()
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, what); err != nil {
		t.Fatal(err)
	}
	if halfClose {
		if err := c.(*net.UnixConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(io.Discard, c) //nolint:errcheck // until the server closes it
	}()
	return done
}

// slowConn sends req one byte per interval until the server closes the
// connection; closed reports when it did.
func slowConn(t *testing.T, socket, req string, interval time.Duration) (closed <-chan struct{}) {
	t.Helper()
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < len(req); i++ {
			if _, err := c.Write([]byte{req[i]}); err != nil {
				return
			}
			time.Sleep(interval)
		}
		io.Copy(io.Discard, c) //nolint:errcheck // until the server closes it
	}()
	return done
}

// TestServerWithFakeBackendStaysUpUnderHostileClients runs 10,000 requests
// from 64 concurrent clients while slow clients (a byte at a time, slower
// than the header timeout allows) and half-open connections (nothing sent,
// headers without their body, a request then a half close never read) hold
// connections, more in all than the server's connection limit. Every
// request gets its right answer, the server closes every hostile
// connection through its timeouts, and the backend sees exactly the calls
// the well-formed requests made. The timeouts are scaled down (a byte per
// 100 ms against a 300 ms header timeout) to keep the test short; the e2e
// spec runs the defaults against a real vmm.
func TestServerWithFakeBackendStaysUpUnderHostileClients(t *testing.T) {
	s, fb := startFakeServer(t, Options{ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: time.Second, MaxConns: 80})
	socket := s.SocketPath()

	var hostile []<-chan struct{}
	// The half-closed connections each send a whole vm.info, which is
	// answered (and then closed, as the client closed its side).
	var halfClosedInfos int64
	for range 16 {
		hostile = append(hostile, slowConn(t, socket, "GET /api/v1/vmm.ping HTTP/1.1\r\nHost: localhost\r\n\r\n", 100*time.Millisecond))
	}
	for i := range 32 {
		switch i % 4 {
		case 0:
			hostile = append(hostile, hostileConn(t, socket, "", false))
		case 1:
			hostile = append(hostile, hostileConn(t, socket, "PUT /api/v1/vm.resize HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{", false))
		case 2:
			hostile = append(hostile, hostileConn(t, socket, "GET /api/v1/vm.info HTTP/1.1\r\nHost: x\r\n", false))
		case 3:
			hostile = append(hostile, hostileConn(t, socket, "GET /api/v1/vm.info HTTP/1.1\r\nHost: x\r\n\r\n", true))
			halfClosedInfos++
		}
	}

	const clients, total = 64, 10000
	type call struct {
		method, path, body string
		want               int
	}
	mix := []call{
		{"GET", "/api/v1/vmm.ping", "", 200},
		{"GET", "/api/v1/vm.info", "", 200},
		{"PUT", "/api/v1/vm.resize", `{"desired_vcpus":`, 400},
		{"GET", "/api/v1/nothing", "", 404},
		{"PUT", "/api/v1/vm.info", "", 405},
		{"PUT", "/api/v1/vm.resize", `{"desired_vcpus":4}`, 204},
	}
	var next, infos, resizes atomic.Int64
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := unixHTTPClient(socket)
			defer hc.CloseIdleConnections()
			for {
				n := next.Add(1)
				if n > total {
					return
				}
				c := mix[n%int64(len(mix))]
				var body io.Reader
				if c.body != "" {
					body = strings.NewReader(c.body)
				}
				req, err := http.NewRequest(c.method, "http://localhost"+c.path, body)
				if err != nil {
					errs <- err
					return
				}
				if c.body != "" {
					req.Header.Set("Content-Type", "application/json")
				}
				resp, err := hc.Do(req)
				if err != nil {
					errs <- fmt.Errorf("request %d, %s %s: %w", n, c.method, c.path, err)
					return
				}
				io.Copy(io.Discard, resp.Body) //nolint:errcheck // only the status counts
				resp.Body.Close()
				if resp.StatusCode != c.want {
					errs <- fmt.Errorf("request %d, %s %s: status %d, want %d", n, c.method, c.path, resp.StatusCode, c.want)
					return
				}
				switch {
				case c.path == "/api/v1/vm.info" && c.want == 200:
					infos.Add(1)
				case c.want == 204:
					resizes.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	for i, closed := range hostile {
		select {
		case <-closed:
		case <-time.After(30 * time.Second):
			t.Fatalf("hostile connection %d is still open: the server's timeouts did not cut it", i)
		}
	}
	var gotInfo, gotResize int64
	for _, m := range fb.called() {
		switch m {
		case "Info":
			gotInfo++
		case "Resize":
			gotResize++
		}
	}
	if wantInfo := infos.Load() + halfClosedInfos; gotInfo != wantInfo || gotResize != resizes.Load() {
		t.Errorf("backend: %d Info and %d Resize calls, want %d and %d", gotInfo, gotResize, wantInfo, resizes.Load())
	}
	r := do(t, socket, "GET", "/api/v1/vmm.ping", nil)
	if r.status != 200 || !bytes.Contains(r.body, []byte("version")) {
		t.Errorf("ping after the storm: %d %s", r.status, r.body)
	}
}

// TestLimitListenerHoldsConnectionsOverTheLimitUntilOneCloses: with the
// limit reached, the next connection is accepted only once an open one
// closes.
func TestLimitListenerHoldsConnectionsOverTheLimitUntilOneCloses(t *testing.T) {
	inner, err := net.Listen("unix", shortTempDir(t)+"/l.sock")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(inner, 2)
	defer l.Close()
	accepted := make(chan net.Conn, 3)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	for range 3 {
		c, err := net.Dial("unix", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	first := <-accepted
	<-accepted
	select {
	case <-accepted:
		t.Fatal("a third connection was accepted over the limit of 2")
	case <-time.After(200 * time.Millisecond):
	}
	first.Close()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("the third connection was not accepted once one closed")
	}
}
