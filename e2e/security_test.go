package e2e

import (
	"fmt"
	"os"
	"strings"
	"syscall"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vmmdev/vmm/guest"
	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/seccomp"
	"github.com/vmmdev/vmm/vm/virtio"
)

// seccompThreads reads every thread of process pid (guest.Threads).
func seccompThreads(pid int) []guest.Thread {
	GinkgoHelper()
	out, err := guest.Threads(pid)
	Expect(err).NotTo(HaveOccurred())
	Expect(out).NotTo(BeEmpty(), "no threads for pid %d", pid)
	return out
}

// expectFiltered checks that every thread of pid runs under a seccomp
// filter: the process filter on each, one more on the vCPU threads
// (plugged or parked), on the virtio workers and on the main thread.
func expectFiltered(pid int) {
	GinkgoHelper()
	var vcpus, workers int
	for _, t := range seccompThreads(pid) {
		Expect(t.Seccomp).To(Equal(2), "Seccomp of thread %d (%s)", t.TID, t.Name)
		want := 1
		switch {
		case vm.IsVCPUThread(t.Name):
			vcpus++
			want = 2
		case virtio.IsWorkerThread(t.Name):
			workers++
			want = 2
		case strings.HasSuffix(t.Name, "-parked"): // an unplugged vCPU's
			want = 2
		case t.TID == pid:
			want = 2
		}
		Expect(t.SeccompFilters).To(Equal(want), "Seccomp_filters of thread %d (%s)", t.TID, t.Name)
	}
	Expect(vcpus).To(BeNumerically(">", 0), "no vCPU threads")
	Expect(workers).To(BeNumerically(">", 0), "no virtio worker threads")
}

// readEntropy reads 64 bytes of the virtio-rng through the guest's
// /dev/hwrng: the device's worker serves them under its filter.
func readEntropy(ctx SpecContext, m *guest.Machine) {
	GinkgoHelper()
	Expect(sh(ctx, m, "head -c 64 /dev/hwrng | wc -c")).To(Equal("64"), "bytes from /dev/hwrng")
}

