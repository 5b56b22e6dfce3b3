package e2e

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vmmdev/vmm/guest"
	"github.com/vmmdev/vmm/vm/config"
)

// The virtio devices' host side in the KVM host: a tap the vmm creates,
// with the host's address on a private /24, and the guest's address there;
// each Ginkgo process has its own (procTap, procIP).
func devTap() string     { return procTap("vmmtap0") }
func devHostIP() string  { return procIP(249, 1) }
func devGuestIP() string { return procIP(249, 2) }

// procTap is tap base's name in this Ginkgo process: base itself in the
// first, base + "p" + N in process N, so that specs running side by side
// (e2erun -procs) never share a tap.
func procTap(base string) string {
	if p := GinkgoParallelProcess(); p > 1 {
		return fmt.Sprintf("%sp%d", base, p)
	}
	return base
}

// procIP is address host of this Ginkgo process's /24 on the KVM host
// numbered subnet: 192.168.subnet.0/24 in the first process, 8 subnets
// lower in each next one (the suite's subnets are 249-252).
func procIP(subnet, host int) string {
	return fmt.Sprintf("192.168.%d.%d", subnet-8*(GinkgoParallelProcess()-1), host)
}

const (
	devMask     = "255.255.255.0"
	diskMarker  = "vmm-disk-0123456789"
	roMarker    = "vmm-readonly-disk"
	guestMarker = "guest-wrote-this"
	// guestWriteSector is where the guest writes guestMarker on vda: 1 MiB.
	guestWriteSector = 2048
	// devTCPPort is the host's port for the TCP transfer.
	devTCPPort = 5555
)

// makeImage writes a raw disk image of size bytes that starts with marker.
func makeImage(path string, size int, marker string) []byte {
	GinkgoHelper()
	b := make([]byte, size)
	copy(b, marker)
	Expect(os.WriteFile(path, b, 0o644)).To(Succeed())
	return b
}

// devicesConfig is a small machine with a disk, a read-only disk, a net on
// devTap() (MAC generated) and an rng on /dev/urandom.
func devicesConfig(disk, ro string) config.VM {
	cfg := config.Default()
	cfg.CPUs = config.CPUs{BootVCPUs: 2, MaxVCPUs: 2}
	cfg.Memory.Size = 512 << 20
	cfg.Disks = []config.Disk{{Path: disk}, {Path: ro, Readonly: true}}
	cfg.Net = []config.Net{{Tap: devTap(), IP: devHostIP(), Mask: devMask}}
	cfg.RNG = &config.RNG{}
	return cfg
}

// upGuestNet gives the guest's eth0 its address and pings the host side of
// the tap.
func upGuestNet(ctx SpecContext, m *guest.Machine) {
	GinkgoHelper()
	sh(ctx, m, "ip addr add "+devGuestIP()+"/24 dev eth0 && ip link set eth0 up")
	// A reply proves the path; under emulation one of three may be late.
	Expect(sh(ctx, m, "ping -c 3 -W 5 "+devHostIP())).To(MatchRegexp(`[1-3] packets received`))
}

// tcpReceipt is what receiveTCP's connection delivered.
type tcpReceipt struct {
	n    int64
	took time.Duration // from the accept to the last byte
	err  error
}

// receiveTCP accepts one connection on ln and, in the background, copies
// exactly n bytes of it to w; the channel then gets the receipt.
func receiveTCP(ln net.Listener, n int64, w io.Writer) <-chan tcpReceipt {
	got := make(chan tcpReceipt, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- tcpReceipt{err: err}
			return
		}
		defer c.Close()
		t0 := time.Now()
		copied, err := io.CopyN(w, c, n)
		got <- tcpReceipt{n: copied, took: time.Since(t0), err: err}
	}()
	return got
}

// countingWriter counts the bytes written through it to w.
type countingWriter struct {
	w io.Writer
	n atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// watchProgress reports *n every 10 s until it reaches total or ctx ends,
// and calls stall when it has not moved for stallAfter.
func watchProgress(ctx context.Context, n *atomic.Int64, total int64, stallAfter time.Duration, stall func()) {
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	last, since := int64(-1), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cur := n.Load()
		fmt.Fprintf(GinkgoWriter, "TCP: %d of %d MiB received\n", cur>>20, total>>20)
		if cur >= total {
			return
		}
		if cur != last {
			last, since = cur, time.Now()
		} else if time.Since(since) >= stallAfter {
			fmt.Fprintf(GinkgoWriter, "TCP: no progress for %s: stopping the send\n", stallAfter)
			stall()
			return
		}
	}
}

