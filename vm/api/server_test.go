package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/config"
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestServerWithFakeBackend_RoutesAnswerAsCloudHypervisor(t *testing.T) {
	errStateWrapped := fmt.Errorf("pause: VM is %s: %w", vm.StateCreated, vm.ErrState)
	tests := []struct {
		name       string
		method     string
		route      string
		body       string
		failMethod string
		failErr    error
		wantStatus int
		wantCall   string
		wantMsg    string // a substring of the joined error messages
	}{
		{"ping", "GET", RoutePing, "", "", nil, 200, "", ""},
		{"info", "GET", RouteInfo, "", "", nil, 200, "Info", ""},
		{"info without a VM", "GET", RouteInfo, "", "Info", vm.ErrNoVM, 404, "Info", "The VM info is not available: VM is not created"},
		{"create", "PUT", RouteCreate, `{"payload":{"kernel":"/k"}}`, "", nil, 204, "Create", ""},
		{"create when a VM exists", "PUT", RouteCreate, `{"payload":{"kernel":"/k"}}`, "Create", fmt.Errorf("create: a VM exists: %w", vm.ErrState), 500, "Create", "a VM exists"},
		{"create with an invalid config", "PUT", RouteCreate, `{"cpus":{"boot_vcpus":0}}`, "Create", fmt.Errorf("cpus: boot=0: %w", vm.ErrInvalid), 400, "Create", "boot=0"},
		{"boot", "PUT", RouteBoot, "", "", nil, 204, "Boot", ""},
		{"boot without a VM", "PUT", RouteBoot, "", "Boot", vm.ErrNoVM, 404, "Boot", "Error from API: The VM could not boot: VM is not created"},
		{"delete", "PUT", RouteDelete, "", "", nil, 204, "Delete", ""},
		{"shutdown", "PUT", RouteShutdown, "", "", nil, 204, "Shutdown", ""},
		{"shutdown without a VM", "PUT", RouteShutdown, "", "Shutdown", vm.ErrNoVM, 404, "Shutdown", ""},
		{"reboot", "PUT", RouteReboot, "", "", nil, 204, "Reboot", ""},
		{"pause", "PUT", RoutePause, "", "", nil, 204, "Pause", ""},
		{"pause of a VM that is not running", "PUT", RoutePause, "", "Pause", errStateWrapped, 500, "Pause", "invalid VM state"},
		{"resume", "PUT", RouteResume, "", "", nil, 204, "Resume", ""},
		{"power-button", "PUT", RoutePowerButton, "", "", nil, 204, "PowerButton", ""},
		{"resize", "PUT", RouteResize, `{"desired_vcpus":8}`, "", nil, 204, "Resize", ""},
		{"resize while an eject is pending", "PUT", RouteResize, `{"desired_vcpus":2}`, "Resize", fmt.Errorf("resize: vCPU 3 eject pending: %w", vm.ErrBusy), 429, "Resize", "Too Many Requests: resize: vCPU 3 eject pending"},
		{"create with an id given twice", "PUT", RouteCreate, `{"payload":{"kernel":"/k"}}`, "Create", fmt.Errorf("Identifier d is not unique: %w", vm.ErrConflict), 409, "Create", "Error from API: The VM could not be created: Identifier d is not unique"},
		{"resize above max", "PUT", RouteResize, `{"desired_vcpus":9}`, "Resize", fmt.Errorf("desired_vcpus=9 above max 8: %w", vm.ErrInvalid), 400, "Resize", "above max"},
		{"resize failing otherwise", "PUT", RouteResize, `{"desired_ram":2147483648}`, "Resize", errors.New("mmap: cannot allocate memory"), 500, "Resize", "mmap"},
		{"unknown path", "GET", "vm.nope", "", "", nil, 404, "", "no API endpoint"},
		{"action with a body", "PUT", RoutePause, `{}`, "", nil, 400, "", "takes no request body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, fb := startFakeServer(t, Options{})
			if tt.failMethod != "" {
				fb.fail(tt.failMethod, tt.failErr)
			}
			var body []byte
			if tt.body != "" {
				body = []byte(tt.body)
			}
			r := do(t, s.SocketPath(), tt.method, Prefix+tt.route, body)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d (body %s)", r.status, tt.wantStatus, r.body)
			}
			switch {
			case r.status == 204:
				if len(r.body) != 0 {
					t.Errorf("204 with a body: %q", r.body)
				}
			case r.status == 200:
				if len(r.body) == 0 || !json.Valid(r.body) {
					t.Errorf("200 without a JSON body: %q", r.body)
				}
			default:
				msgs := r.messages(t)
				if len(msgs) == 0 {
					t.Fatalf("error body has no messages")
				}
				if joined := strings.Join(msgs, ": "); !strings.Contains(joined, tt.wantMsg) {
					t.Errorf("error messages %q do not mention %q", msgs, tt.wantMsg)
				}
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			calls := fb.called()
			if tt.wantCall == "" && len(calls) != 0 {
				t.Errorf("backend called %v, want no call", calls)
			}
			if tt.wantCall != "" && !slices.Equal(calls, []string{tt.wantCall}) {
				t.Errorf("backend called %v, want [%s]", calls, tt.wantCall)
			}
		})
	}
}

