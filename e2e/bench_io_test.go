package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vmmdev/vmm/bench"
	"github.com/vmmdev/vmm/guest"
	"github.com/vmmdev/vmm/vm/config"
)

// The device benchmark: disk read and write throughput through
// virtio-blk and guest-to-host TCP throughput through virtio-net, for vmm
// and for QEMU (the same kernel, initramfs and image size, in the same KVM
// host, the same guest commands), each run on a fresh guest, on the
// transport VMM_BENCH_TRANSPORT names: "pci" (the default: vmm's
// virtio-pci beside QEMU q35's virtio-pci devices) or "mmio" (vmm's
// virtio-mmio beside QEMU microvm's). Values are BENCHDATA lines for
// cmd/benchreport, whose metric names do not say the transport: a report
// is of one transport. The spec fails only when no run succeeded at all.

const (
	ioBenchDiskMiB = 256
	ioBenchNetMiB  = 16
	ioBenchHostIP  = "192.168.250.1"
	ioBenchGuestIP = "192.168.250.2"
	ioBenchMask    = "255.255.255.0"
	ioBenchPort    = 5201
	ioBenchVmmTap  = "vmmbench0"
	ioBenchQEMUTap = "qemubench0"
)

// ioGuest is a booted guest with a disk on vda and a NIC on eth0 whose tap
// has the host side ioBenchHostIP.
type ioGuest interface {
	name() string
	sh(ctx context.Context, cmd string) string
	stop()
}

// ioBenchTransport is the transport VMM_BENCH_TRANSPORT names: pci or
// mmio.
func ioBenchTransport() string {
	if t := os.Getenv("VMM_BENCH_TRANSPORT"); t != "" {
		return t
	}
	return "pci"
}

var _ = Describe("disk and network throughput beside QEMU", Label("benchmark", "io"), Serial, func() {
	It("reports virtio-blk read and write and virtio-net TCP throughput", func(ctx SpecContext) {
		runs := benchRuns(3)
		qemu := os.Getenv("VMM_QEMU")
		transport := ioBenchTransport()
		Expect(transport).To(BeElementOf("pci", "mmio"), "VMM_BENCH_TRANSPORT")
		GinkgoWriter.Printf("BENCH io on virtio-%s\n", transport)
		starters := []func(context.Context, string) ioGuest{
			func(ctx context.Context, disk string) ioGuest { return startVmmIOBench(ctx, transport, disk) },
		}
		if qemu != "" {
			starters = append(starters, func(ctx context.Context, disk string) ioGuest { return startQEMUIOBench(ctx, qemu, transport, disk) })
		}
		ok := 0
		for i := range runs {
			for _, start := range starters {
				var g ioGuest
				err := InterceptGomegaFailure(func() {
					disk := filepath.Join(GinkgoT().TempDir(), "bench.img")
					Expect(os.WriteFile(disk, nil, 0o644)).To(Succeed())
					Expect(os.Truncate(disk, ioBenchDiskMiB<<20)).To(Succeed())
					g = start(ctx, disk)
					measureIO(ctx, g)
				})
				who := "?"
				if g != nil {
					who = g.name()
					g.stop()
				}
				if err != nil {
					GinkgoWriter.Printf("BENCH io run %d of %d FAILED for %s: %v\n", i+1, runs, who, err)
					continue
				}
				ok++
			}
		}
		Expect(ok).To(BeNumerically(">", 0), "every run failed")
	}, SpecTimeout(25*time.Minute))
})

