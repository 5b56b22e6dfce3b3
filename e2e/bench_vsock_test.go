package e2e

import (
	"context"
	"slices"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vmmdev/vmm/bench"
	"github.com/vmmdev/vmm/guest"
	"github.com/vmmdev/vmm/vm/config"
)

// The vsock benchmark: throughput of one stream each way through the
// hybrid vsock socket (the guest's end is vmm-agent send and recv), and
// the round trip of one guest command through the agent beside one typed
// into the serial console. vmm only: QEMU's vhost-vsock would need the
// KVM host to load vhost_vsock and a host end on AF_VSOCK, which this
// benchmark does not have yet.

// vsockBenchMiB is what each throughput sample moves.
const vsockBenchMiB = 32

// vsockRoundTrips is how many commands each round trip sample is the
// median of.
const vsockRoundTrips = 9

var _ = Describe("vsock throughput and the agent's round trip", Label("benchmark", "io", "vsock"), Serial, func() {
	It("reports vsock throughput both ways and an agent command's round trip beside the serial shell's", func(ctx SpecContext) {
		runs := benchRuns(3)
		ok := 0
		for i := range runs {
			err := InterceptGomegaFailure(func() { measureVsock(ctx) })
			if err != nil {
				GinkgoWriter.Printf("BENCH vsock run %d of %d FAILED: %v\n", i+1, runs, err)
				continue
			}
			ok++
		}
		Expect(ok).To(BeNumerically(">", 0), "every run failed")
	}, SpecTimeout(25*time.Minute))
})

// measureVsock takes one run's samples on a fresh guest.
func measureVsock(ctx context.Context) {
	GinkgoHelper()
	cfg := config.Default()
	cfg.CPUs = config.CPUs{BootVCPUs: 2, MaxVCPUs: 2}
	m, err := guest.Start(ctx, cfg, guest.Options{Name: "vmm-vsock", VmmLog: GinkgoWriter, Agent: true})
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = m.Stop() }()
	Expect(m.WaitReady(ctx)).To(Succeed())
	agentRun(ctx, m, "true") // the agent is up

	size := int64(vsockBenchMiB) << 20
	sums, out, took := guestToHost(ctx, m, 1, size)
	Expect(sums).To(Equal(patternSums(1, size)), "guest to host: %s", out)
	emit("vsock guest to host (one stream)", "MiB/s", bench.VMM, float64(vsockBenchMiB)/took.Seconds())
	out, took = hostToGuest(ctx, m, 1, size)
	Expect(sumLines(out)).To(Equal(patternSums(1, size)), "host to guest: %s", out)
	emit("vsock host to guest (one stream)", "MiB/s", bench.VMM, float64(vsockBenchMiB)/took.Seconds())

	emitDuration("guest command round trip: agent over vsock", bench.VMM,
		medianOf(vsockRoundTrips, func() error { _, _, err := m.Agent().Run(ctx, "true"); return err }))
	emitDuration("guest command round trip: serial shell", bench.VMM,
		medianOf(vsockRoundTrips, func() error { _, _, err := m.Shell().Run(ctx, "true"); return err }))
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