func TestServerWithFakeBackend_PingReportsVersionAndPid(t *testing.T) {
	s, _ := startFakeServer(t, Options{Version: "v1.2.3", BuildVersion: "abc", Features: []string{"kvm"}})
	r := do(t, s.SocketPath(), "GET", Prefix+RoutePing, nil)
	var p map[string]any
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"version": "v1.2.3", "build_version": "abc", "pid": float64(os.Getpid()), "features": []any{"kvm"}}
	for k, v := range want {
		if fmt.Sprint(p[k]) != fmt.Sprint(v) {
			t.Errorf("ping %s = %v, want %v", k, p[k], v)
		}
	}
}

func TestServerWithFakeBackend_InfoHasCloudHypervisorFields(t *testing.T) {
	s, _ := startFakeServer(t, Options{})
	r := do(t, s.SocketPath(), "GET", Prefix+RouteInfo, nil)
	var info map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &info); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"config", "state", "memory_actual_size"} {
		if _, ok := info[k]; !ok {
			t.Errorf("vm.info lacks %q: %s", k, r.body)
		}
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(info["config"], &cfg); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"payload", "cpus", "memory", "serial"} {
		if _, ok := cfg[k]; !ok {
			t.Errorf("vm.info config lacks %q: %s", k, info["config"])
		}
	}
	if string(info["state"]) != `"Running"` {
		t.Errorf("state %s, want \"Running\"", info["state"])
	}
}

func TestServerWithFakeBackend_CreateFillsDefaults(t *testing.T) {
	s, fb := startFakeServer(t, Options{})
	body := `{"payload":{"kernel":"/k","cmdline":"console=ttyS0"},"cpus":{"boot_vcpus":2,"max_vcpus":4},"rng":{"src":"/dev/urandom"}}`
	if r := do(t, s.SocketPath(), "PUT", Prefix+RouteCreate, []byte(body)); r.status != 204 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	got := *fb.created
	want := config.Default()
	want.Payload = config.Payload{Kernel: "/k", Cmdline: "console=ttyS0"}
	want.CPUs = config.CPUs{BootVCPUs: 2, MaxVCPUs: 4}
	want.RNG = &config.RNG{Src: "/dev/urandom"}
	want.SetDefaults()
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("created\n %s\nwant\n %s", gotJSON, wantJSON)
	}
}

func TestServerWithFakeBackend_ResizePassesTheRequest(t *testing.T) {
	s, fb := startFakeServer(t, Options{})
	body := `{ "desired_vcpus": 4, "desired_ram" : 3221225472}`
	if r := do(t, s.SocketPath(), "PUT", Prefix+RouteResize, []byte(body)); r.status != 204 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	got := fb.resized
	if got == nil || got.DesiredVCPUs == nil || *got.DesiredVCPUs != 4 || got.DesiredRAM == nil || *got.DesiredRAM != 3221225472 || got.DesiredBalloon != nil {
		t.Errorf("resize request %+v", got)
	}
}

