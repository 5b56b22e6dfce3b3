package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vmmdev/vmm/guest"
	"github.com/vmmdev/vmm/guest/agent"
	"github.com/vmmdev/vmm/vm/config"
)

// virtio-vsock as the guest sees it: its agent answering through the
// vmm's hybrid vsock socket, bulk streams both ways, many connections at
// once, guest connections reaching PATH_P, and bad host clients refused
// while the VM carries on. The guest's end of the streams is the agent's
// own send and recv subcommands (busybox's nc has no vsock).

// Ports of the vsock specs.
const (
	vsockGuestPort = 5000 // a guest listener (vmm-agent recv)
	vsockHostPort  = 6000 // a host listener, SOCKET_6000
	vsockDeadPort  = 6001 // a host port nobody listens on
	vsockConns     = 64
	vsockConnBytes = 256 << 10
)

// vsockMiB is how much each bulk spec moves each way: VMM_VSOCK_MIB, 16
// by default (make stress: 100).
func vsockMiB() int {
	if n, err := strconv.Atoi(os.Getenv("VMM_VSOCK_MIB")); err == nil && n >= 1 {
		return n
	}
	return 16
}

// vsockGuest starts a guest with a vsock device and its agent.
func vsockGuest(ctx SpecContext, name string) *guest.Machine {
	GinkgoHelper()
	cfg := config.Default()
	cfg.CPUs = config.CPUs{BootVCPUs: 2, MaxVCPUs: 2}
	cfg.Vsock = &config.Vsock{CID: guest.DefaultAgentCID} // guest.Start places the socket
	m := startGuest(ctx, name, cfg)
	Expect(m.WaitReady(ctx)).To(Succeed())
	return m
}

// vsockEnds is the host's end of a guest's vsock: vmm's hybrid socket
// (hybridEnds), or AF_VSOCK in the KVM host for QEMU's vhost-vsock
// (vhostEnds, in the benchmark).
type vsockEnds struct {
	// agent connects to the guest agent.
	agent func(ctx context.Context) (io.ReadWriteCloser, error)
	// dial connects to a guest port once; it fails while nobody listens.
	dial func(ctx context.Context, port uint32) (halfConn, error)
	// listen takes the guest's connections to the host's port.
	listen func(port uint32) (agent.Listener, error)
}

// halfConn is a stream whose sending side closes alone.
type halfConn interface {
	io.ReadWriteCloser
	CloseWrite() error
}

// hybridEnds reaches m's guest through vmm's hybrid vsock socket.
func hybridEnds(m *guest.Machine) vsockEnds {
	return vsockEnds{
		agent: func(ctx context.Context) (io.ReadWriteCloser, error) { return m.Agent().Dial(ctx) },
		dial: func(ctx context.Context, port uint32) (halfConn, error) {
			return agent.DialHybrid(ctx, m.VsockSocket(), port)
		},
		listen: func(port uint32) (agent.Listener, error) {
			ln, err := net.Listen("unix", m.VsockSocket()+"_"+strconv.FormatUint(uint64(port), 10))
			return unixAcceptor{ln}, err
		},
	}
}

// unixAcceptor is a unix listener as an agent.Listener.
type unixAcceptor struct{ net.Listener }

func (u unixAcceptor) Accept() (io.ReadWriteCloser, error) { return u.Listener.Accept() }

// agentRun runs cmd through the agent alone (never the console), waiting
// for the agent to answer.
func agentRun(ctx context.Context, e vsockEnds, cmd string) (string, int) {
	GinkgoHelper()
	c, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	var out string
	var status int
	Eventually(func() error {
		conn, err := e.agent(c)
		if err != nil {
			return err
		}
		out, status, err = agent.RunOn(c, conn, cmd)
		return err
	}).WithContext(c).WithTimeout(30*time.Second).WithPolling(200*time.Millisecond).Should(Succeed(), "the agent did not answer")
	return out, status
}

// agentAsync runs cmd through the agent in the background; the channel
// gets its output, or what went wrong. The agent's connection is dialled
// again while it fails, for up to agentDialPatience, as agentRun does (a
// handshake slowed by the other spec's guest beside this one, a listener
// not up yet); the command itself runs once.
func agentAsync(ctx context.Context, e vsockEnds, cmd string) <-chan string {
	res := make(chan string, 1)
	go func() {
		defer GinkgoRecover()
		conn, err := e.agent(ctx)
		for deadline := time.Now().Add(agentDialPatience); err != nil && ctx.Err() == nil && time.Now().Before(deadline); {
			time.Sleep(200 * time.Millisecond)
			conn, err = e.agent(ctx)
		}
		out, status := "", 0
		if err == nil {
			out, status, err = agent.RunOn(ctx, conn, cmd)
		}
		if err != nil || status != 0 {
			out = fmt.Sprintf("FAILED status %d: %v: %s", status, err, out)
		}
		res <- out
	}()
	return res
}