// devicesGuest starts a guest with a fresh 16 MiB disk and an 8 MiB
// read-only one (extraArgs added to the vmm's command line), and returns
// it with the images' paths and the read-only image's bytes.
func devicesGuest(ctx SpecContext, name string, extraArgs ...string) (m *guest.Machine, disk, ro string, roBytes []byte) {
	GinkgoHelper()
	dir := GinkgoT().TempDir()
	disk, ro = filepath.Join(dir, "disk.img"), filepath.Join(dir, "ro.img")
	makeImage(disk, 16<<20, diskMarker)
	roBytes = makeImage(ro, 8<<20, roMarker)
	m = startGuest(ctx, name, devicesConfig(disk, ro), extraArgs...)
	Expect(m.WaitReady(ctx)).To(Succeed())
	return m, disk, ro, roBytes
}

// The PCI functions devicesConfig's machine has, in /sys/bus/pci/devices:
// the host bridge, then the disks, the net and the rng in configuration
// order, each as "address vendor device class".
var devicesPCIFunctions = []string{
	"0000:00:00.0 0x1b36 0x0008 0x060000",
	"0000:00:01.0 0x1af4 0x1042 0x010000",
	"0000:00:02.0 0x1af4 0x1042 0x010000",
	"0000:00:03.0 0x1af4 0x1041 0x020000",
	"0000:00:04.0 0x1af4 0x1044 0xff0000",
}

// listPCI is the guest's PCI functions as devicesPCIFunctions writes
// them; busybox has no lspci.
const listPCI = `for d in /sys/bus/pci/devices/*; do echo ${d##*/} $(cat $d/vendor $d/device $d/class); done`

// whereDevices prints where vda, vdb and eth0 sit in sysfs, a line each
// (busybox's readlink takes one file).
const whereDevices = `for p in /sys/block/vda /sys/block/vdb /sys/class/net/eth0/device; do readlink -f $p; done`

// expectDevicesOnPCI checks that the guest found the devices on PCI
// segment 0 where vm.info's device_tree says they are, and uses a vector
// of its own per queue.
func expectDevicesOnPCI(ctx SpecContext, m *guest.Machine) {
	GinkgoHelper()
	Expect(strings.Split(sh(ctx, m, listPCI), "\n")).To(Equal(devicesPCIFunctions), "/sys/bus/pci/devices")
	info, err := m.Info(ctx)
	Expect(err).NotTo(HaveOccurred())
	for id, bdf := range map[string]string{"_disk0": "0000:00:01.0", "_disk1": "0000:00:02.0", "_net2": "0000:00:03.0", "__rng": "0000:00:04.0"} {
		Expect(info.DeviceTree).To(HaveKey(id))
		Expect(info.DeviceTree[id].Parent).To(Equal("_virtio-pci-"+id), "device_tree: %s's parent", id)
		Expect(info.DeviceTree["_virtio-pci-"+id].PCIBDF).To(Equal(bdf), "device_tree: %s's pci_bdf", id)
	}
	Expect(sh(ctx, m, whereDevices)).To(MatchRegexp(
		`^/sys/devices/pci0000:00/0000:00:01\.0/virtio\d+/block/vda\n`+
			`/sys/devices/pci0000:00/0000:00:02\.0/virtio\d+/block/vdb\n`+
			`/sys/devices/pci0000:00/0000:00:03\.0/virtio\d+$`), "where vda, vdb and eth0 sit")
	// MSI-X: a vector per queue and one per device for configuration
	// changes (Linux 6.1 calls the chip PCI-MSI, later ones PCI-MSIX-BDF).
	irqs := sh(ctx, m, "grep -E 'PCI-MSI.*virtio' /proc/interrupts")
	for _, want := range []string{`-req\.0`, `-req\.0`, `-input\.0`, `-output\.0`, `-input$`, `-config`, `-config`, `-config`, `-config`} {
		Expect(irqs).To(MatchRegexp(`(?m)PCI-MSI.*virtio\d+`+want), "/proc/interrupts:\n%s", irqs)
	}
	Expect(strings.Count(irqs, "\n")+1).To(Equal(9), "MSI-X vectors in /proc/interrupts:\n%s", irqs)
	Expect(sh(ctx, m, `grep -E 'virtio[0-9]+-req\.0' /proc/interrupts | awk '{n=0; for (i=2; i<NF; i++) if ($i ~ /^[0-9]+$/) n+=$i; print n}' | head -1`)).
		NotTo(Equal("0"), "vda's queue vector took no interrupt")
}

