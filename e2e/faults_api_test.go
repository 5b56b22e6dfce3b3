package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vmmdev/vmm/guest"
	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/config"
)

// smallGuestConfig is a machine of 2 vCPUs and 512 MiB.
func smallGuestConfig() config.VM {
	cfg := config.Default()
	cfg.CPUs = config.CPUs{BootVCPUs: 2, MaxVCPUs: 2}
	cfg.Memory.Size = 512 << 20
	return cfg
}

// stormRequests is how many requests the API storm sends: 2,500, or
// VMM_API_REQUESTS (make stress: 10,000).
func stormRequests() int64 {
	if n, err := strconv.Atoi(os.Getenv("VMM_API_REQUESTS")); err == nil && n > 0 {
		return int64(n)
	}
	return 2500
}

// socketHTTPClient is an HTTP client on a unix socket, one kept-alive
// connection.
func socketHTTPClient(sock string) *http.Client {
	return &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		MaxIdleConnsPerHost: 1,
	}}
}

// holdConn opens a connection to sock that sends send one byte per
// interval (all at once when interval is 0), then neither sends nor reads
// more. The channel is closed once the server has closed the connection.
func holdConn(sock, send string, interval time.Duration) <-chan struct{} {
	GinkgoHelper()
	c, err := net.Dial("unix", sock)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { c.Close() })
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		if interval == 0 {
			if _, err := io.WriteString(c, send); err != nil {
				return
			}
		}
		for i := 0; interval > 0 && i < len(send); i++ {
			if _, err := c.Write([]byte{send[i]}); err != nil {
				return
			}
			time.Sleep(interval)
		}
		io.Copy(io.Discard, c) //nolint:errcheck // until the server closes it
	}()
	return closed
}

// stormCall is one kind of request of the storm and the status it gets.
type stormCall struct {
	method, route, body string
	want                int
}

// apiStorm sends n requests from clients concurrent clients, a mix of
// vmm.ping, vm.info, a malformed vm.resize and an unknown route, and
// returns the first wrong answer.
func apiStorm(sock string, clients int, n int64) error {
	mix := []stormCall{
		{"GET", "vmm.ping", "", 200},
		{"GET", "vm.info", "", 200},
		{"PUT", "vm.resize", `{"desired_vcpus":`, 400},
		{"GET", "no.such.route", "", 404},
	}
	var next atomic.Int64
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := socketHTTPClient(sock)
			defer hc.CloseIdleConnections()
			for i := next.Add(1); i <= n; i = next.Add(1) {
				c := mix[i%int64(len(mix))]
				var body io.Reader
				if c.body != "" {
					body = strings.NewReader(c.body)
				}
				req, err := http.NewRequest(c.method, "http://localhost/api/v1/"+c.route, body)
				if err != nil {
					errs <- err
					return
				}
				resp, err := hc.Do(req)
				if err != nil {
					errs <- fmt.Errorf("request %d (%s %s): %w", i, c.method, c.route, err)
					return
				}
				io.Copy(io.Discard, resp.Body) //nolint:errcheck // only the status counts
				resp.Body.Close()
				if resp.StatusCode != c.want {
					errs <- fmt.Errorf("request %d (%s %s): status %d, want %d", i, c.method, c.route, resp.StatusCode, c.want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

var _ = Describe("the API under hostile clients", Label("api", "faults"), func() {
	It("answers 64 concurrent clients' thousands of requests among slow and half-open connections, and the VM is unharmed", func(ctx SpecContext) {
		m := startGuest(ctx, "api-storm", smallGuestConfig())
		Expect(m.WaitReady(ctx)).To(Succeed())
		sock := m.SocketPath()

		By("slow clients (a byte a second) and half-open connections hold connections")
		var held []<-chan struct{}
		for range 8 {
			held = append(held, holdConn(sock, "GET /api/v1/vm.info HTTP/1.1\r\nHost: localhost\r\n\r\n", time.Second))
		}
		for i := range 24 {
			switch i % 3 {
			case 0: // nothing sent
				held = append(held, holdConn(sock, "", 0))
			case 1: // the headers, never the body they announce
				held = append(held, holdConn(sock, "PUT /api/v1/vm.resize HTTP/1.1\r\nHost: x\r\nContent-Length: 64\r\n\r\n{", 0))
			case 2: // half a request line
				held = append(held, holdConn(sock, "GET /api/v1/vm.in", 0))
			}
		}

		By(fmt.Sprintf("64 clients send %d requests, each answered right", stormRequests()))
		Expect(apiStorm(sock, 64, stormRequests())).To(Succeed(), "vmm log:\n%s", m.VmmLog())

		By("the server's timeouts closed every slow and half-open connection")
		for i, c := range held {
			Eventually(c).WithTimeout(2*time.Minute).Should(BeClosed(), "held connection %d", i)
		}

		By("the VM is unharmed: vm.info says Running with its 2 vCPUs, the guest answers")
		info, err := m.Info(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(info.State).To(Equal(vm.StateRunning))
		Expect(info.ActiveVCPUs).To(Equal(2))
		Expect(sh(ctx, m, "cat /sys/devices/system/cpu/online")).To(Equal("0-1"))
		Expect(sh(ctx, m, "echo alive")).To(Equal("alive"))

		By("no handler panicked: a body cut off by the client or its deadline is a read error, not a panic")
		Expect(m.VmmLog()).NotTo(ContainSubstring("handler panic"))
	}, SpecTimeout(bootTimeout+15*time.Minute))

	It("leaves a socket after SIGKILL that a new vmm on the same path takes at once", func(ctx SpecContext) {
		m := startGuest(ctx, "api-kill9", smallGuestConfig())
		Expect(m.WaitReady(ctx)).To(Succeed())
		sock := m.SocketPath()
		Expect(syscall.Kill(m.Pid(), syscall.SIGKILL)).To(Succeed())
		_, err := m.Wait(ctx)
		Expect(err).NotTo(HaveOccurred())
		fi, err := os.Lstat(sock)
		Expect(err).NotTo(HaveOccurred(), "the killed vmm's socket")
		Expect(fi.Mode().Type()).To(Equal(os.ModeSocket))
		_, err = net.Dial("unix", sock)
		Expect(errors.Is(err, syscall.ECONNREFUSED)).To(BeTrue(), "nothing listens on the stale socket: %v", err)

		v := startAPIVMM(sock)
		v.waitAPI()
		Expect(v.stderr.String()).NotTo(ContainSubstring("another process"), v.logs())
	}, SpecTimeout(bootTimeout+2*time.Minute))
})

// guestIsUnharmed checks that the vmm still runs the VM and that the guest
// answers.
func guestIsUnharmed(ctx context.Context, m *guest.Machine) {
	GinkgoHelper()
	Expect(m.Exited()).NotTo(BeClosed(), "the vmm exited; its log:\n%s", m.VmmLog())
	info, err := m.Info(ctx)
	Expect(err).NotTo(HaveOccurred(), "vm.info; vmm log:\n%s", m.VmmLog())
	Expect(info.State).To(Equal(vm.StateRunning))
	Expect(sh(ctx, m, "echo alive")).To(Equal("alive"))
}
