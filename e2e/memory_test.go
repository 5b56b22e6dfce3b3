package e2e

import (
	"context"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vmmdev/vmm/guest"
	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/config"
)

// fillTimeout bounds a guest command that writes gigabytes to tmpfs, far
// slower under emulation than the other commands.
const fillTimeout = 10 * time.Minute

const (
	mib = uint64(1) << 20
	gib = uint64(1) << 30
)

// shWithin is sh with its own timeout.
func shWithin(ctx context.Context, m *guest.Machine, timeout time.Duration, cmd string) string {
	GinkgoHelper()
	c, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, status, err := m.Sh(c, cmd)
	Expect(err).NotTo(HaveOccurred(), "guest command %q; console:\n%s", cmd, m.Console().Tail(40))
	Expect(status).To(Equal(0), "guest command %q: %s", cmd, out)
	return out
}

// expectMemTotal waits until the guest's MemTotal is 90% to 100% of n.
func expectMemTotal(ctx context.Context, m *guest.Machine, n uint64, what string) uint64 {
	GinkgoHelper()
	var got uint64
	Eventually(func() uint64 { got, _ = m.MemTotal(ctx); return got }).WithContext(ctx).WithTimeout(cmdTimeout).
		WithPolling(time.Second).Should(And(BeNumerically(">=", 9*n/10), BeNumerically("<=", n)), what)
	GinkgoWriter.Printf("%s: MemTotal %d MiB\n", what, got/mib)
	return got
}

// virtio-mem end to end (grown and shrunk live with the RSS checked, bad
// sizes refused, kept across a reboot) is scenarios/memory_virtio_mem.lua.

// balloonActual is vm.info's balloon_actual_size.
func balloonActual(ctx context.Context, m *guest.Machine) uint64 {
	info, err := m.Info(ctx)
	if err != nil || info.BalloonActualSize == nil {
		return ^uint64(0)
	}
	return *info.BalloonActualSize
}

// resizeBalloon asks for desired_balloon=n and expects 204.
func resizeBalloon(ctx context.Context, m *guest.Machine, n uint64) {
	GinkgoHelper()
	b := int64(n)
	Expect(m.Resize(ctx, vm.ResizeRequest{DesiredBalloon: &b})).To(Succeed(), "desired_balloon %d MiB", n/mib)
}

// fillAndFree writes n MiB to the guest's tmpfs and deletes it: the guest's
// free memory is then memory the host backs.
func fillAndFree(ctx context.Context, m *guest.Machine, n int) {
	GinkgoHelper()
	shWithin(ctx, m, fillTimeout, "dd if=/dev/zero of=/tmp/x bs=1M count="+strconv.Itoa(n)+" 2>/dev/null")
	sh(ctx, m, "rm /tmp/x")
}

// The virtio-balloon end to end: inflate and deflate from inside a guest.
var _ = Describe("the virtio-balloon", Label("devices", "memory"), func() {
	It("takes 512 MiB from the guest and gives them to the host, and deflates on request", func(ctx SpecContext) {
		cfg := bootConfig()
		cfg.CPUs = config.CPUs{BootVCPUs: 2, MaxVCPUs: 2}
		cfg.Balloon = &config.Balloon{}
		m := startGuest(ctx, "balloon", cfg)
		Expect(m.WaitReady(ctx)).To(Succeed())
		Expect(sh(ctx, m, "ls /sys/bus/virtio/drivers")).To(ContainSubstring("virtio_balloon"), "the guest's virtio drivers")
		full := expectMemTotal(ctx, m, gib, "at boot")
		Expect(balloonActual(ctx, m)).To(BeZero(), "balloon_actual_size at boot")

		By("touching most of the guest's RAM, so that what the balloon takes is backed")
		sh(ctx, m, "mount -o remount,size=900M /tmp")
		fillAndFree(ctx, m, 768)
		before := rssKiB(m.Pid()) << 10

		By("inflating to 512 MiB")
		resizeBalloon(ctx, m, 512*mib)
		Eventually(func() uint64 { return balloonActual(ctx, m) }).WithContext(ctx).WithTimeout(cmdTimeout).
			WithPolling(time.Second).Should(Equal(512*mib), "balloon_actual_size")
		Eventually(func() uint64 { n, _ := m.MemTotal(ctx); return n }).WithContext(ctx).WithTimeout(cmdTimeout).
			Should(BeNumerically("<=", full-480*mib), "MemTotal with the balloon inflated, from %d", full)
		info, err := m.Info(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(info.MemoryActualSize).To(Equal(gib-512*mib), "memory_actual_size")
		Expect(info.Config.Balloon.Size).To(Equal(512*mib), "balloon.size")
		after := rssKiB(m.Pid()) << 10
		GinkgoWriter.Printf("vmm RSS %d MiB before the inflate, %d MiB after\n", before/mib, after/mib)
		Expect(after).To(BeNumerically("<=", before-384*mib), "the vmm's RSS (bytes) after the inflate, from %d", before)

		By("deflating")
		resizeBalloon(ctx, m, 0)
		Eventually(func() uint64 { return balloonActual(ctx, m) }).WithContext(ctx).WithTimeout(cmdTimeout).
			WithPolling(time.Second).Should(BeZero(), "balloon_actual_size after the deflate")
		expectMemTotal(ctx, m, gib, "after the deflate")
		fillAndFree(ctx, m, 640) // the pages given back are usable again

		By("refusing a balloon as large as the RAM")
		status, body, err := m.Request(ctx, "PUT", "vm.resize", []byte(`{"desired_balloon":`+strconv.FormatUint(gib, 10)+`}`))
		Expect(err).NotTo(HaveOccurred())
		Expect(status).To(Equal(400), "desired_balloon of all the RAM: %s", body)
	}, SpecTimeout(bootTimeout+3*fillTimeout+6*cmdTimeout))

	It("gives the host back the pages of a freed 1 GiB file through free page reporting", func(ctx SpecContext) {
		cfg := bootConfig()
		cfg.CPUs = config.CPUs{BootVCPUs: 2, MaxVCPUs: 2}
		cfg.Memory.Size = 2 * gib
		cfg.Balloon = &config.Balloon{DeflateOnOOM: true, FreePageReporting: true}
		m := startGuest(ctx, "balloon-reporting", cfg)
		Expect(m.WaitReady(ctx)).To(Succeed())
		sh(ctx, m, "mount -o remount,size=1200M /tmp")
		shWithin(ctx, m, fillTimeout, "dd if=/dev/zero of=/tmp/x bs=1M count=1024 2>/dev/null")
		full := rssKiB(m.Pid()) << 10
		Expect(full).To(BeNumerically(">=", gib), "the vmm's RSS with the 1 GiB file")
		sh(ctx, m, "rm /tmp/x")
		var now uint64
		// Linux reports a zone's free pages a part at a time, 2 s apart.
		Eventually(func() uint64 { now = rssKiB(m.Pid()) << 10; return now }).WithContext(ctx).WithTimeout(2*cmdTimeout).
			WithPolling(2*time.Second).Should(BeNumerically("<=", full-768*mib), "the vmm's RSS after the file was freed, from %d", full)
		GinkgoWriter.Printf("vmm RSS %d MiB with the file, %d MiB after it was freed\n", full/mib, now/mib)
		Expect(balloonActual(ctx, m)).To(BeZero(), "balloon_actual_size: reporting inflates nothing")
	}, SpecTimeout(bootTimeout+fillTimeout+5*cmdTimeout))
})