// measureIO takes one run's measurements. Times are taken on the host
// around each guest command, less the round trip of an empty command.
func measureIO(ctx context.Context, g ioGuest) {
	GinkgoHelper()
	who := g.name()
	timed := func(cmd string) time.Duration {
		t0 := time.Now()
		g.sh(ctx, cmd)
		return time.Since(t0)
	}
	idle := min(timed("true"), timed("true"))
	mibps := func(mib int, d time.Duration) float64 {
		return float64(mib) / max(d-idle, time.Millisecond).Seconds()
	}
	n := strconv.Itoa(ioBenchDiskMiB)
	w := timed("dd if=/dev/zero of=/dev/vda bs=1M count=" + n + " conv=fsync 2>/dev/null")
	emit("disk write (dd 1M blocks; fsync)", "MiB/s", who, mibps(ioBenchDiskMiB, w))
	g.sh(ctx, "sync; echo 3 > /proc/sys/vm/drop_caches")
	r := timed("dd if=/dev/vda of=/dev/null bs=1M count=" + n + " 2>/dev/null")
	emit("disk read (dd 1M blocks; cold cache)", "MiB/s", who, mibps(ioBenchDiskMiB, r))

	g.sh(ctx, "ip addr add "+ioBenchGuestIP+"/24 dev eth0 && ip link set eth0 up")
	g.sh(ctx, "ping -c 1 -W 5 "+ioBenchHostIP+" >/dev/null || ping -c 1 -W 5 "+ioBenchHostIP)
	ln, err := net.Listen("tcp", net.JoinHostPort(ioBenchHostIP, strconv.Itoa(ioBenchPort)))
	Expect(err).NotTo(HaveOccurred())
	defer ln.Close()
	got := receiveTCP(ln, ioBenchNetMiB<<20, io.Discard)
	g.sh(ctx, fmt.Sprintf("dd if=/dev/zero bs=1M count=%d 2>/dev/null | nc -w 5 %s %d; true", ioBenchNetMiB, ioBenchHostIP, ioBenchPort))
	var res tcpReceipt
	Eventually(got).WithTimeout(time.Minute).Should(Receive(&res), "%s: the host received nothing", who)
	Expect(res.err).NotTo(HaveOccurred(), "%s: TCP receive", who)
	emit("network TCP guest to host", "MiB/s", who, float64(ioBenchNetMiB)/res.took.Seconds())
}

// vmmIOBench is vmm's guest for the device benchmark.
type vmmIOBench struct{ m *guest.Machine }

func startVmmIOBench(ctx context.Context, transport, disk string) ioGuest {
	GinkgoHelper()
	cfg := config.Default()
	cfg.CPUs = config.CPUs{BootVCPUs: 2, MaxVCPUs: 2}
	cfg.Memory.Size = 512 << 20
	cfg.Disks = []config.Disk{{Path: disk}}
	cfg.Net = []config.Net{{Tap: ioBenchVmmTap, IP: ioBenchHostIP, Mask: ioBenchMask}}
	m, err := guest.Start(ctx, cfg, guest.Options{Name: "vmm-io", VmmLog: GinkgoWriter,
		ExtraArgs: []string{"--virtio-transport", transport}})
	Expect(err).NotTo(HaveOccurred())
	g := &vmmIOBench{m: m}
	Expect(m.WaitReady(ctx)).To(Succeed())
	return g
}

func (g *vmmIOBench) name() string { return bench.VMM }
func (g *vmmIOBench) sh(ctx context.Context, cmd string) string {
	GinkgoHelper()
	return sh(ctx, g.m, cmd)
}
func (g *vmmIOBench) stop() { _ = g.m.Stop() }

// qemuIOBench is QEMU's guest for the device benchmark: q35 with
// virtio-pci devices, or microvm with virtio-mmio ones.
type qemuIOBench struct{ *qemuGuest }

func startQEMUIOBench(ctx context.Context, qemu, transport, disk string) ioGuest {
	GinkgoHelper()
	machine, blk, nic := "microvm", "virtio-blk-device,drive=d0", "virtio-net-device,netdev=n0"
	if transport == "pci" {
		// No option ROM: the payload has none, and the guest boots
		// from -kernel anyway.
		machine, blk, nic = "q35", "virtio-blk-pci,drive=d0", "virtio-net-pci,netdev=n0,romfile="
	}
	q := qemuIOBench{startQEMU(ctx, qemu, "-accel", "kvm", "-M", machine, "-cpu", "host", "-smp", "2", "-m", "512",
		"-drive", "id=d0,if=none,format=raw,file="+disk, "-device", blk,
		"-netdev", "tap,id=n0,ifname="+ioBenchQEMUTap+",script=no,downscript=no", "-device", nic)}
	// QEMU leaves the host side of its tap to the caller.
	for _, args := range [][]string{
		{"addr", "add", ioBenchHostIP + "/24", "dev", ioBenchQEMUTap},
		{"link", "set", ioBenchQEMUTap, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			q.kill()
			Fail(fmt.Sprintf("ip %v: %v: %s", args, err, out))
		}
	}
	return q
}

func (q qemuIOBench) stop() { q.kill() }
