package e2e

import (
	"encoding/binary"
	"fmt"
	"os"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vmmdev/vmm/guest"
	"github.com/vmmdev/vmm/vm"
)

// The same Debian kernel as the bzImage specs boot, as the
// uncompressed ELF vmlinux that images/build.sh extracts from it, entered
// through its PVH entry point. Linux's PVH code fills in its own
// boot_params from hvm_start_info, and /sys/kernel/boot_params shows it:
// protocol 2.12 (0x020c) and loader type 0xb0 ("PVH, not under Xen",
// arch/x86/platform/pvh/enlighten.c), where a bzImage boot shows Debian's
// setup header (2.15) and vmm's loader type 0xff.
var _ = Describe("booting Debian's kernel as an ELF vmlinux", Label("boot"), func() {
	It("reaches the shell through the PVH entry with 4 vCPUs and 1 GiB, then grows to 8 vCPUs and 2 GiB", func(ctx SpecContext) {
		paths := guest.ResolvePaths()
		Expect(paths.Vmlinux).To(BeARegularFile(), "the vmlinux: make images, or set %s", guest.EnvVmlinux)
		release, build := bzImageVersion(paths.Kernel)

		cfg := bootConfig()
		cfg.Payload.Kernel = paths.Vmlinux
		cfg.CPUs.MaxVCPUs = 8
		cfg.Memory.HotplugSize = 1 << 30
		m := startGuest(ctx, "vmlinux", cfg)
		Expect(m.WaitReady(ctx)).To(Succeed(), "vmm log:\n%s", m.VmmLog())

		By("the guest runs the bzImage's kernel, entered through PVH")
		Expect(sh(ctx, m, "uname -r")).To(Equal(release), "the release the bzImage's header names")
		Expect(sh(ctx, m, "uname -v")).To(Equal(build), "the build the bzImage's header names")
		Expect(sh(ctx, m, "cat /sys/kernel/boot_params/version")).To(Equal("0x020c"), "boot protocol Linux's PVH code fills in")
		Expect(sh(ctx, m, "od -An -tx1 -j 528 -N1 /sys/kernel/boot_params/data | tr -d ' '")).To(Equal("b0"),
			"type_of_loader (0x210): PVH outside Xen")
		Expect(sh(ctx, m, "cat /proc/cmdline")).To(Equal(guest.DefaultCmdline), "the command line from hvm_start_info")

		By("4 vCPUs and 1 GiB, the ACPI tables found through the RSDP hvm_start_info gives")
		expectFourCPUsAndOneGiB(ctx, m)
		dmesg := sh(ctx, m, "dmesg")
		Expect(dmesg).To(ContainSubstring("ACPI: Using ACPI (MADT) for SMP configuration information"))
		Expect(dmesg).NotTo(MatchRegexp(`ACPI (BIOS )?Error`), "ACPI errors in dmesg")
		Expect(dmesg).To(MatchRegexp(`ttyS0 at I/O 0x3f8 .* is a 16550A`))
		Expect(sh(ctx, m, "cat /sys/devices/system/cpu/present")).To(Equal("0-3"), "present CPUs")
		Expect(vcpuThreads(m.Pid())).To(Equal([]string{"vcpu0", "vcpu1", "vcpu2", "vcpu3"}), "named vCPU threads")

		By("growing to 8 vCPUs: the new ones come up present and offline; the guest onlines them")
		eight := int64(8)
		Expect(m.Resize(ctx, vm.ResizeRequest{DesiredVCPUs: &eight})).To(Succeed())
		Eventually(func(g Gomega) []int {
			c, err := m.CPUs(ctx)
			g.Expect(err).NotTo(HaveOccurred())
			return c.Present
		}).WithContext(ctx).WithTimeout(cmdTimeout).Should(Equal([]int{0, 1, 2, 3, 4, 5, 6, 7}), "present CPUs after the resize")
		sh(ctx, m, "echo 1 | tee /sys/devices/system/cpu/cpu[4-7]/online >/dev/null")
		Expect(sh(ctx, m, "cat /sys/devices/system/cpu/online")).To(Equal("0-7"), "online CPUs")
		Expect(sh(ctx, m, "grep -c ^processor /proc/cpuinfo")).To(Equal("8"), "processors in /proc/cpuinfo")
		Expect(vcpuThreads(m.Pid())).To(HaveLen(8), "vCPU threads")

		By("adding 1 GiB of RAM: MemTotal grows to about 2 GiB")
		sh(ctx, m, "echo online > /sys/devices/system/memory/auto_online_blocks")
		twoGiB := int64(2 << 30)
		Eventually(func() error { return m.Resize(ctx, vm.ResizeRequest{DesiredRAM: &twoGiB}) }).WithContext(ctx).
			WithTimeout(cmdTimeout).Should(Succeed(), "resize to 2 GiB")
		Eventually(func(g Gomega) uint64 {
			n, err := m.MemTotal(ctx)
			g.Expect(err).NotTo(HaveOccurred())
			return n
		}).WithContext(ctx).WithTimeout(cmdTimeout).Should(BeNumerically(">=", 0.9*(2<<30)), "MemTotal after the resize")
		info, err := m.Info(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(info.MemoryActualSize).To(BeEquivalentTo(2<<30), "memory_actual_size")
		Expect(info.ActiveVCPUs).To(Equal(8), "active_vcpus")
		Expect(sh(ctx, m, "echo alive")).To(Equal("alive"))
	}, SpecTimeout(bootTimeout+8*cmdTimeout))
})

// bzImageVersion reads the kernel version string a bzImage's setup header
// points to (kernel_version at 0x20e, an offset from 0x200; boot.rst) and
// splits it as uname does: the release ("6.1.0-57-amd64") and the build
// ("#1 SMP PREEMPT_DYNAMIC Debian ..."), without the builder's
// "(user@host)" between them.
func bzImageVersion(path string) (release, build string) {
	GinkgoHelper()
	data, err := os.ReadFile(path)
	Expect(err).NotTo(HaveOccurred(), "the bzImage")
	Expect(len(data)).To(BeNumerically(">", 0x210), "the bzImage")
	off := 0x200 + int(binary.LittleEndian.Uint16(data[0x20e:]))
	Expect(off).To(BeNumerically("<", len(data)), "kernel_version")
	s, _, _ := strings.Cut(string(data[off:min(off+512, len(data))]), "\x00")
	release, rest, _ := strings.Cut(s, " ")
	if strings.HasPrefix(rest, "(") {
		if i := strings.Index(rest, ") "); i >= 0 {
			rest = rest[i+2:]
		}
	}
	Expect(release).NotTo(BeEmpty(), "kernel_version %q", s)
	Expect(rest).To(HavePrefix("#"), fmt.Sprintf("kernel_version %q", s))
	return release, rest
}
