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
	// A virtio-mem guest without its driver, and a shrink it honours in
	// part: scenarios/memory_virtio_mem_guest.lua.
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
