package e2e

import (
	"context"
	"errors"
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

	"golang.org/x/sys/unix"

	"github.com/vmmdev/vmm/bench"
	"github.com/vmmdev/vmm/guest"
	"github.com/vmmdev/vmm/vm/config"
)

// The device benchmark: disk read and write throughput through
// virtio-blk and TCP throughput both ways through virtio-net, for vmm and
// for QEMU (the same kernel, initramfs and image size, in the same KVM
// host, the same guest commands), each run on a fresh guest, on both
// transports: vmm's virtio-pci beside QEMU q35's virtio-pci devices, then
// vmm's virtio-mmio beside QEMU microvm's, with half the runs.
// VMM_BENCH_TRANSPORT (pci or mmio) keeps one of them. Values are BENCHDATA
// lines for cmd/benchreport whose metric names say the transport. The spec
// fails only when no run succeeded at all.

const (
	ioBenchDiskMiB = 256
	ioBenchNetMiB  = 16
	ioBenchHostIP  = "192.168.250.1"
	ioBenchGuestIP = "192.168.250.2"
	ioBenchMask    = "255.255.255.0"
	ioBenchPort    = 5201
	ioBenchRxPort  = 5202
	ioBenchVmmTap  = "vmmbench0"
	ioBenchQEMUTap = "qemubench0"
)

// ioGuest is a booted guest with a disk on vda and a NIC on eth0 whose tap
// has the host side ioBenchHostIP.
type ioGuest interface {
	name() string
	pid() int
	sh(ctx context.Context, cmd string) string
	stop()
}

// ioBenchTransports are the transports to measure, with the runs of
// each: both (mmio with half the runs), or the one VMM_BENCH_TRANSPORT
// names.
func ioBenchTransports(runs int) map[string]int {
	switch t := os.Getenv("VMM_BENCH_TRANSPORT"); t {
	case "":
		return map[string]int{"pci": runs, "mmio": (runs + 1) / 2}
	case "pci", "mmio":
		return map[string]int{t: runs}
	default:
		Fail("VMM_BENCH_TRANSPORT=" + t + ": want pci or mmio")
		return nil
	}
}

// transportName is how a metric names the transport.
func transportName(transport string) string {
	if transport == "pci" {
		return "PCI"
	}
	return "virtio-mmio"
}

var _ = Describe("disk and network throughput beside QEMU", Label("benchmark", "io"), Serial, func() {
	It("reports virtio-blk read and write and virtio-net TCP throughput", func(ctx SpecContext) {
		if benchProfiling() {
			enableExitTracing()
		}
		qemu := os.Getenv("VMM_QEMU")
		ok := 0
		transports := ioBenchTransports(benchRuns(3))
		for _, transport := range []string{"pci", "mmio"} {
			runs := transports[transport]
			if runs > 0 {
				GinkgoWriter.Printf("BENCH io on virtio-%s, %d runs\n", transport, runs)
			}
			starters := []func(context.Context, string) ioGuest{
				func(ctx context.Context, disk string) ioGuest { return startVmmIOBench(ctx, transport, disk) },
			}
			if qemu != "" {
				starters = append(starters, func(ctx context.Context, disk string) ioGuest { return startQEMUIOBench(ctx, qemu, transport, disk) })
			}
			ok += runIOBench(ctx, runs, transport, starters)
		}
		Expect(ok).To(BeNumerically(">", 0), "every run failed")
	}, SpecTimeout(35*time.Minute))
})

// runIOBench takes runs rounds of the measurements on transport, one fresh
// guest per starter each, and returns how many guests gave them.
func runIOBench(ctx context.Context, runs int, transport string, starters []func(context.Context, string) ioGuest) int {
	var withDisk []func(context.Context) ioGuest
	for _, start := range starters {
		withDisk = append(withDisk, func(ctx context.Context) ioGuest {
			disk := filepath.Join(GinkgoT().TempDir(), "bench.img")
			Expect(os.WriteFile(disk, nil, 0o644)).To(Succeed())
			Expect(os.Truncate(disk, ioBenchDiskMiB<<20)).To(Succeed())
			return start(ctx, disk)
		})
	}
	return takeTurns(ctx, "io on "+transport, runs, withDisk, func(ctx context.Context, g ioGuest) {
		measureIO(ctx, g, transportName(transport))
	})
}