// agentDialPatience is how long agentAsync dials the agent again.
const agentDialPatience = 30 * time.Second

// dialGuest connects to a guest port, retrying while the guest's
// listener is not up yet; the listener is the command whose agentAsync
// channel is ended, and a command that ends first fails the spec at once
// with its output, rather than a minute of refused connections.
func dialGuest(ctx context.Context, e vsockEnds, port uint32, ended <-chan string) halfConn {
	GinkgoHelper()
	var c halfConn
	Eventually(func() error {
		select {
		case out := <-ended:
			return StopTrying(fmt.Sprintf("the guest's listener on port %d ended before it took the connection: %s", port, out))
		default:
		}
		var err error
		c, err = e.dial(ctx, port)
		return err
	}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
	return c
}

// sumLines are the "bytes=N sha256=X" parts of vmm-agent send or recv's
// per-connection lines, sorted.
func sumLines(out string) []string {
	var sums []string
	for _, l := range strings.Split(out, "\n") {
		if _, rest, ok := strings.Cut(l, " "); ok && strings.HasPrefix(l, "conn=") {
			sums = append(sums, rest)
		}
	}
	sort.Strings(sums)
	return sums
}

// patternSums are the sums of Pattern(1..n, size), sorted.
func patternSums(n int, size int64) []string {
	var sums []string
	for i := range n {
		sums = append(sums, agent.PatternSum(uint64(i+1), size))
	}
	sort.Strings(sums)
	return sums
}

// hostToGuest sends Pattern(1..conns, size) on conns connections to a
// guest's "vmm-agent recv" and returns what it reported and how long the
// transfer took.
func hostToGuest(ctx context.Context, e vsockEnds, conns int, size int64) (string, time.Duration) {
	GinkgoHelper()
	res := agentAsync(ctx, e, fmt.Sprintf("vmm-agent recv -conns %d %d", conns, vsockGuestPort))
	t0 := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		c := dialGuest(ctx, e, vsockGuestPort, res)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			if _, err := io.Copy(c, agent.Pattern(uint64(i+1), size)); err != nil {
				errs <- fmt.Errorf("conn %d: %w", i+1, err)
				return
			}
			errs <- c.CloseWrite()
		}()
	}
	var out string
	Eventually(res).WithTimeout(10*time.Minute).Should(Receive(&out), "vmm-agent recv did not finish")
	took := time.Since(t0)
	wg.Wait()
	close(errs)
	for err := range errs {
		Expect(err).NotTo(HaveOccurred())
	}
	return out, took
}

// guestToHost has the guest's "vmm-agent send" connect conns times to
// the host's port vsockHostPort and send Pattern(1..conns, size); it
// returns the host's sums of what arrived, the guest's report and how
// long that took.
func guestToHost(ctx context.Context, e vsockEnds, conns int, size int64) ([]string, string, time.Duration) {
	GinkgoHelper()
	ln, err := e.listen(vsockHostPort)
	Expect(err).NotTo(HaveOccurred())
	defer ln.Close()
	var mu sync.Mutex
	var sums []string
	var wg sync.WaitGroup
	wg.Add(conns)
	go func() {
		for range conns {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer wg.Done()
				defer c.Close()
				s := agent.NewSummer()
				_, err := io.Copy(s, c)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					sums = append(sums, "error: "+err.Error())
					return
				}
				sums = append(sums, s.String())
			}()
		}
	}()
	t0 := time.Now()
	out, status := agentRun(ctx, e, fmt.Sprintf("vmm-agent send -conns %d 2 %d %d", conns, vsockHostPort, size))
	took := time.Since(t0)
	Expect(status).To(Equal(0), "vmm-agent send: %s", out)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	sort.Strings(sums)
	return sums, out, took
}