func TestServerWithFakeBackend_BadBodiesGet400NamingTheProblem(t *testing.T) {
	tests := []struct {
		name  string
		route string
		body  string
		want  string
	}{
		{"resize empty body", RouteResize, "", "needs a JSON request body"},
		{"resize blank body", RouteResize, " \n", "needs a JSON request body"},
		{"resize unknown field", RouteResize, `{"desired_cpus":8}`, `unknown field "desired_cpus"`},
		{"resize string for a number", RouteResize, `{"desired_vcpus":"eight"}`, `field "desired_vcpus": want an integer, got string`},
		{"resize float", RouteResize, `{"desired_vcpus":1.5}`, `field "desired_vcpus"`},
		{"resize overflow", RouteResize, `{"desired_ram":1e30}`, `field "desired_ram"`},
		{"resize zero vcpus", RouteResize, `{"desired_vcpus":0}`, "desired_vcpus=0"},
		{"resize negative vcpus", RouteResize, `{"desired_vcpus":-2}`, "desired_vcpus=-2"},
		{"resize negative ram", RouteResize, `{"desired_ram":-1}`, "desired_ram=-1"},
		{"resize negative balloon", RouteResize, `{"desired_balloon":-1}`, "desired_balloon=-1"},
		{"resize array", RouteResize, `[8]`, "want a JSON object, got an array"},
		{"resize null", RouteResize, `null`, "want a JSON object, got null"},
		{"resize number", RouteResize, `8`, "want a JSON object, got a number"},
		{"resize malformed", RouteResize, `{"desired_vcpus":}`, "malformed JSON at byte"},
		{"resize truncated", RouteResize, `{"desired_vcpus":8`, "truncated JSON"},
		{"resize trailing data", RouteResize, `{"desired_vcpus":8} {}`, "unexpected data after the JSON object"},
		{"create unknown nested field", RouteCreate, `{"cpus":{"boot_vcpus":1,"topolgy":{}}}`, `unknown field "cpus.topolgy"`},
		{"create unknown field in a list", RouteCreate, `{"disks":[{"path":"/a"},{"pth":"/b"}]}`, `unknown field "disks[1].pth"`},
		{"create name in the wrong case", RouteCreate, `{"CPUS":{}}`, `unknown field "CPUS"`},
		{"create wrong nested type", RouteCreate, `{"memory":{"size":"1G"}}`, `field "memory.size": want a non-negative integer, got string`},
		{"create empty body", RouteCreate, ``, "needs a JSON request body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, fb := startFakeServer(t, Options{})
			r := do(t, s.SocketPath(), "PUT", Prefix+tt.route, []byte(tt.body))
			if r.status != 400 {
				t.Fatalf("status %d, want 400 (body %s)", r.status, r.body)
			}
			msgs := r.messages(t)
			if joined := strings.Join(msgs, ": "); !strings.Contains(joined, tt.want) {
				t.Errorf("messages %q do not contain %q", msgs, tt.want)
			}
			if c := fb.called(); len(c) != 0 {
				t.Errorf("backend called %v for a bad body", c)
			}
		})
	}
}

func TestServerWithFakeBackend_WrongMethodGets405WithAllow(t *testing.T) {
	s, fb := startFakeServer(t, Options{})
	for _, rt := range routes() {
		for _, m := range []string{"GET", "PUT", "POST", "DELETE", "PATCH"} {
			if m == rt.method {
				continue
			}
			r := do(t, s.SocketPath(), m, Prefix+rt.name, nil)
			if r.status != 405 {
				t.Errorf("%s %s: status %d, want 405", m, rt.name, r.status)
				continue
			}
			if got := r.header.Get("Allow"); got != rt.method {
				t.Errorf("%s %s: Allow %q, want %q", m, rt.name, got, rt.method)
			}
			r.messages(t)
		}
	}
	if c := fb.called(); len(c) != 0 {
		t.Errorf("backend called %v for wrong methods", c)
	}
}

func TestServerWithFakeBackend_BodyOverOneMiBGets413(t *testing.T) {
	s, fb := startFakeServer(t, Options{})
	big := []byte(`{"desired_vcpus":1,"x":"` + strings.Repeat("a", DefaultMaxBodyBytes) + `"}`)
	r := do(t, s.SocketPath(), "PUT", Prefix+RouteResize, big)
	if r.status != 413 {
		t.Fatalf("status %d, want 413", r.status)
	}
	r.messages(t)

	// Without a Content-Length (chunked), the limit holds while reading.
	conn, err := net.Dial("unix", s.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT %s%s HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n", Prefix, RouteResize)
	chunk := strings.Repeat("b", 64<<10)
	go func() {
		for range 40 { // 2.5 MiB
			if _, err := fmt.Fprintf(conn, "%x\r\n%s\r\n", len(chunk), chunk); err != nil {
				return
			}
		}
		fmt.Fprint(conn, "0\r\n\r\n")
	}()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("chunked: status %d, want 413", resp.StatusCode)
	}

	if r := do(t, s.SocketPath(), "GET", Prefix+RoutePing, nil); r.status != 200 {
		t.Errorf("ping after big bodies: %d", r.status)
	}
	if c := fb.called(); len(c) != 0 {
		t.Errorf("backend called %v for oversized bodies", c)
	}
}