// writeGuestMarker has the guest write guestMarker to vda with fsync.
func writeGuestMarker(ctx SpecContext, m *guest.Machine) {
	GinkgoHelper()
	sh(ctx, m, "echo "+guestMarker+" | dd of=/dev/vda bs=512 seek="+strconv.Itoa(guestWriteSector)+" conv=sync,fsync")
}

// Each device spec has a guest of its own (a boot costs about 10 s under
// emulation), so that a retried spec starts afresh (see e2e/runner).
var _ = Describe("virtio devices", Label("devices"), func() {
	DescribeTable("give the guest a disk, a read-only disk, entropy and a network, listed by vm.info",
		func(ctx SpecContext, transport string) {
			m, disk, ro, _ := devicesGuest(ctx, "devices-"+transport, "--virtio-transport", transport)

			By("vm.info lists the disks, the net with its tap and MAC, and the rng")
			info, err := m.Info(ctx)
			Expect(err).NotTo(HaveOccurred())
			want := withDefaults(config.VM{Disks: []config.Disk{{Path: disk}, {Path: ro, Readonly: true}}, RNG: &config.RNG{Src: "/dev/urandom"}})
			Expect(info.Config.Disks).To(Equal(want.Disks))
			Expect(info.Config.Net).To(HaveLen(1))
			Expect(info.Config.Net[0].Tap).To(Equal(devTap()))
			Expect(info.Config.Net[0].MAC).To(MatchRegexp(`^52:54:00(:[0-9a-f]{2}){3}$`), "generated MAC")
			Expect(info.Config.RNG).To(Equal(want.RNG))

			By("the guest found four virtio devices, on " + transport)
			Expect(sh(ctx, m, "ls /sys/bus/virtio/devices | wc -l")).To(Equal("4"))
			if transport == "pci" {
				expectDevicesOnPCI(ctx, m)
			} else {
				Expect(sh(ctx, m, listPCI)).To(Equal(devicesPCIFunctions[0]), "only the host bridge on PCI")
				Expect(sh(ctx, m, "readlink -f /sys/block/vda")).To(ContainSubstring("/LNRO0005:00/"), "vda on virtio-mmio")
			}

			By("the guest reads the image's bytes from vda and vdb; vdb is read-only")
			Expect(sh(ctx, m, "head -c "+strconv.Itoa(len(diskMarker))+" /dev/vda")).To(Equal(diskMarker))
			Expect(sh(ctx, m, "head -c "+strconv.Itoa(len(roMarker))+" /dev/vdb")).To(Equal(roMarker))
			Expect(sh(ctx, m, "cat /sys/block/vda/ro /sys/block/vdb/ro")).To(Equal("0\n1"))
			Expect(sh(ctx, m, "cat /sys/block/vda/size")).To(Equal(strconv.Itoa(16 << 20 / 512)))

			By("the guest writes vda with fsync; a write to vdb fails")
			writeGuestMarker(ctx, m)
			out, status, err := m.Sh(ctx, "dd if=/dev/zero of=/dev/vdb bs=512 count=1 conv=fsync")
			Expect(err).NotTo(HaveOccurred())
			Expect(status).NotTo(BeZero(), "writing the read-only disk succeeded: %s", out)

			By("virtio-rng feeds /dev/hwrng")
			Expect(sh(ctx, m, "cat /sys/class/misc/hw_random/rng_current")).To(HavePrefix("virtio_rng"))
			Expect(sh(ctx, m, "head -c 64 /dev/hwrng | wc -c")).To(Equal("64"))

			By("virtio-net: the guest has the MAC vm.info lists and pings the tap's host side")
			Expect(sh(ctx, m, "cat /sys/class/net/eth0/address")).To(Equal(info.Config.Net[0].MAC))
			upGuestNet(ctx, m)
			hostPing, err := exec.CommandContext(ctx, "ping", "-c", "2", "-W", "5", devGuestIP()).CombinedOutput()
			Expect(err).NotTo(HaveOccurred(), "the KVM host pings the guest:\n%s", hostPing)
		},
		Entry("on PCI (the default)", "pci", SpecTimeout(bootTimeout+10*cmdTimeout)),
		Entry("on virtio-mmio", "mmio", SpecTimeout(bootTimeout+8*cmdTimeout)),
	)

	It("keep the disk's data, the PCI addresses, the tap and the MAC across a guest reboot", func(ctx SpecContext) {
		m, _, _, _ := devicesGuest(ctx, "devices-reboot")
		writeGuestMarker(ctx, m)
		mac := sh(ctx, m, "cat /sys/class/net/eth0/address")
		before := sh(ctx, m, whereDevices)
		Expect(m.RebootFromGuest(ctx)).To(Succeed())
		Expect(m.WaitReady(ctx)).To(Succeed(), "second boot; vmm log:\n%s", m.VmmLog())
		Expect(strings.Split(sh(ctx, m, listPCI), "\n")).To(Equal(devicesPCIFunctions), "PCI functions after the reboot")
		Expect(sh(ctx, m, whereDevices)).To(Equal(before), "where vda, vdb and eth0 sit after the reboot")
		Expect(sh(ctx, m, "dd if=/dev/vda bs=512 skip="+strconv.Itoa(guestWriteSector)+" count=1 2>/dev/null | head -c "+strconv.Itoa(len(guestMarker)))).
			To(Equal(guestMarker))
		Expect(sh(ctx, m, "cat /sys/class/net/eth0/address")).To(Equal(mac), "MAC after the reboot")
		upGuestNet(ctx, m)
		Expect(sh(ctx, m, "head -c 64 /dev/hwrng | wc -c")).To(Equal("64"))
		info, err := m.Info(ctx)
		Expect(err).NotTo(HaveOccurred())
		want := withDefaults(config.VM{Net: []config.Net{{Tap: devTap(), IP: devHostIP(), Mask: devMask, MAC: mac}}})
		Expect(info.Config.Net).To(Equal(want.Net))
	}, SpecTimeout(2*bootTimeout+6*cmdTimeout))

	It("leave in the host's image what the guest wrote after a power off; the read-only one is unchanged", func(ctx SpecContext) {
		m, disk, ro, roBytes := devicesGuest(ctx, "devices-poweroff")
		writeGuestMarker(ctx, m)
		_, _, _ = m.Sh(ctx, "dd if=/dev/zero of=/dev/vdb bs=512 count=1 conv=fsync")
		Expect(m.PowerOffFromGuest(ctx)).To(Succeed())
		status, err := m.Wait(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(status).To(Equal(0), "vmm exit status; its log:\n%s", m.VmmLog())
		got, err := os.ReadFile(disk)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(got[:len(diskMarker)])).To(Equal(diskMarker))
		Expect(string(got[guestWriteSector*512:][:len(guestMarker)+1])).To(Equal(guestMarker + "\n"))
		gotRO, err := os.ReadFile(ro)
		Expect(err).NotTo(HaveOccurred())
		Expect(bytes.Equal(gotRO, roBytes)).To(BeTrue(), "the read-only image changed")
	}, SpecTimeout(bootTimeout+3*cmdTimeout))
})

