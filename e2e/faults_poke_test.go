package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vmmdev/vmm/guest"
	"github.com/vmmdev/vmm/vm"
)

// pokeSeconds is how long the guest pokes the machine's registers: 10 s,
// or VMM_POKE_SECONDS (make stress: 60).
func pokeSeconds() int {
	if n, err := strconv.Atoi(os.Getenv("VMM_POKE_SECONDS")); err == nil && n > 0 {
		return n
	}
	return 10
}

var _ = Describe("a guest writing random values to every device register", Label("faults"), func() {
	It("leaves the vmm alive, its API answering and able to boot the guest again", func(ctx SpecContext) {
		secs := pokeSeconds()
		seed := rand.Uint64()
		dir := GinkgoT().TempDir()
		disk, ro := filepath.Join(dir, "disk.img"), filepath.Join(dir, "ro.img")
		makeImage(disk, 16<<20, diskMarker)
		makeImage(ro, 8<<20, roMarker)
		cfg := devicesConfig(disk, ro)
		// /dev/mem reaches the device memory the guest's drivers claimed;
		// what the poke writes to /dev/kmsg reaches the console whole.
		cfg.Payload.Cmdline = guest.DefaultCmdline + " iomem=relaxed printk.devkmsg=on"
		m := startGuest(ctx, "poke", cfg)
		Expect(m.WaitReady(ctx)).To(Succeed())

		By(fmt.Sprintf("the guest pokes its ports and device MMIO for %d s (seed %d)", secs, seed))
		start := m.Console().Len()
		// Its report goes to the kernel log (at the default level, 4,
		// which console level 5 shows), which the kernel writes to the
		// serial port by polling: the tty's own output, which needs the
		// UART's interrupts, may not survive the poke.
		_, _, err := m.Sh(ctx, fmt.Sprintf("echo 5 >/proc/sys/kernel/printk; setsid vmm-agent poke -seconds %d -seed %d >/dev/kmsg 2>&1 &", secs, seed))
		Expect(err).NotTo(HaveOccurred())
		deadline := time.Now().Add(time.Duration(secs)*time.Second + 60*time.Second)
		var done bool
		for !done && time.Now().Before(deadline) {
			Expect(m.Exited()).NotTo(BeClosed(), "the vmm exited while the guest poked it; its log:\n%s", m.VmmLog())
			_, err := m.API().Ping(ctx)
			Expect(err).NotTo(HaveOccurred(), "vmm.ping while the guest pokes")
			out := m.ConsoleText()[start:]
			done = strings.Contains(out, "poke: done")
			if loc := pokeFailed.FindStringIndex(out); loc != nil {
				Fail("the poke failed in the guest:\n" + head(out[max(0, loc[0]-1000):], 6000))
			}
			time.Sleep(time.Second)
		}
		Expect(done).To(BeTrue(), "the poke did not finish; console:\n%s", head(m.ConsoleText()[start:], 4000))
		GinkgoWriter.Printf("%s\n", regexp.MustCompile(`poke: done.*`).FindString(m.ConsoleText()[start:]))

		By("the vmm runs, its API answers, and a reboot boots the guest again")
		Expect(m.Exited()).NotTo(BeClosed(), "the vmm exited; its log:\n%s", m.VmmLog())
		info, err := m.Info(ctx)
		Expect(err).NotTo(HaveOccurred(), "vm.info after the poke; vmm log:\n%s", m.VmmLog())
		Expect(info.State).To(Equal(vm.StateRunning))
		Expect(m.Reboot(ctx)).To(Succeed())
		Expect(m.WaitReady(ctx)).To(Succeed(), "the boot after the poke; vmm log:\n%s", m.VmmLog())
		Expect(sh(ctx, m, "echo alive")).To(Equal("alive"))
		Expect(m.VmmLog()).NotTo(ContainSubstring("panic"))
	}, SpecTimeout(2*bootTimeout+5*time.Minute+time.Duration(pokeSeconds())*time.Second))
})

// pokeFailed matches what the poke prints when it fails: a Go crash, or
// vmm-agent's error.
var pokeFailed = regexp.MustCompile(`fatal error|panic:|vmm-agent: `)

// head is the first n bytes of s.
func head(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