func TestServerWithFakeBackend_SixtyFourConcurrentClients(t *testing.T) {
	s, _ := startFakeServer(t, Options{})
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := NewClient(s.SocketPath())
			defer c.CloseIdleConnections()
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for range 20 {
				var err error
				if i%2 == 0 {
					_, err = c.Ping(ctx)
				} else {
					_, err = c.Info(ctx)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestServerWithFakeBackend_SlowAndHalfOpenClientsDoNotBlockOthers(t *testing.T) {
	s, _ := startFakeServer(t, Options{ReadHeaderTimeout: time.Second, ReadTimeout: 2 * time.Second})
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("unix", s.SocketPath())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		return c
	}
	// Connected, silent.
	for range 10 {
		dial()
	}
	// Half a request line.
	fmt.Fprint(dial(), "GET /api/v1/vmm.pi")
	// Headers done, body promised and never sent.
	fmt.Fprintf(dial(), "PUT %s%s HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"desired", Prefix, RouteResize)
	// Half-closed after a partial request.
	hc := dial()
	fmt.Fprint(hc, "PUT /api/v1/vm.resize HTTP/1.1\r\n")
	hc.(*net.UnixConn).CloseWrite()

	begin := time.Now()
	for range 20 {
		if r := do(t, s.SocketPath(), "GET", Prefix+RoutePing, nil); r.status != 200 {
			t.Fatalf("ping: %d", r.status)
		}
	}
	if d := time.Since(begin); d > 500*time.Millisecond {
		t.Errorf("20 pings took %v with slow clients around", d)
	}

	// The server drops the slow clients once their timeouts pass.
	for _, c := range held[:12] {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 512)
		for {
			if _, err := c.Read(buf); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Errorf("slow client still connected after the server's timeouts")
				}
				break
			}
		}
	}
}