var _ = Describe("virtio-net under load", Label("devices"), func() {
	// make test sends 16 MiB; make stress sends 100 MiB
	// (VMM_NET_MIB). Under emulation, bulk traffic sometimes kills the
	// guest or freezes the KVM host (docs/testing.md), more often the
	// longer it runs.
	mib := 16
	if n, err := strconv.Atoi(os.Getenv("VMM_NET_MIB")); err == nil && n >= 4 {
		mib = n
	}
	It(fmt.Sprintf("carries %d MiB over TCP from the guest to the host intact", mib/4*4), func(ctx SpecContext) {
		dir := GinkgoT().TempDir()
		disk, ro := filepath.Join(dir, "disk.img"), filepath.Join(dir, "ro.img")
		makeImage(disk, 1<<20, diskMarker)
		makeImage(ro, 1<<20, roMarker)
		m := startGuest(ctx, "devices-tcp", devicesConfig(disk, ro))
		Expect(m.WaitReady(ctx)).To(Succeed())
		upGuestNet(ctx, m)

		// The guest sends mib/4 copies of a 4 MiB random file; the host
		// reads exactly that many bytes and compares checksums.
		copies, blob := mib/4, 4<<20
		ln, err := net.Listen("tcp", net.JoinHostPort(devHostIP(), strconv.Itoa(devTCPPort)))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(ln.Close)
		h := &countingWriter{w: md5.New()}
		got := receiveTCP(ln, int64(copies*blob), h)
		sh(ctx, m, "dd if=/dev/urandom of=/tmp/blob bs=1M count=4 2>/dev/null")
		send := "i=0; while [ $i -lt " + strconv.Itoa(copies) + " ]; do cat /tmp/blob; i=$((i+1)); done"
		want := strings.Fields(sh(ctx, m, "("+send+") | md5sum"))[0]
		c, cancel := context.WithTimeout(ctx, 5*cmdTimeout)
		defer cancel()
		// A stalled transfer ends the send at once (its timeout brings the
		// vmm's state dump) instead of outlasting the harness's patience
		// with a silent KVM host; progress is reported meanwhile.
		var stalled atomic.Bool
		go watchProgress(c, &h.n, int64(copies*blob), 60*time.Second, func() {
			stalled.Store(true)
			fmt.Fprintln(GinkgoWriter, m.StateDump())
			cancel()
		})
		out, status, err := m.Sh(c, "("+send+") | nc -w 30 "+devHostIP()+" "+strconv.Itoa(devTCPPort)+"; true")
		Expect(err).NotTo(HaveOccurred(), "send (stalled: %v, %d of %d bytes received); console:\n%s",
			stalled.Load(), h.n.Load(), copies*blob, m.Console().Tail(20))
		Expect(status).To(BeZero(), out)
		// Bytes per transmitted packet show whether the guest used TSO.
		fmt.Fprintf(GinkgoWriter, "guest /proc/net/dev: %s\n", sh(ctx, m, "grep eth0: /proc/net/dev"))
		var r tcpReceipt
		Eventually(got).WithContext(ctx).WithTimeout(time.Minute).Should(Receive(&r), "the host received nothing")
		Expect(r.err).NotTo(HaveOccurred(), "received %d bytes", r.n)
		Expect(r.n).To(BeEquivalentTo(copies * blob))
		Expect(hex.EncodeToString(h.w.(hash.Hash).Sum(nil))).To(Equal(want), "md5 of the received bytes")
	}, SpecTimeout(bootTimeout+8*cmdTimeout))

})

var _ = Describe("virtio device backends", Label("devices"), func() {
	DescribeTable("refuse a backend that cannot open with one clear message and status 2",
		func(ctx SpecContext, args []string, want string) {
			paths := guest.ResolvePaths()
			cmd := exec.CommandContext(ctx, paths.Vmm, append([]string{"--kernel", paths.Kernel,
				"--initramfs", paths.Initramfs, "--serial", "off"}, args...)...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			Expect(err).To(BeAssignableToTypeOf(exit), "vmm should fail: %v", err)
			Expect(err.(*exec.ExitError).ExitCode()).To(Equal(2), "stderr:\n%s", stderr.String())
			Expect(stderr.String()).To(ContainSubstring(want))
		},
		Entry("a missing disk image", []string{"--disk", "path=/nonexistent.img"}, "disk /nonexistent.img: no such file"),
		Entry("a bad MAC", []string{"--net", "tap=" + devTap() + ",mac=zz"}, "mac=zz"),
		Entry("a missing entropy source", []string{"--rng", "src=/nonexistent"}, "rng src /nonexistent"),
	)
})

// withDefaults is c with the defaults vm.info fills in.
func withDefaults(c config.VM) config.VM {
	c.SetDefaults()
	return c
}
