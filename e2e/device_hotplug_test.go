package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vmmdev/vmm/guest"
	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/api"
	"github.com/vmmdev/vmm/vm/config"
)

// The hot-added devices' host side: a second tap on a /24 of its own (one
// per Ginkgo process), and the marker a hot-added disk's image starts with.
func hpTap() string     { return procTap("vmmtap1") }
func hpHostIP() string  { return procIP(250, 1) }
func hpGuestIP() string { return procIP(250, 2) }

const (
	hpMarker = "vmm-hotplug-disk"
	// hpGuestMarker is what the guest writes to the hot-added disk.
	hpGuestMarker = "guest-wrote-hot"
)

// hotplugConfig is a small machine with one disk and an rng: the disk at
// 0000:00:01.0, the rng at 02.0, so hot-added devices go from 03.0.
func hotplugConfig(disk string) config.VM {
	cfg := config.Default()
	cfg.CPUs = config.CPUs{BootVCPUs: 2, MaxVCPUs: 2}
	cfg.Memory.Size = 512 << 20
	cfg.Disks = []config.Disk{{Path: disk}}
	cfg.RNG = &config.RNG{}
	return cfg
}

// hotplugGuest boots hotplugConfig's machine and returns it with the path
// of a fresh 8 MiB image for hot plug.
func devHotplugGuest(ctx SpecContext, name string) (*guest.Machine, string) {
	GinkgoHelper()
	dir := GinkgoT().TempDir()
	disk, hot := filepath.Join(dir, "disk.img"), filepath.Join(dir, "hot.img")
	makeImage(disk, 1<<20, diskMarker)
	makeImage(hot, 8<<20, hpMarker)
	m := startGuest(ctx, name, hotplugConfig(disk))
	Expect(m.WaitReady(ctx)).To(Succeed())
	return m, hot
}

// apiCtx bounds one API request.
func apiCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, cmdTimeout)
}

// guestDevice waits until the guest has bound a driver to the function at
// bdf and returns the name of what it made of it under class (block:
// vdb; net: eth0).
func guestDevice(ctx SpecContext, m *guest.Machine, bdf, class string) string {
	GinkgoHelper()
	var name string
	Eventually(func() string {
		out, status, err := m.Sh(ctx, "ls /sys/bus/pci/devices/"+bdf+"/virtio*/"+class+" 2>/dev/null")
		if err != nil || status != 0 {
			return ""
		}
		name = strings.TrimSpace(out)
		return name
	}).WithContext(ctx).WithTimeout(cmdTimeout).WithPolling(200*time.Millisecond).ShouldNot(BeEmpty(),
		"the guest never bound %s; console:\n%s", bdf, m.Console().Tail(30))
	return name
}

// waitGone waits until the guest has no function at bdf and vm.info's
// device_tree no longer lists id.
func waitGone(ctx SpecContext, m *guest.Machine, bdf, id string) {
	GinkgoHelper()
	Eventually(func() string {
		out, _, _ := m.Sh(ctx, "ls -d /sys/bus/pci/devices/"+bdf+" 2>/dev/null; true")
		return out
	}).WithContext(ctx).WithTimeout(cmdTimeout).WithPolling(200*time.Millisecond).Should(BeEmpty(),
		"the guest kept %s; console:\n%s", bdf, m.Console().Tail(30))
	Eventually(func() bool {
		c, cancel := apiCtx(ctx)
		defer cancel()
		info, err := m.API().Info(c)
		_, listed := info.DeviceTree[id]
		return err == nil && !listed
	}).WithContext(ctx).WithTimeout(cmdTimeout).WithPolling(200*time.Millisecond).Should(BeTrue(),
		"device_tree still lists %s; vmm log:\n%s", id, m.VmmLog())
}

// vmmCounts is the vmm process's open descriptors and threads.
func vmmCounts(pid int) (fds, threads int) {
	GinkgoHelper()
	f, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	Expect(err).NotTo(HaveOccurred())
	t, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	Expect(err).NotTo(HaveOccurred())
	return len(f), len(t)
}

// expectRefused sends a device request that must fail with status and a
// message containing want.
func expectRefused(ctx SpecContext, err error, status int, want string) {
	GinkgoHelper()
	var ae *api.APIError
	Expect(errors.As(err, &ae)).To(BeTrue(), "want an API error, got %v", err)
	Expect(ae.Status).To(Equal(status), "%v", err)
	Expect(ae.Message()).To(ContainSubstring(want))
}

