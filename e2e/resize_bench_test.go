package e2e

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gmeasure"

	"vmm/vmm"
)

// resizeBenchRounds is how many 2 -> 8 -> 2 rounds the resize benchmark
// measures.
const resizeBenchRounds = 5

// The resize latency benchmark: it reports, never fails on time. Grow is
// measured from the resize request to the guest listing every CPU in
// /sys/devices/system/cpu/present (polled through the serial shell, so an
// upper bound); shrink from the request to the eject being complete (the
// vmm's active_vcpus and the guest's present list both back at 2).
var _ = Describe("vCPU resize latency", Label("benchmark", "cpu"), Serial, func() {
	It("is reported for grow (request to present) and shrink (request to ejected)", func(ctx SpecContext) {
		cfg := vmm.DefaultConfig()
		cfg.Cpus = vmm.CpusConfig{BootVcpus: 2, MaxVcpus: 8}
		cfg.Memory.Size = 512 << 20
		m := startGuest(ctx, "resize-bench", cfg)
		e := gmeasure.NewExperiment("vCPU resize 2 <-> 8")
		AddReportEntry(e.Name, e)
		n := func(k int64) vmm.ResizeRequest { return vmm.ResizeRequest{DesiredVcpus: &k} }
		// waitPresent polls the guest until its present list is want.
		waitPresent := func(want string) {
			GinkgoHelper()
			Eventually(func(ctx context.Context) string {
				return sh(ctx, m, "cat /sys/devices/system/cpu/present")
			}).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(50 * time.Millisecond).Should(Equal(want))
		}
		for range resizeBenchRounds {
			t0 := time.Now()
			Expect(m.Resize(ctx, n(8))).To(Succeed())
			waitPresent("0-7")
			e.RecordDuration("grow 2 -> 8: request to present in the guest", time.Since(t0))
			sh(ctx, m, "echo 1 | tee /sys/devices/system/cpu/cpu[2-7]/online >/dev/null")

			t0 = time.Now()
			Expect(m.Resize(ctx, n(2))).To(Succeed())
			Eventually(func(ctx context.Context) int {
				info, err := m.Info(ctx)
				Expect(err).NotTo(HaveOccurred())
				return info.ActiveVcpus
			}).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(10 * time.Millisecond).Should(Equal(2))
			e.RecordDuration("shrink 8 -> 2: request to eject complete (vmm)", time.Since(t0))
			waitPresent("0-1")
			e.RecordDuration("shrink 8 -> 2: request to present in the guest", time.Since(t0))
			Expect(vcpuThreads(m.Pid())).To(Equal([]string{"vcpu0", "vcpu1"}), "vcpuN threads")
		}
		for _, name := range []string{
			"grow 2 -> 8: request to present in the guest",
			"shrink 8 -> 2: request to eject complete (vmm)",
			"shrink 8 -> 2: request to present in the guest",
		} {
			s := e.Get(name).Stats()
			GinkgoWriter.Printf("BENCH %-48s median %6.0f ms, max %6.0f ms over %d\n", name,
				float64(s.DurationFor(gmeasure.StatMedian))/1e6, float64(s.DurationFor(gmeasure.StatMax))/1e6, s.N)
		}
	}, SpecTimeout(10*time.Minute))
})
