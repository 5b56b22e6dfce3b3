package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vmmdev/vmm/bench"
	"github.com/vmmdev/vmm/guest"
	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/config"
)

// The virtio-mem benchmark: vmm and QEMU (q35, virtio-mem-pci with 2 MiB
// blocks) take turns on fresh guests of 1 GiB with 8 GiB of virtio-mem
// space: +2 GiB (request to MemTotal grown), then -2 GiB (request to
// MemTotal back), after the guest touched the 2 GiB; the VMM's RSS before
// and after the shrink. Its rows sit beside the hot plug benchmark's ACPI
// "memory hot add 2G" in the same report.

// memGuest is what the virtio-mem benchmark needs from a VMM.
type memGuest interface {
	name() string
	pid() int
	sh(ctx context.Context, cmd string) string
	memTotal(ctx context.Context) (uint64, error)
	// plug asks the virtio-mem device for n bytes plugged.
	plug(ctx context.Context, n uint64)
	stop()
}

var _ = Describe("virtio-mem beside QEMU", Label("benchmark"), Serial, func() {
	It("reports +2 GiB and -2 GiB through virtio-mem", func(ctx SpecContext) {
		runs := benchRuns(3)
		qemu := os.Getenv("VMM_QEMU")
		starters := []func(context.Context) memGuest{startVmmMemBench}
		if qemu != "" {
			starters = append(starters, func(ctx context.Context) memGuest { return startQEMUMemBench(ctx, qemu) })
		}
		failed := 0
		for i := range runs {
			for _, start := range starters {
				var g memGuest
				err := InterceptGomegaFailure(func() {
					g = start(ctx)
					measureVirtioMem(ctx, g)
				})
				who := "?"
				if g != nil {
					who = g.name()
					g.stop()
				}
				if err != nil {
					failed++
					GinkgoWriter.Printf("BENCH virtio-mem run %d of %d FAILED for %s: %v\n", i+1, runs, who, err)
				}
			}
		}
		Expect(failed).To(BeNumerically("<", runs*len(starters)), "every run failed")
	}, SpecTimeout(30*time.Minute))
})

// measureVirtioMem takes one run's measurements on a booted guest.
func measureVirtioMem(ctx context.Context, g memGuest) {
	GinkgoHelper()
	who := g.name()
	waitMemTotal := func(cond func(uint64) bool, what string) {
		GinkgoHelper()
		Eventually(func(ctx context.Context) uint64 { n, _ := g.memTotal(ctx); return n }).WithContext(ctx).
			WithTimeout(5*time.Minute).WithPolling(20*time.Millisecond).Should(Satisfy(cond), "%s: %s", who, what)
	}
	before, err := g.memTotal(ctx)
	Expect(err).NotTo(HaveOccurred(), "%s: MemTotal", who)
	t0 := time.Now()
	g.plug(ctx, 2*gib)
	waitMemTotal(func(n uint64) bool { return n >= before+2*gib*9/10 }, "MemTotal after +2G")
	emitDuration("virtio-mem +2G: request to MemTotal grown", who, time.Since(t0))

	g.sh(ctx, "mount -o remount,size=2500M /tmp")
	g.sh(ctx, "dd if=/dev/zero of=/tmp/x bs=1M count=1800 2>/dev/null; rm /tmp/x")
	rss, _, err := rssSplit(g.pid())
	Expect(err).NotTo(HaveOccurred())
	emit("VMM RSS before the virtio-mem -2G (guest touched 1.8G)", "MiB", who, float64(rss)/(1<<20))
	t0 = time.Now()
	g.plug(ctx, 0)
	waitMemTotal(func(n uint64) bool { return n <= before+64*mib }, "MemTotal after -2G")
	emitDuration("virtio-mem -2G: request to MemTotal back", who, time.Since(t0))
	rss, _, err = rssSplit(g.pid())
	Expect(err).NotTo(HaveOccurred())
	emit("VMM RSS after the virtio-mem -2G", "MiB", who, float64(rss)/(1<<20))
}

// vmmMemBench is vmm with a virtio-mem device.
type vmmMemBench struct{ vmmBench }

func startVmmMemBench(ctx context.Context) memGuest {
	GinkgoHelper()
	cfg := config.Default()
	cfg.CPUs = config.CPUs{BootVCPUs: benchBootVCPUs, MaxVCPUs: benchBootVCPUs}
	cfg.Memory = config.Memory{Size: benchRAM, HotplugMethod: config.HotplugVirtioMem, HotplugSize: benchHotplug}
	m, err := guest.Start(ctx, cfg, guest.Options{Name: "bench-vmm-virtio-mem"})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { _ = m.Stop() })
	Expect(m.WaitReady(ctx)).To(Succeed())
	return &vmmMemBench{vmmBench{m: m}}
}

func (v *vmmMemBench) plug(ctx context.Context, n uint64) {
	GinkgoHelper()
	want := int64(benchRAM + n)
	Expect(v.m.Resize(ctx, vm.ResizeRequest{DesiredRAM: &want})).To(Succeed())
}

// qemuMemBench is QEMU q35 with a virtio-mem-pci device, resized through
// QMP's qom-set of requested-size.
type qemuMemBench struct{ qemuBench }

func startQEMUMemBench(ctx context.Context, qemu string) memGuest {
	GinkgoHelper()
	dir, err := os.MkdirTemp("", "vmm-bench-qemu-")
	Expect(err).NotTo(HaveOccurred())
	sock := filepath.Join(dir, "qmp.sock")
	q := &qemuMemBench{qemuBench{dir: dir}}
	DeferCleanup(q.stop)
	q.qemuGuest = startQEMU(ctx, qemu, "-accel", "kvm", "-M", "q35", "-cpu", "host",
		"-smp", fmt.Sprint(benchBootVCPUs),
		"-m", fmt.Sprintf("%dM,maxmem=%dM", benchRAM>>20, (benchRAM+benchHotplug)>>20),
		"-object", fmt.Sprintf("memory-backend-ram,id=vmem0,size=%dM,reserve=off", benchHotplug>>20),
		"-device", "virtio-mem-pci,id=vm0,memdev=vmem0,block-size=2M,requested-size=0",
		"-qmp", "unix:"+sock+",server=on,wait=off")
	q.qmp, err = dialQMP(sock)
	Expect(err).NotTo(HaveOccurred())
	return q
}

func (q *qemuMemBench) name() string { return bench.QEMU }

func (q *qemuMemBench) plug(_ context.Context, n uint64) {
	GinkgoHelper()
	Expect(q.qmp.do("qom-set", map[string]any{"path": "vm0", "property": "requested-size", "value": n})).To(Succeed())
}