var _ = Describe("device hot plug", Label("devices", "hotplug"), func() {
	It("adds a disk and a net to a running guest, keeps them across a reboot, and removes them", func(ctx SpecContext) {
		m, hot := devHotplugGuest(ctx, "hotplug")
		c := m.API()

		By("vm.add-disk: 200 with the id and the next free address; the guest gets vdb there")
		cc, cancel := apiCtx(ctx)
		disk, err := c.AddDisk(cc, config.Disk{Path: hot, PCIDevice: config.PCIDevice{ID: "hot"}})
		cancel()
		Expect(err).NotTo(HaveOccurred())
		Expect(disk).To(Equal(&vm.PCIDeviceInfo{ID: "hot", BDF: "0000:00:03.0"}))
		Expect(guestDevice(ctx, m, disk.BDF, "block")).To(Equal("vdb"))
		Expect(sh(ctx, m, "head -c "+strconv.Itoa(len(hpMarker))+" /dev/vdb")).To(Equal(hpMarker))
		Expect(sh(ctx, m, "ls /sys/bus/pci/slots")).To(ContainSubstring("3"), "the ACPI slots")

		By("a synced write to vdb is in the image file")
		sh(ctx, m, "echo "+hpGuestMarker+" | dd of=/dev/vdb bs=512 seek="+strconv.Itoa(guestWriteSector)+" conv=sync,fsync")
		img, err := os.ReadFile(hot)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(img[guestWriteSector*512:][:len(hpGuestMarker)])).To(Equal(hpGuestMarker))

		By("vm.add-net: the guest's new interface pings the host")
		cc, cancel = apiCtx(ctx)
		nic, err := c.AddNet(cc, config.Net{Tap: hpTap(), IP: hpHostIP(), Mask: devMask, PCIDevice: config.PCIDevice{ID: "hotnet"}})
		cancel()
		Expect(err).NotTo(HaveOccurred())
		Expect(nic).To(Equal(&vm.PCIDeviceInfo{ID: "hotnet", BDF: "0000:00:04.0"}))
		ifname := guestDevice(ctx, m, nic.BDF, "net")
		sh(ctx, m, "ip addr add "+hpGuestIP()+"/24 dev "+ifname+" && ip link set "+ifname+" up")
		Expect(sh(ctx, m, "ping -c 3 -W 5 "+hpHostIP())).To(MatchRegexp(`[1-3] packets received`))

		By("bad requests get their answers while the guest runs on")
		takenSlot := uint8(3)
		cc, cancel = apiCtx(ctx)
		_, err = c.AddDisk(cc, config.Disk{Path: hot, PCIDevice: config.PCIDevice{ID: "hot"}})
		expectRefused(ctx, err, http.StatusConflict, "Identifier hot is not unique")
		_, err = c.AddDisk(cc, config.Disk{Path: "/nonexistent/hot.img"})
		expectRefused(ctx, err, http.StatusBadRequest, "no such file")
		_, err = c.AddDisk(cc, config.Disk{Path: hot, PCIDevice: config.PCIDevice{PCIDeviceID: &takenSlot}})
		expectRefused(ctx, err, http.StatusConflict, "taken")
		_, err = c.AddNet(cc, config.Net{Tap: hpTap(), MAC: "zz"})
		expectRefused(ctx, err, http.StatusBadRequest, "zz")
		err = c.RemoveDevice(cc, "nothing")
		expectRefused(ctx, err, http.StatusNotFound, `No device with id "nothing"`)
		err = c.RemoveDevice(cc, "__rng")
		expectRefused(ctx, err, http.StatusBadRequest, "cannot be removed")
		status, body, err := c.Do(cc, http.MethodPut, api.RouteAddDisk, []byte(`{"pth":"/x"}`))
		cancel()
		Expect(err).NotTo(HaveOccurred())
		Expect(status).To(Equal(http.StatusBadRequest), "%s", body)
		Expect(sh(ctx, m, "echo alive")).To(Equal("alive"))
		info, err := c.Info(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(info.Config.Disks).To(HaveLen(2), "nothing half-added")
		Expect(info.Config.Net).To(HaveLen(1))

		By("a reboot keeps both at their addresses")
		Expect(m.RebootFromGuest(ctx)).To(Succeed())
		Expect(m.WaitReady(ctx)).To(Succeed(), "second boot; vmm log:\n%s", m.VmmLog())
		Expect(guestDevice(ctx, m, disk.BDF, "block")).To(Equal("vdb"))
		Expect(sh(ctx, m, "dd if=/dev/vdb bs=512 skip="+strconv.Itoa(guestWriteSector)+" count=1 2>/dev/null | head -c "+strconv.Itoa(len(hpGuestMarker)))).
			To(Equal(hpGuestMarker))
		ifname = guestDevice(ctx, m, nic.BDF, "net")
		sh(ctx, m, "ip addr add "+hpGuestIP()+"/24 dev "+ifname+" && ip link set "+ifname+" up")
		Expect(sh(ctx, m, "ping -c 3 -W 5 "+hpHostIP())).To(MatchRegexp(`[1-3] packets received`))

		By("vm.remove-device: the guest lets both go, vm.info forgets them")
		for _, d := range []*vm.PCIDeviceInfo{disk, nic} {
			cc, cancel = apiCtx(ctx)
			Expect(c.RemoveDevice(cc, d.ID)).To(Succeed())
			cancel()
			waitGone(ctx, m, d.BDF, d.ID)
		}
		Expect(sh(ctx, m, "ls /sys/block")).NotTo(ContainSubstring("vdb"))
		info, err = c.Info(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(info.Config.Disks).To(HaveLen(1))
		Expect(info.Config.Net).To(BeEmpty())

		By("a removed device stays removed across a reboot")
		Expect(m.RebootFromGuest(ctx)).To(Succeed())
		Expect(m.WaitReady(ctx)).To(Succeed(), "third boot; vmm log:\n%s", m.VmmLog())
		Expect(sh(ctx, m, listPCI)).NotTo(ContainSubstring("0000:00:03.0"))
	}, SpecTimeout(3*bootTimeout+30*cmdTimeout))

	It("leaves the vmm's descriptors and threads where they were after repeated add and remove", func(ctx SpecContext) {
		cycles := 30
		if n, err := strconv.Atoi(os.Getenv("VMM_HOTPLUG_CYCLES")); err == nil && n > 0 {
			cycles = n
		}
		m, hot := devHotplugGuest(ctx, "hotplug-cycles")
		c := m.API()
		cycle := func(i int, byGuest bool) time.Duration {
			t0 := time.Now()
			cc, cancel := apiCtx(ctx)
			defer cancel()
			d, err := c.AddDisk(cc, config.Disk{Path: hot})
			Expect(err).NotTo(HaveOccurred(), "cycle %d", i)
			Expect(guestDevice(ctx, m, d.BDF, "block")).To(Equal("vdb"), "cycle %d", i)
			if byGuest {
				// The guest's own eject, through its ACPI slot.
				slot := strings.TrimLeft(strings.Split(d.BDF, ":")[2][:2], "0")
				sh(ctx, m, "echo 0 > /sys/bus/pci/slots/"+slot+"/power")
			} else {
				Expect(c.RemoveDevice(cc, d.ID)).To(Succeed(), "cycle %d", i)
			}
			waitGone(ctx, m, d.BDF, d.ID)
			return time.Since(t0)
		}
		cycle(0, false) // the first builds what stays (the Go runtime's threads, the log)
		fds, threads := vmmCounts(m.Pid())
		var total time.Duration
		for i := 1; i <= cycles; i++ {
			total += cycle(i, i == cycles)
		}
		info, err := c.Info(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(info.Config.Disks).To(HaveLen(1), "the guest's own eject leaves the configuration too")
		fds2, threads2 := vmmCounts(m.Pid())
		fmt.Fprintf(GinkgoWriter, "%d add/remove cycles, %v each on average; vmm fds %d -> %d, threads %d -> %d\n",
			cycles, total/time.Duration(cycles), fds, fds2, threads, threads2)
		// An idle API connection may come or go.
		Expect(fds2).To(BeNumerically("<=", fds+1), "the vmm's descriptors")
		Expect(threads2).To(BeNumerically("<=", threads+2), "the vmm's threads")
		Expect(sh(ctx, m, "echo alive")).To(Equal("alive"))
	}, SpecTimeout(bootTimeout+40*cmdTimeout))
})
