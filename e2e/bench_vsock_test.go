package e2e

import (
	"context"
	"io"
	"os"
	"slices"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vmmdev/vmm/bench"
	"github.com/vmmdev/vmm/guest"
	"github.com/vmmdev/vmm/guest/agent"
	"github.com/vmmdev/vmm/vm/config"
)

// The vsock benchmark: throughput of one stream each way (the guest's end
// is vmm-agent send and recv) and the round trip of one guest command
// through the agent beside one typed into the serial console. vmm's host
// end is its hybrid vsock socket; QEMU's is vhost-vsock (q35,
// vhost-vsock-pci), reached with AF_VSOCK from the KVM host, which loads
// vhost_vsock for it. The same guest, agent and commands on both.

const (
	// vsockBenchMiB is what each throughput sample moves.
	vsockBenchMiB = 32
	// vsockRoundTrips is how many commands each round trip sample is the
	// median of.
	vsockRoundTrips = 9
	// vsockBenchCID is the guest's CID under QEMU (vmm's hybrid vsock
	// takes no host CID).
	vsockBenchCID = 3
)

// vsockBenchGuest is a booted guest with a vsock device and its agent.
type vsockBenchGuest struct {
	who    string
	ends   vsockEnds
	serial func(ctx context.Context, cmd string) error
	stop   func()
}

var _ = Describe("vsock throughput and the agent's round trip beside QEMU", Label("benchmark", "io", "vsock"), Serial, func() {
	It("reports vsock throughput both ways and an agent command's round trip beside the serial shell's", func(ctx SpecContext) {
		runs := benchRuns(3)
		starters := []func(context.Context) vsockBenchGuest{startVmmVsockBench}
		if qemu := os.Getenv("VMM_QEMU"); qemu != "" {
			if _, err := os.Stat("/dev/vhost-vsock"); err != nil {
				GinkgoWriter.Printf("BENCH vsock: no QEMU samples: %v (is vhost_vsock loaded?)\n", err)
			} else {
				starters = append(starters, func(ctx context.Context) vsockBenchGuest { return startQEMUVsockBench(ctx, qemu) })
			}
		}
		ok := 0
		for i := range runs {
			for _, start := range starters {
				var g vsockBenchGuest
				err := InterceptGomegaFailure(func() {
					g = start(ctx)
					measureVsock(ctx, g)
				})
				if g.stop != nil {
					g.stop()
				}
				if err != nil {
					GinkgoWriter.Printf("BENCH vsock run %d of %d FAILED for %s: %v\n", i+1, runs, g.who, err)
					continue
				}
				ok++
			}
		}
		Expect(ok).To(BeNumerically(">", 0), "every run failed")
	}, SpecTimeout(25*time.Minute))
})

// measureVsock takes one run's samples.
func measureVsock(ctx context.Context, g vsockBenchGuest) {
	GinkgoHelper()
	agentRun(ctx, g.ends, "true") // the agent is up
	size := int64(vsockBenchMiB) << 20
	sums, out, took := guestToHost(ctx, g.ends, 1, size)
	Expect(sums).To(Equal(patternSums(1, size)), "guest to host: %s", out)
	emit("vsock guest to host (one stream)", "MiB/s", g.who, float64(vsockBenchMiB)/took.Seconds())
	out, took = hostToGuest(ctx, g.ends, 1, size)
	Expect(sumLines(out)).To(Equal(patternSums(1, size)), "host to guest: %s", out)
	emit("vsock host to guest (one stream)", "MiB/s", g.who, float64(vsockBenchMiB)/took.Seconds())
	emitDuration("guest command round trip: agent over vsock", g.who, medianOf(vsockRoundTrips, func() error {
		conn, err := g.ends.agent(ctx)
		if err == nil {
			_, _, err = agent.RunOn(ctx, conn, "true")
		}
		return err
	}))
	emitDuration("guest command round trip: serial shell", g.who,
		medianOf(vsockRoundTrips, func() error { return g.serial(ctx, "true") }))
}

// startVmmVsockBench boots vmm's guest with a vsock device.
func startVmmVsockBench(ctx context.Context) vsockBenchGuest {
	GinkgoHelper()
	cfg := config.Default()
	cfg.CPUs = config.CPUs{BootVCPUs: 2, MaxVCPUs: 2}
	m, err := guest.Start(ctx, cfg, guest.Options{Name: "vmm-vsock", VmmLog: GinkgoWriter, Agent: true})
	Expect(err).NotTo(HaveOccurred())
	g := vsockBenchGuest{who: bench.VMM, ends: hybridEnds(m), stop: func() { _ = m.Stop() },
		serial: func(ctx context.Context, cmd string) error { _, _, err := m.Shell().Run(ctx, cmd); return err }}
	Expect(m.WaitReady(ctx)).To(Succeed())
	return g
}

// startQEMUVsockBench boots QEMU's guest (q35) with vhost-vsock-pci.
func startQEMUVsockBench(ctx context.Context, qemu string) vsockBenchGuest {
	GinkgoHelper()
	q := startQEMU(ctx, qemu, "-accel", "kvm", "-M", "q35", "-cpu", "host", "-smp", "2", "-m", "512",
		"-device", "vhost-vsock-pci,guest-cid=3,romfile=")
	return vsockBenchGuest{who: bench.QEMU, ends: vhostEnds(vsockBenchCID), stop: q.kill,
		serial: func(ctx context.Context, cmd string) error { _, _, err := q.shell.Run(ctx, cmd); return err }}
}

// vhostEnds reaches the guest of CID cid with AF_VSOCK: QEMU's
// vhost-vsock.
func vhostEnds(cid uint32) vsockEnds {
	return vsockEnds{
		agent: func(context.Context) (io.ReadWriteCloser, error) { return agent.DialVsock(cid, agent.Port) },
		dial:  func(_ context.Context, port uint32) (halfConn, error) { return agent.DialVsock(cid, port) },
		listen: func(port uint32) (agent.Listener, error) {
			return agent.ListenVsock(port)
		},
	}
}

// medianOf times f n times and returns the median.
func medianOf(n int, f func() error) time.Duration {
	GinkgoHelper()
	ds := make([]time.Duration, n)
	for i := range ds {
		t0 := time.Now()
		Expect(f()).To(Succeed())
		ds[i] = time.Since(t0)
	}
	slices.Sort(ds)
	return ds[n/2]
}
