package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vmmdev/vmm/guest"
	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/config"
)

// Cloud Hypervisor's backing and console options seen from inside the
// guest: shared and prefaulted RAM that hot plug grows, the virtio
// console's hvc0 in File mode, the serial port on a unix socket.
var _ = Describe("Cloud Hypervisor's memory and console options", Label("compat"), func() {
	It("boots on shared, prefaulted RAM and hot-adds more of it", func(ctx SpecContext) {
		cfg := bootConfig()
		cfg.Memory = config.Memory{Size: 512 << 20, HotplugSize: 1 << 30, Shared: true, Prefault: true}
		m := startGuest(ctx, "shared-ram", cfg)
		Expect(m.WaitReady(ctx)).To(Succeed())
		Expect(memfdRAM(m.Pid())).To(BeNumerically(">=", 512<<20), "the vmm's guest RAM memfd mappings")

		sh(ctx, m, "echo online > /sys/devices/system/memory/auto_online_blocks")
		ram := int64(768 << 20)
		Expect(m.Resize(ctx, vm.ResizeRequest{DesiredRAM: &ram})).To(Succeed())
		Eventually(func() uint64 { n, _ := m.MemTotal(ctx); return n }).WithContext(ctx).WithTimeout(cmdTimeout).
			Should(BeNumerically(">=", uint64(9*(768<<20)/10)), "MemTotal after the hot add")
		Expect(memfdRAM(m.Pid())).To(BeNumerically(">=", 768<<20), "the hot-added RAM is a shared memfd too")
		// Prefaulted: the guest's RAM is resident before the guest touched it.
		Expect(rssKiB(m.Pid())).To(BeNumerically(">=", (768<<20)/1024), "VmRSS (KiB) with prefault")
		sh(ctx, m, "dd if=/dev/zero of=/dev/null bs=1M count=64")
	}, SpecTimeout(bootTimeout+4*cmdTimeout))

	It("carries the guest's hvc0 to the virtio console's file", func(ctx SpecContext) {
		cfg := bootConfig()
		path := filepath.Join(GinkgoT().TempDir(), "hvc0.log")
		cfg.Console = config.Console{Mode: config.ModeFile, File: path}
		m := startGuest(ctx, "hvc0-file", cfg)
		Expect(m.WaitReady(ctx)).To(Succeed())
		Expect(sh(ctx, m, "cat /sys/class/tty/hvc0/dev >/dev/null && echo ok")).To(Equal("ok"), "the guest has an hvc0")
		sh(ctx, m, "echo hello-from-hvc0-$((6*7)) > /dev/hvc0")
		Eventually(func() string { b, _ := os.ReadFile(path); return string(b) }).WithTimeout(cmdTimeout).
			Should(ContainSubstring("hello-from-hvc0-42"), "the console's file")
		info, err := m.Info(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(info.Config.Console).To(Equal(config.Console{Mode: config.ModeFile, File: path}), "vm.info's console")
	}, SpecTimeout(bootTimeout+3*cmdTimeout))

	It("gives the serial port to a client of its unix socket", func(ctx SpecContext) {
		// guest.Start drives the shell on the terminal: this vmm is started
		// by hand, with --serial socket=PATH.
		paths := guest.ResolvePaths()
		dir := GinkgoT().TempDir()
		sock := filepath.Join(dir, "serial.sock")
		cmd := exec.CommandContext(ctx, paths.Vmm, "--kernel", paths.Kernel, "--initramfs", paths.Initramfs,
			"--cmdline", guest.DefaultCmdline, "--cpus", "boot=2", "--memory", "size=512M",
			"--serial", "socket="+sock, "--api-socket", filepath.Join(dir, "api.sock"))
		cmd.Stdout, cmd.Stderr = GinkgoWriter, GinkgoWriter
		Expect(cmd.Start()).To(Succeed())
		DeferCleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		})
		var conn net.Conn
		Eventually(func() error {
			var err error
			conn, err = net.Dial("unix", sock)
			return err
		}).WithTimeout(cmdTimeout).Should(Succeed(), "connect to the serial socket")
		defer conn.Close()
		lines := make(chan string, 4096)
		go func() {
			r := bufio.NewReader(conn)
			for {
				line, err := r.ReadString('\n')
				if line != "" {
					lines <- strings.TrimRight(line, "\r\n")
				}
				if err != nil {
					close(lines)
					return
				}
			}
		}()
		Expect(waitLine(ctx, lines, guest.ReadyMarker, bootTimeout)).To(Succeed(), "the ready marker through the socket")
		// The shell answers through the socket: the answer is not in the
		// command the terminal echoes.
		deadline := time.Now().Add(cmdTimeout)
		for {
			_, err := fmt.Fprintf(conn, "echo socket-$((6*7))\n")
			Expect(err).NotTo(HaveOccurred())
			if waitLine(ctx, lines, "socket-42", 5*time.Second) == nil {
				break
			}
			Expect(time.Now().Before(deadline)).To(BeTrue(), "no answer from the guest's shell through the socket")
		}
	}, SpecTimeout(bootTimeout+2*cmdTimeout))
})

// waitLine waits for a line containing want.
func waitLine(ctx context.Context, lines <-chan string, want string, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				return fmt.Errorf("the socket closed before %q", want)
			}
			GinkgoWriter.Printf("serial socket: %s\n", line)
			if strings.Contains(line, want) {
				return nil
			}
		case <-t.C:
			return fmt.Errorf("no %q in %v", want, timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// memfdRAM adds up the sizes of pid's guest RAM memfd mappings.
func memfdRAM(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	Expect(err).NotTo(HaveOccurred())
	var total uint64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.Contains(f[5], "memfd:vmm-guest-ram") {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		l, _ := strconv.ParseUint(lo, 16, 64)
		h, _ := strconv.ParseUint(hi, 16, 64)
		total += h - l
	}
	return total
}

// rssKiB is pid's VmRSS.
func rssKiB(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	Expect(err).NotTo(HaveOccurred())
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