func TestServerWithFakeBackend_BlockedBackendCallDoesNotBlockPing(t *testing.T) {
	s, fb := startFakeServer(t, Options{})
	fb.block = make(chan struct{})
	done := make(chan reply, 1)
	go func() { done <- do(t, s.SocketPath(), "PUT", Prefix+RouteResize, []byte(`{"desired_vcpus":2}`)) }()
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(fb.called(), "Resize") {
		if time.Now().After(deadline) {
			t.Fatal("resize never reached the backend")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if r := do(t, s.SocketPath(), "GET", Prefix+RoutePing, nil); r.status != 200 {
		t.Errorf("ping during a blocked resize: %d", r.status)
	}
	close(fb.block)
	if r := <-done; r.status != 204 {
		t.Errorf("resize: %d %s", r.status, r.body)
	}
}

func TestServerWithFakeBackend_ResizeOutlivesItsClient(t *testing.T) {
	s, fb := startFakeServer(t, Options{})
	fb.block = make(chan struct{})
	c := NewClient(s.SocketPath())
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Resize(ctx, vm.ResizeRequest{DesiredVCPUs: ptr(int64(3))}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("resize with a short deadline: %v", err)
	}
	// The backend call still runs with the server's context.
	select {
	case <-s.ctx.Done():
		t.Fatal("server context cancelled")
	case <-time.After(50 * time.Millisecond):
	}
	close(fb.block)
}

func TestServerWithFakeBackend_ShutdownVMMCallsBackOnce(t *testing.T) {
	called := make(chan struct{}, 2)
	s, _ := startFakeServer(t, Options{ShutdownVMM: func() { called <- struct{}{} }})
	c := NewClient(s.SocketPath())
	for range 2 {
		if err := c.ShutdownVMM(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-called:
	case <-time.After(5 * time.Second):
		t.Fatal("ShutdownVMM callback not called")
	}
	select {
	case <-called:
		t.Error("ShutdownVMM callback called twice")
	case <-time.After(100 * time.Millisecond):
	}

	// Closing the server from the callback must not deadlock.
	sock := filepath.Join(shortTempDir(t), "b.sock")
	var s2 *Server
	closed := make(chan error, 1)
	s2, err := NewServer(sock, newFakeBackend(), Options{Logger: discardLogger(), ShutdownVMM: func() { closed <- s2.Close() }})
	if err != nil {
		t.Fatal(err)
	}
	if err := NewClient(sock).ShutdownVMM(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close from the callback: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close from the callback did not return")
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after vmm.shutdown: %v", err)
	}
}

// vmm.shutdown answers as Cloud Hypervisor's server does: 200 with an
// empty body (its OpenAPI document says 204).
func TestServerWithFakeBackend_ShutdownVMMAnswers200WithAnEmptyBody(t *testing.T) {
	s, _ := startFakeServer(t, Options{ShutdownVMM: func() {}})
	r := do(t, s.SocketPath(), "PUT", Prefix+RouteShutdownVMM, nil)
	if r.status != 200 || len(r.body) != 0 || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("status %d, body %q, Content-Type %q; want 200, empty, application/json", r.status, r.body, r.header.Get("Content-Type"))
	}
}

// The first string of an error body is Cloud Hypervisor's: "Error from API"
// for a failed operation, what went wrong with the request otherwise.
func TestServerWithFakeBackend_ErrorBodiesStartAsCloudHypervisors(t *testing.T) {
	s, fb := startFakeServer(t, Options{})
	fb.fail("Pause", fmt.Errorf("%w", vm.ErrState))
	for _, c := range []struct {
		method, route, body string
		status              int
		head                string
	}{
		{"PUT", RoutePause, "", 500, "Error from API"},
		{"PUT", RouteResize, `{"desired_cpus":1}`, 400, "Failed to deserialize JSON"},
		{"PUT", RouteCreate, `{"payload":{"kernel":"/k"},"cpus":{"nestd":true}}`, 400, "Failed to deserialize JSON"},
		{"PUT", RouteResize, ``, 400, "Bad Request"},
		{"PUT", RoutePause, `{}`, 400, "Bad Request"},
		{"GET", "vm.nope", ``, 404, "Not Found"},
		{"GET", RoutePause, ``, 405, "Method Not Allowed"},
	} {
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		r := do(t, s.SocketPath(), c.method, Prefix+c.route, body)
		if msgs := r.messages(t); r.status != c.status || len(msgs) < 2 || msgs[0] != c.head {
			t.Errorf("%s %s %s: %d %q, want %d with %q first", c.method, c.route, c.body, r.status, msgs, c.status, c.head)
		}
	}
}

func TestServerWithFakeBackend_ShutdownVMMWithoutCallbackGets500(t *testing.T) {
	s, _ := startFakeServer(t, Options{})
	if r := do(t, s.SocketPath(), "PUT", Prefix+RouteShutdownVMM, nil); r.status != 500 {
		t.Errorf("status %d, want 500", r.status)
	}
}

func TestServerWithFakeBackend_ErrorBodyIsTheChainOutermostFirst(t *testing.T) {
	s, fb := startFakeServer(t, Options{})
	fb.fail("Pause", fmt.Errorf("pause: vcpu 1: %w", fmt.Errorf("signal thread: %w", vm.ErrState)))
	r := do(t, s.SocketPath(), "PUT", Prefix+RoutePause, nil)
	want := []string{"Error from API", "The VM could not be paused", "pause: vcpu 1", "signal thread", "invalid VM state"}
	if got := r.messages(t); !slices.Equal(got, want) {
		t.Errorf("messages %q, want %q", got, want)
	}
}

func TestErrorChain(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want []string
	}{
		{"plain", errors.New("boom"), []string{"boom"}},
		{"wrapped", fmt.Errorf("a: %w", errors.New("b")), []string{"a", "b"}},
		{"kind first", fmt.Errorf("%w: detail", vm.ErrInvalid), []string{"invalid request: detail"}},
		{"bare wrap", fmt.Errorf("%w", errors.New("b")), []string{"b"}},
		{"joined", errors.Join(errors.New("x"), errors.New("y")), []string{"x\ny"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errorChain(tt.err); !slices.Equal(got, tt.want) {
				t.Errorf("errorChain = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStatusOf(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{fmt.Errorf("x: %w", vm.ErrInvalid), 400},
		{fmt.Errorf("x: %w", vm.ErrNoVM), 404},
		{fmt.Errorf("x: %w", vm.ErrBusy), 429},
		{fmt.Errorf("x: %w", vm.ErrState), 500},
		{errors.New("x"), 500},
		{badRequest("x"), 400},
	}
	for _, tt := range tests {
		if got := statusOf(tt.err); got != tt.want {
			t.Errorf("statusOf(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }
