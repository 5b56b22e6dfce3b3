package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"golang.org/x/sys/unix"

	"github.com/vmmdev/vmm/guest"
	"github.com/vmmdev/vmm/guest/agent"
	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/config"
)

// The device lines of Cloud Hypervisor's hot plug guide (docs/hotplug.md
// before it moved to ch-remote), word for word; the socket, the image and
// the vsock socket paths are substituted.
const (
	guideAddDisk      = `curl -H "Accept: application/json" -H "Content-Type: application/json" -i -XPUT --unix-socket /tmp/ch-socket -d "{ \"path\":\"/foo/bar/cloud.img\"}" http://localhost/api/v1/vm.add-disk`
	guideAddNet       = `curl -H "Accept: application/json" -H "Content-Type: application/json" -i -XPUT --unix-socket /tmp/ch-socket -d "{ \"tap\":\"chtap0\"}" http://localhost/api/v1/vm.add-net`
	guideAddVsock     = `curl -H "Accept: application/json" -H "Content-Type: application/json" -i -XPUT --unix-socket /tmp/ch-socket -d "{ \"cid\":3, \"socket\":\"/foo/bar/vsock.sock\"}" http://localhost/api/v1/vm.add-vsock`
	guideRemoveDevice = `curl -H "Accept: application/json" -H "Content-Type: application/json" -i -XPUT --unix-socket /tmp/ch-socket -d "{ \"id\":\"_disk0\"}" http://localhost/api/v1/vm.remove-device`
	guideImage        = "/foo/bar/cloud.img"
	guideVsockSocket  = "/foo/bar/vsock.sock"
	guideTap          = "chtap0"
)

// The host sides of the nets these specs add: the guide's tap (vmm creates
// it), and a tap the spec opens and passes as SCM_RIGHTS.
const (
	guideHostIP  = "192.168.251.1"
	guideGuestIP = "192.168.251.2"
	fdTap        = "vmmtap3"
	fdHostIP     = "192.168.252.1"
	fdGuestIP    = "192.168.252.2"
)

// hostCmd runs a command in the KVM host and expects it to succeed.
func hostCmd(name string, args ...string) {
	GinkgoHelper()
	out, err := exec.Command(name, args...).CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "%s %v: %s", name, args, out)
}

// guideReply runs a guide line against m with paths substituted and
// expects status; it returns the reply's body.
func guideReply(m *guest.Machine, line string, status int, paths ...string) string {
	GinkgoHelper()
	for i := 0; i+1 < len(paths); i += 2 {
		line = strings.ReplaceAll(line, paths[i], paths[i+1])
	}
	r := curlLine(line, m.API().SocketPath())
	Expect(r.status).To(Equal(status), "%s\n%s", line, r.raw)
	return r.body
}

// addedDevice decodes a device add's 200 body.
func addedDevice(body string) vm.PCIDeviceInfo {
	GinkgoHelper()
	var d vm.PCIDeviceInfo
	Expect(json.Unmarshal([]byte(body), &d)).To(Succeed(), "reply %q", body)
	Expect(d.ID).NotTo(BeEmpty(), "reply %q", body)
	return d
}

// pingFrom gives the guest's interface on bdf the address ip and pings
// host from it.
func pingFrom(ctx SpecContext, m *guest.Machine, bdf, ip, host string) {
	GinkgoHelper()
	ifname := guestDevice(ctx, m, bdf, "net")
	sh(ctx, m, "ip addr add "+ip+"/24 dev "+ifname+" && ip link set "+ifname+" up")
	Expect(sh(ctx, m, "ping -c 3 -W 5 "+host)).To(MatchRegexp(`[1-3] packets received`))
}

