package e2e

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vmmdev/vmm/vm/config"
)

// What the guest does with the RAM it is asked to give or take: a guest
// whose virtio-mem driver is gone, a shrink it can honour only in part,
// and a balloon that deflates rather than let the OOM killer run.
var _ = Describe("RAM the guest does not give as asked", Label("devices", "memory"), func() {
	It("shows a virtio-mem guest without its driver and a shrink the guest honours in part as the RAM the guest has", func(ctx SpecContext) {
		const boot = 512 * mib
		cfg := bootConfig()
		cfg.CPUs = config.CPUs{BootVCPUs: 2, MaxVCPUs: 2}
		cfg.Memory = config.Memory{Size: boot, HotplugMethod: config.HotplugVirtioMem, HotplugSize: 2 * gib}
		m := startGuest(ctx, "virtio-mem-guest", cfg)
		Expect(m.WaitReady(ctx)).To(Succeed())
		module := sh(ctx, m, "grep /virtio_mem.ko /etc/modules")

		By("a guest without the virtio_mem driver: the resize is taken, nothing is plugged, the VM runs on")
		sh(ctx, m, "rmmod virtio_mem")
		resizeRAM(ctx, m, boot+gib)
		Consistently(func() uint64 { info, _ := m.Info(ctx); return info.MemoryActualSize }).WithContext(ctx).
			WithTimeout(10*time.Second).WithPolling(2*time.Second).Should(Equal(boot), "memory_actual_size without the driver")
		info, err := m.Info(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(info.Config.Memory.HotpluggedSize).To(Equal(gib), "hotplugged_size: what was asked")
		total, err := m.MemTotal(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(total).To(BeNumerically("<=", boot), "the guest's MemTotal without the driver")

		By("the driver loaded again plugs what was asked")
		sh(ctx, m, "cd / && insmod "+module)
		expectActual(ctx, m, boot+gib, cmdTimeout)
		expectMemTotal(ctx, m, boot+gib, "with the driver back")

		By("a shrink the guest cannot honour whole: 1100 MiB in tmpfs and no swap")
		sh(ctx, m, "mount -o remount,size=1200M /tmp")
		shWithin(ctx, m, fillTimeout, "dd if=/dev/zero of=/tmp/x bs=1M count=1100 2>/dev/null")
		resizeRAM(ctx, m, boot)
		// The guest holds 1100 MiB it cannot drop: whatever it manages
		// to unplug, memory_actual_size stays above that.
		var actual uint64
		Consistently(func() uint64 { info, _ := m.Info(ctx); actual = info.MemoryActualSize; return actual }).WithContext(ctx).
			WithTimeout(30*time.Second).WithPolling(3*time.Second).Should(BeNumerically(">=", 1100*mib), "memory_actual_size")
		info, err = m.Info(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(info.Config.Memory.HotpluggedSize).To(BeZero(), "hotplugged_size: the target")
		total, err = m.MemTotal(ctx)
		Expect(err).NotTo(HaveOccurred())
		GinkgoWriter.Printf("partial shrink: asked %d MiB, memory_actual_size %d MiB, guest MemTotal %d MiB\n", boot/mib, actual/mib, total/mib)
		Expect(total).To(BeNumerically(">=", 1100*mib), "the guest's MemTotal")
		Expect(sh(ctx, m, "echo alive")).To(Equal("alive"))

		By("freed, the memory goes: a new request makes the driver try again")
		sh(ctx, m, "rm /tmp/x")
		resizeRAM(ctx, m, boot+2*mib)
		resizeRAM(ctx, m, boot)
		expectActual(ctx, m, boot, 5*time.Minute)
	}, SpecTimeout(bootTimeout+fillTimeout+12*cmdTimeout))

	It("deflates the balloon rather than kill a process when the guest runs out of memory (deflate_on_oom)", func(ctx SpecContext) {
		const balloon = 384 * mib
		cfg := bootConfig()
		cfg.CPUs = config.CPUs{BootVCPUs: 2, MaxVCPUs: 2}
		cfg.Memory.Size = 512 * mib
		cfg.Balloon = &config.Balloon{DeflateOnOOM: true}
		m := startGuest(ctx, "balloon-oom", cfg)
		Expect(m.WaitReady(ctx)).To(Succeed())
		resizeBalloon(ctx, m, balloon)
		Eventually(func() uint64 { return balloonActual(ctx, m) }).WithContext(ctx).WithTimeout(cmdTimeout).
			WithPolling(time.Second).Should(Equal(balloon), "balloon_actual_size")
		free := sh(ctx, m, "grep MemAvailable /proc/meminfo")
		GinkgoWriter.Printf("balloon at %d MiB: %s\n", balloon/mib, free)

		By("the guest writes 256 MiB to tmpfs, more than it has left")
		sh(ctx, m, "mount -o remount,size=400M /tmp")
		shWithin(ctx, m, fillTimeout, "dd if=/dev/zero of=/tmp/x bs=1M count=256 2>/dev/null")
		Expect(sh(ctx, m, "du -m /tmp/x | cut -f1")).To(Equal("256"), "MiB in tmpfs")
		Expect(sh(ctx, m, "dmesg | grep -c -i -e 'killed process' -e 'out of memory' || true")).To(Equal("0"), "OOM kills")
		Expect(sh(ctx, m, "echo alive")).To(Equal("alive"))
		var now uint64
		Eventually(func() uint64 { now = balloonActual(ctx, m); return now }).WithContext(ctx).WithTimeout(cmdTimeout).
			WithPolling(time.Second).Should(BeNumerically("<=", balloon-128*mib), "balloon_actual_size after the guest ran short")
		info, err := m.Info(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(info.Config.Balloon.Size).To(Equal(balloon), "balloon.size: the target stays")
		Expect(info.MemoryActualSize).To(Equal(512*mib-now), "memory_actual_size")
		GinkgoWriter.Printf("balloon deflated on OOM from %d MiB to %d MiB\n", balloon/mib, now/mib)
	}, SpecTimeout(bootTimeout+fillTimeout+6*cmdTimeout))
})