// measureIO takes one run's measurements. Times are taken on the host
// around each guest command, less the round trip of an empty command.
func measureIO(ctx context.Context, g ioGuest, on string) {
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
	emit("disk write on "+on+" (dd 1M blocks; fsync)", "MiB/s", who, mibps(ioBenchDiskMiB, w))
	g.sh(ctx, "sync; echo 3 > /proc/sys/vm/drop_caches")
	r := timed("dd if=/dev/vda of=/dev/null bs=1M count=" + n + " 2>/dev/null")
	emit("disk read on "+on+" (dd 1M blocks; cold cache)", "MiB/s", who, mibps(ioBenchDiskMiB, r))

	g.sh(ctx, "ip addr add "+ioBenchGuestIP+"/24 dev eth0 && ip link set eth0 up")
	g.sh(ctx, "ping -c 1 -W 5 "+ioBenchHostIP+" >/dev/null || ping -c 1 -W 5 "+ioBenchHostIP)
	ln, err := net.Listen("tcp", net.JoinHostPort(ioBenchHostIP, strconv.Itoa(ioBenchPort)))
	Expect(err).NotTo(HaveOccurred())
	defer ln.Close()
	var stats map[string]uint64
	if benchProfiling() {
		stats = kvmStats(g.pid())
	}
	exits := traceExits()
	got := receiveTCP(ln, ioBenchNetMiB<<20, io.Discard)
	g.sh(ctx, fmt.Sprintf("dd if=/dev/zero bs=1M count=%d 2>/dev/null | nc -w 5 %s %d; true", ioBenchNetMiB, ioBenchHostIP, ioBenchPort))
	var res tcpReceipt
	Eventually(got).WithTimeout(time.Minute).Should(Receive(&res), "%s: the host received nothing", who)
	Expect(res.err).NotTo(HaveOccurred(), "%s: TCP receive", who)
	emit("network TCP guest to host on "+on, "MiB/s", who, float64(ioBenchNetMiB)/res.took.Seconds())
	exits.report(who, "TCP guest to host on "+on)
	profileThreads(who, g.pid())
	profileStep("TCP guest to host on "+on, who, g.pid(), stats)
	if benchProfiling() {
		GinkgoWriter.Printf("PROFILE %s eth0 after guest to host: %s\n", who, g.sh(ctx, "grep eth0 /proc/net/dev"))
		stats = kvmStats(g.pid())
	}
	exits = traceExits()
	emit("network TCP host to guest on "+on, "MiB/s", who, float64(ioBenchNetMiB)/sendTCP(ctx, g).Seconds())
	exits.report(who, "TCP host to guest on "+on)
	profileStep("TCP host to guest on "+on, who, g.pid(), stats)
	if benchProfiling() {
		GinkgoWriter.Printf("PROFILE %s eth0 after host to guest: %s\n", who, g.sh(ctx, "grep eth0 /proc/net/dev"))
		GinkgoWriter.Printf("PROFILE %s guest interrupts:\n%s\n", who, g.sh(ctx, "dmesg | grep -i -m 3 x2apic; grep -i -e virtio -e LOC -e TLB /proc/interrupts"))
	}
}

// sendTCP sends ioBenchNetMiB to a listener in the guest (busybox nc,
// its standard input held open so that it leaves only when the host has
// sent everything) and returns the time from connect until the guest has
// read it all and closed.
func sendTCP(ctx context.Context, g ioGuest) time.Duration {
	GinkgoHelper()
	port := strconv.Itoa(ioBenchRxPort)
	g.sh(ctx, "(sleep 300 | nc -l -p "+port+" >/dev/null) >/dev/null 2>&1 &")
	var c net.Conn
	Eventually(func() error {
		var err error
		c, err = net.DialTimeout("tcp", net.JoinHostPort(ioBenchGuestIP, port), time.Second)
		return err
	}).WithContext(ctx).WithTimeout(30*time.Second).WithPolling(100*time.Millisecond).Should(Succeed(), "%s: connect to the guest's listener", g.name())
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	buf := make([]byte, 1<<20)
	t0 := time.Now()
	for range ioBenchNetMiB {
		_, err := c.Write(buf)
		Expect(err).NotTo(HaveOccurred(), "%s: send to the guest", g.name())
	}
	Expect(c.(*net.TCPConn).CloseWrite()).To(Succeed())
	_, err := io.Copy(io.Discard, c)
	took := time.Since(t0)
	if benchProfiling() {
		GinkgoWriter.Printf("PROFILE %s host sender's TCP_INFO: %s\n", g.name(), tcpInfo(c))
	}
	Expect(err).NotTo(HaveOccurred(), "%s: wait for the guest to close", g.name())
	return took
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
func (g *vmmIOBench) pid() int     { return g.m.Pid() }
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

// tcpInfo summarises a connection's TCP_INFO for the profile: its round
// trip times, window, pacing and where it was limited.
func tcpInfo(c net.Conn) string {
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return err.Error()
	}
	var ti *unix.TCPInfo
	cerr := raw.Control(func(fd uintptr) {
		ti, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	})
	if err = errors.Join(cerr, err); err != nil {
		return err.Error()
	}
	return fmt.Sprintf("rtt=%dus rttvar=%dus min_rtt=%dus cwnd=%d ssthresh=%d mss=%d pacing=%dB/s delivery=%dB/s segs_out=%d data_segs_out=%d segs_in=%d retrans=%d busy=%dus rwnd_limited=%dus sndbuf_limited=%dus",
		ti.Rtt, ti.Rttvar, ti.Min_rtt, ti.Snd_cwnd, ti.Snd_ssthresh, ti.Snd_mss, ti.Pacing_rate, ti.Delivery_rate,
		ti.Segs_out, ti.Data_segs_out, ti.Segs_in, ti.Total_retrans, ti.Busy_time, ti.Rwnd_limited, ti.Sndbuf_limited)
}