// openPassedTap opens the tap name in the KVM host as Kata Containers
// does (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR), gives it the host's address and
// brings it up.
func openPassedTap(name, ip string) *os.File {
	GinkgoHelper()
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	Expect(err).NotTo(HaveOccurred())
	ifr, err := unix.NewIfreq(name)
	Expect(err).NotTo(HaveOccurred())
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	Expect(unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)).To(Succeed(), "TUNSETIFF %s", name)
	f := os.NewFile(uintptr(fd), "tap "+name)
	hostCmd("ip", "addr", "add", ip+"/24", "dev", name)
	hostCmd("ip", "link", "set", name, "up")
	return f
}

var _ = Describe("device hot plug as Cloud Hypervisor's guide and Kata do it", Label("devices", "hotplug"), func() {
	It("takes the guide's add-disk, add-net, add-vsock and remove-device lines, a disk on segment 1, and ejects a disk the guest holds open", func(ctx SpecContext) {
		dir, err := os.MkdirTemp("", "hpg")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(os.RemoveAll, dir)
		img, seg1, vsock := filepath.Join(dir, "cloud.img"), filepath.Join(dir, "seg1.img"), filepath.Join(dir, "v.sock")
		makeImage(img, 8<<20, hpMarker)
		makeImage(seg1, 8<<20, diskMarker)
		cfg := config.Default()
		cfg.CPUs = config.CPUs{BootVCPUs: 2, MaxVCPUs: 2}
		cfg.Memory.Size = 512 << 20
		m := startGuest(ctx, "hotplug-guide", cfg, "--platform", "num_pci_segments=2")
		Expect(m.WaitReady(ctx)).To(Succeed())

		By("add-disk: the guest reads the image on the new disk")
		disk := addedDevice(guideReply(m, guideAddDisk, http.StatusOK, guideImage, img))
		Expect(disk.ID).To(Equal("_disk0"), "the id the guide's remove-device line names")
		dev := guestDevice(ctx, m, disk.BDF, "block")
		Expect(sh(ctx, m, "head -c "+strconv.Itoa(len(hpMarker))+" /dev/"+dev)).To(Equal(hpMarker))

		By("add-net: vmm creates the guide's tap; the guest pings the host through it")
		nic := addedDevice(guideReply(m, guideAddNet, http.StatusOK))
		hostCmd("ip", "addr", "add", guideHostIP+"/24", "dev", guideTap)
		pingFrom(ctx, m, nic.BDF, guideGuestIP, guideHostIP)

		By("add-vsock: the guest's agent answers through the new device's socket")
		vs := addedDevice(guideReply(m, guideAddVsock, http.StatusOK, guideVsockSocket, vsock))
		Eventually(func() string {
			out, _, _ := m.Sh(ctx, "readlink /sys/bus/pci/devices/"+vs.BDF+"/virtio*/driver")
			return out
		}).WithContext(ctx).WithTimeout(cmdTimeout).WithPolling(200*time.Millisecond).Should(ContainSubstring("vsock"),
			"the guest's driver of %s; console:\n%s", vs.BDF, m.Console().Tail(30))
		sh(ctx, m, "(cd /root && setsid vmm-agent serve </dev/null >/dev/null 2>/tmp/hp-agent.log &)")
		var out string
		Eventually(func() error {
			c, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			conn, err := agent.DialHybrid(c, vsock, agent.Port)
			if err != nil {
				return err
			}
			out, _, err = agent.RunOn(c, conn, "echo hot-vsock")
			return err
		}).WithContext(ctx).WithTimeout(cmdTimeout).WithPolling(time.Second).Should(Succeed(), "the agent over the hot-added vsock")
		Expect(out).To(Equal("hot-vsock"))

		By("a disk on PCI segment 1: the guest finds it there")
		cc, cancel := apiCtx(ctx)
		s1, err := m.API().AddDisk(cc, config.Disk{Path: seg1, PCIDevice: config.PCIDevice{PCISegment: 1}})
		cancel()
		Expect(err).NotTo(HaveOccurred())
		Expect(s1.BDF).To(HavePrefix("0001:00:"))
		s1dev := guestDevice(ctx, m, s1.BDF, "block")
		Expect(sh(ctx, m, "ls -d /sys/bus/pci/devices/0001:00:*")).To(ContainSubstring(s1.BDF))
		Expect(sh(ctx, m, "head -c "+strconv.Itoa(len(diskMarker))+" /dev/"+s1dev)).To(Equal(diskMarker))

		By("remove-device _disk0 while a guest process holds the disk open: Linux ejects it all the same")
		sh(ctx, m, "setsid sh -c 'exec 3</dev/"+dev+"; echo $$ >/tmp/holder; exec sleep 600' </dev/null >/dev/null 2>&1 &")
		Eventually(func() string {
			out, _, _ := m.Sh(ctx, "readlink /proc/$(cat /tmp/holder)/fd/3")
			return out
		}).WithContext(ctx).WithTimeout(30*time.Second).WithPolling(time.Second).Should(Equal("/dev/"+dev), "a guest process holding the disk")
		guideReply(m, guideRemoveDevice, http.StatusNoContent)
		waitGone(ctx, m, disk.BDF, disk.ID)
		info, err := m.Info(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(info.PendingRemovals).To(BeEmpty())
		Expect(info.Config.Disks).To(HaveLen(1), "the segment 1 disk stays")

		By("the vsock and the segment 1 disk go too")
		for _, d := range []vm.PCIDeviceInfo{vs, *s1} {
			cc, cancel = apiCtx(ctx)
			Expect(m.API().RemoveDevice(cc, d.ID)).To(Succeed())
			cancel()
			waitGone(ctx, m, d.BDF, d.ID)
		}
		Expect(sh(ctx, m, "echo alive")).To(Equal("alive"))
	}, SpecTimeout(bootTimeout+20*cmdTimeout))

	It("adds a net on a tap passed as SCM_RIGHTS, keeps it across a reboot, and closes it on removal", func(ctx SpecContext) {
		m, _ := devHotplugGuest(ctx, "hotplug-fd")
		tap := openPassedTap(fdTap, fdHostIP)
		cc, cancel := apiCtx(ctx)
		nic, err := m.API().AddNetFDs(cc, config.Net{PCIDevice: config.PCIDevice{ID: "kata"}}, tap)
		cancel()
		Expect(err).NotTo(HaveOccurred())
		// vmm works on its own duplicate: the tap outlives the spec's copy.
		Expect(tap.Close()).To(Succeed())
		pingFrom(ctx, m, nic.BDF, fdGuestIP, fdHostIP)
		info, err := m.Info(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(info.Config.Net).To(HaveLen(1))
		Expect(info.Config.Net[0].Tap).To(Equal(fdTap), "the passed tap's name")
		Expect(info.Config.Net[0].FDs).To(HaveLen(1))

		By("a reboot opens the net on the tap again")
		Expect(m.RebootFromGuest(ctx)).To(Succeed())
		Expect(m.WaitReady(ctx)).To(Succeed(), "second boot; vmm log:\n%s", m.VmmLog())
		pingFrom(ctx, m, nic.BDF, fdGuestIP, fdHostIP)

		By("removed, the net's descriptors are closed: the tap goes away")
		cc, cancel = apiCtx(ctx)
		Expect(m.API().RemoveDevice(cc, nic.ID)).To(Succeed())
		cancel()
		waitGone(ctx, m, nic.BDF, nic.ID)
		Eventually(func() bool { _, err := os.Stat("/sys/class/net/" + fdTap); return os.IsNotExist(err) }).
			WithContext(ctx).WithTimeout(30*time.Second).Should(BeTrue(), "the tap %s is still there: vmm kept a descriptor", fdTap)
	}, SpecTimeout(2*bootTimeout+10*cmdTimeout))

	// A removal the guest never completes (pending_removals, everything
	// else going on, a reboot ending it): scenarios/device_removal_pending.lua.
})