var _ = Describe("virtio-vsock", Label("devices", "vsock"), Ordered, func() {
	var m *guest.Machine
	var e vsockEnds
	BeforeAll(func(ctx SpecContext) {
		m = vsockGuest(ctx, "vsock")
		e = hybridEnds(m)
	}, NodeTimeout(5*time.Minute))

	It("has the guest agent answer over vsock, several requests at once, faster than the serial console", func(ctx SpecContext) {
		out, status := agentRun(ctx, e, "cat /sys/bus/virtio/devices/*/device; ls /sys/module")
		Expect(status).To(Equal(0))
		Expect(out).To(ContainSubstring("0x0013"), "a virtio device of type 19 (vsock)")
		Expect(out).To(ContainSubstring("vmw_vsock_virtio_transport"))
		out, status = agentRun(ctx, e, "echo out; echo err >&2; exit 3")
		Expect(out).To(Equal("out\nerr"))
		Expect(status).To(Equal(3))
		// Sh takes the agent when it answers: the same contract.
		out, status, err := m.Sh(ctx, "pwd; exit 4")
		Expect(err).NotTo(HaveOccurred())
		Expect([]any{out, status}).To(Equal([]any{"/root", 4}))
		// Requests run at once: four 2-second sleeps in well under 8 s.
		t0 := time.Now()
		var res []<-chan string
		for i := range 4 {
			res = append(res, agentAsync(ctx, e, fmt.Sprintf("sleep 2; echo %d", i)))
		}
		for i, r := range res {
			Eventually(r).WithTimeout(time.Minute).Should(Receive(Equal(strconv.Itoa(i))))
		}
		Expect(time.Since(t0)).To(BeNumerically("<", 7*time.Second), "four sleeps of 2 s took %v", time.Since(t0))
		// One round trip each way of getting into the guest.
		timed := func(run func() error) time.Duration {
			t0 := time.Now()
			Expect(run()).To(Succeed())
			return time.Since(t0)
		}
		viaAgent := timed(func() error { _, _, err := m.Agent().Run(ctx, "true"); return err })
		viaSerial := timed(func() error { _, _, err := m.Shell().Run(ctx, "true"); return err })
		GinkgoWriter.Printf("VSOCK round trip of one command: agent %v, serial shell %v\n", viaAgent, viaSerial)
	}, SpecTimeout(5*time.Minute))

	It(fmt.Sprintf("moves %d MiB each way with matching checksums", vsockMiB()), func(ctx SpecContext) {
		size := int64(vsockMiB()) << 20
		out, took := hostToGuest(ctx, e, 1, size)
		Expect(sumLines(out)).To(Equal(patternSums(1, size)), "host to guest: %s", out)
		GinkgoWriter.Printf("VSOCK host to guest: %d MiB in %v (%.1f MiB/s)\n", size>>20, took, float64(size>>20)/took.Seconds())
		sums, out, took := guestToHost(ctx, e, 1, size)
		Expect(sums).To(Equal(patternSums(1, size)), "guest to host; the guest's report: %s", out)
		Expect(sumLines(out)).To(Equal(sums))
		GinkgoWriter.Printf("VSOCK guest to host: %d MiB in %v (%.1f MiB/s)\n", size>>20, took, float64(size>>20)/took.Seconds())
	}, SpecTimeout(15*time.Minute))

	It(fmt.Sprintf("carries %d connections at once both ways", vsockConns), func(ctx SpecContext) {
		out, _ := hostToGuest(ctx, e, vsockConns, vsockConnBytes)
		Expect(sumLines(out)).To(Equal(patternSums(vsockConns, vsockConnBytes)), "host to guest: %s", out)
		sums, out, _ := guestToHost(ctx, e, vsockConns, vsockConnBytes)
		Expect(sums).To(Equal(patternSums(vsockConns, vsockConnBytes)), "guest to host; the guest's report: %s", out)
	}, SpecTimeout(10*time.Minute))

	It("refuses a bad CONNECT line, a closed guest port and a closed host port with a log line, and carries on", func(ctx SpecContext) {
		for _, line := range []string{"HELLO\n", "CONNECT nine\n", "CONNECT 4294967296\n"} {
			c, err := net.Dial("unix", m.VsockSocket())
			Expect(err).NotTo(HaveOccurred())
			_, _ = c.Write([]byte(line))
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			n, err := c.Read(make([]byte, 16))
			Expect(n).To(BeZero())
			Expect(errors.Is(err, io.EOF)).To(BeTrue(), "%q: %v", line, err)
			c.Close()
		}
		_, err := agent.DialHybrid(ctx, m.VsockSocket(), 4444)
		Expect(err).To(MatchError(agent.ErrRefused), "a guest port nobody listens on")
		out, status := agentRun(ctx, e, fmt.Sprintf("vmm-agent send 2 %d 1K", vsockDeadPort))
		Expect(status).NotTo(Equal(0), "a host port nobody listens on: %s", out)
		Expect(out).To(MatchRegexp(`(?i)reset|refused`))
		Eventually(m.VmmLog).Should(And(
			ContainSubstring("bad handshake"),
			ContainSubstring("refused by the guest"),
			ContainSubstring("nobody listens on the host port")))
		out, _ = agentRun(ctx, e, "echo still here")
		Expect(out).To(Equal("still here"))
	}, SpecTimeout(5*time.Minute))
})