// resizeVCPUs resizes the guest to n vCPUs and waits until exactly the
// CPUs 0..n-1 are present.
func resizeVCPUs(ctx SpecContext, m *guest.Machine, n int) {
	GinkgoHelper()
	k := int64(n)
	Expect(m.Resize(ctx, vm.ResizeRequest{DesiredVCPUs: &k})).To(Succeed())
	var want []int
	for i := range n {
		want = append(want, i)
	}
	Eventually(func(g Gomega) []int {
		c, err := m.CPUs(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		return c.Present
	}).WithContext(ctx).WithTimeout(cmdTimeout).Should(Equal(want), "present CPUs after the resize to %d", n)
}

var _ = Describe("seccomp", Label("boot", "security"), func() {
	It("filters every thread of a running vmm by default, through a reboot and vCPU hot plug both ways", func(ctx SpecContext) {
		cfg := bootConfig()
		cfg.CPUs = config.CPUs{BootVCPUs: 2, MaxVCPUs: 4}
		cfg.Memory = config.Memory{Size: 512 << 20, HotplugSize: 512 << 20}
		cfg.RNG = &config.RNG{} // a virtio device: its worker thread has a filter
		m := startGuest(ctx, "seccomp", cfg)
		Expect(m.WaitReady(ctx)).To(Succeed())
		readEntropy(ctx, m)
		expectFiltered(m.Pid())

		By("vCPU hot plug up and down, RAM hot plug: the new vCPU threads get their filter")
		resizeVCPUs(ctx, m, 4)
		expectFiltered(m.Pid())
		resizeVCPUs(ctx, m, 2)
		sh(ctx, m, "echo online > /sys/devices/system/memory/auto_online_blocks")
		ram := int64(1 << 30)
		Eventually(func() error { return m.Resize(ctx, vm.ResizeRequest{DesiredRAM: &ram}) }).WithContext(ctx).
			WithTimeout(cmdTimeout).Should(Succeed(), "resize to 1 GiB")
		Eventually(func(g Gomega) uint64 {
			n, err := m.MemTotal(ctx)
			g.Expect(err).NotTo(HaveOccurred())
			return n
		}).WithContext(ctx).WithTimeout(cmdTimeout).Should(BeNumerically(">=", 0.9*(1<<30)), "MemTotal after the resize")

		By("a state dump, a pause and a reboot run under the filters")
		Expect(syscall.Kill(m.Pid(), syscall.SIGUSR1)).To(Succeed())
		Eventually(m.StateDumpLines).WithTimeout(cmdTimeout).ShouldNot(BeEmpty())
		Expect(m.API().Pause(ctx)).To(Succeed())
		Expect(m.API().Resume(ctx)).To(Succeed())
		sh(ctx, m, "true")
		Expect(m.Reboot(ctx)).To(Succeed())
		Expect(m.WaitReady(ctx)).To(Succeed(), "boot after vm.reboot; vmm log:\n%s", m.VmmLog())
		expectFiltered(m.Pid())

		Expect(syscall.Kill(m.Pid(), syscall.SIGTERM)).To(Succeed())
		status, err := m.Wait(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(status).To(Equal(0), "exit status after SIGTERM (a denied call kills vmm with SIGSYS); log:\n%s", m.VmmLog())
	}, SpecTimeout(2*bootTimeout+8*cmdTimeout))

	It("with --seccomp log filters every thread, logs no denied call over a VM's life and names one the kernel reports", func(ctx SpecContext) {
		cfg := bootConfig()
		cfg.RNG = &config.RNG{}
		m := startGuest(ctx, "seccomp-log", cfg, "--seccomp", "log")
		Expect(m.WaitReady(ctx)).To(Succeed())
		readEntropy(ctx, m)
		expectFiltered(m.Pid())
		Expect(m.API().Pause(ctx)).To(Succeed())
		Expect(m.API().Resume(ctx)).To(Succeed())
		sh(ctx, m, "true")
		Expect(m.Reboot(ctx)).To(Succeed())
		Expect(m.WaitReady(ctx)).To(Succeed(), "boot after vm.reboot")
		Expect(m.VmmLog()).NotTo(ContainSubstring("a call outside the filter"), "denied calls")

		// A record as the kernel writes it for a SECCOMP_RET_LOG, written
		// to the kernel log: vmm reads it there and names the call.
		record := fmt.Sprintf("audit: type=1326 audit(0.0:1): pid=%d comm=\"vmm\" sig=0 arch=c000003e syscall=102 compat=0 code=0x7ffc0000\n", m.Pid())
		Expect(os.WriteFile(seccomp.KernelLog, []byte(record), 0)).To(Succeed())
		Eventually(m.VmmLog).WithTimeout(cmdTimeout).Should(MatchRegexp(`a call outside the filter.* syscall=102 name=getuid`))
	}, SpecTimeout(2*bootTimeout+4*cmdTimeout))

	It("with --seccomp false leaves every thread unfiltered", func(ctx SpecContext) {
		m := startGuest(ctx, "seccomp-off", bootConfig(), "--seccomp", "false")
		Expect(m.WaitReady(ctx)).To(Succeed())
		for _, t := range seccompThreads(m.Pid()) {
			Expect(t.Seccomp).To(Equal(0), "Seccomp of thread %d (%s)", t.TID, t.Name)
		}
	}, SpecTimeout(bootTimeout+cmdTimeout))
})

var _ = Describe("Landlock", Label("boot", "security"), func() {
	// A confined vmm hot-adding a disk beneath its rules, refusing one
	// outside, rebooting: scenarios/landlock.lua.
	It("refuses a rule whose path does not exist, as Cloud Hypervisor does", func(ctx SpecContext) {
		cfg := bootConfig()
		cfg.LandlockEnable = true
		cfg.LandlockRules = []config.LandlockRule{{Path: "/nonexistent/dir", Access: "rw"}}
		_, err := guest.Start(ctx, cfg, guest.Options{Name: "landlock-bad", VmmLog: GinkgoWriter})
		Expect(err).To(MatchError(ContainSubstring("provided in landlock-rules does not exist")))
	}, SpecTimeout(cmdTimeout))
})

// reportSeccompDenials writes to the spec's output the calls the kernel
// logged as outside vmm pid's seccomp filters (the audit records of
// SECCOMP_RET_KILL_PROCESS and SECCOMP_RET_LOG in the kernel log), by
// number and name: what a filter lacks when a vmm died of SIGSYS.
func reportSeccompDenials(pid int) {
	f, err := os.OpenFile(seccomp.KernelLog, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return
	}
	defer f.Close()
	buf := make([]byte, 8192)
	seen := map[string]bool{}
	for {
		n, err := syscall.Read(int(f.Fd()), buf)
		if err == syscall.EPIPE {
			continue // a record overwritten before it was read
		}
		if err != nil || n <= 0 {
			return
		}
		if d, ok := seccomp.ParseAudit(string(buf[:n])); ok && d.PID == pid {
			key := fmt.Sprintf("%d %s", d.Nr, d.Name)
			if !seen[key] {
				seen[key] = true
				GinkgoWriter.Printf("seccomp: vmm %d made a call outside its filters: %s\n", pid, key)
			}
		}
	}
}
