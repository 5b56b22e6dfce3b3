package e2e

import (
	"crypto/md5"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vmmdev/vmm/guest"
	"github.com/vmmdev/vmm/vm/config"
)

// The kill -9 spec's blocks: the guest writes block i (64 KiB of random
// bytes) at byte i*64 KiB of vda, flushes it, and only then prints
// "SYNCED i MD5" on the console.
const (
	syncedBlock  = 64 << 10
	syncedBlocks = 200
	// syncedScript is the guest's writer, run in the background with its
	// output on the console.
	syncedScript = `(for i in $(seq 1 200); do ` +
		`dd if=/dev/urandom of=/tmp/blk bs=65536 count=1 2>/dev/null; ` +
		`dd if=/tmp/blk of=/dev/vda bs=65536 seek=$i conv=notrunc,fsync 2>/dev/null || break; ` +
		`echo "SYNCED $i $(md5sum </tmp/blk | cut -d' ' -f1)"; ` +
		`done) >/dev/console 2>&1 &`
)

var syncedLine = regexp.MustCompile(`(?m)^SYNCED (\d+) ([0-9a-f]{32})\r?$`)

// diskGuest starts a machine of 2 vCPUs, 512 MiB and the disk at path.
func diskGuest(ctx SpecContext, name, path string) *guest.Machine {
	GinkgoHelper()
	cfg := smallGuestConfig()
	cfg.Disks = []config.Disk{{Path: path}}
	m := startGuest(ctx, name, cfg)
	Expect(m.WaitReady(ctx)).To(Succeed())
	return m
}

var _ = Describe("the disk under faults", Label("devices", "faults"), func() {
	It("keeps every block the guest had flushed when the vmm is killed with SIGKILL mid-write", func(ctx SpecContext) {
		disk := filepath.Join(GinkgoT().TempDir(), "disk.img")
		makeImage(disk, (syncedBlocks+2)*syncedBlock, diskMarker)
		m := diskGuest(ctx, "kill9-disk", disk)

		By("the guest writes, flushes and lists blocks; the vmm is killed after 20")
		from := m.Console().Len()
		_, _, err := m.Sh(ctx, syncedScript)
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() int {
			return len(syncedLine.FindAllString(m.ConsoleText()[from:], -1))
		}).WithContext(ctx).WithTimeout(5*time.Minute).WithPolling(200*time.Millisecond).Should(BeNumerically(">=", 20), func() string { return m.Console().Tail(20) })
		Expect(syscall.Kill(m.Pid(), syscall.SIGKILL)).To(Succeed())
		_, err = m.Wait(ctx)
		Expect(err).NotTo(HaveOccurred())

		By("every block the guest listed is in the image")
		img, err := os.ReadFile(disk)
		Expect(err).NotTo(HaveOccurred())
		synced := syncedLine.FindAllStringSubmatch(m.ConsoleText()[from:], -1)
		Expect(len(synced)).To(BeNumerically(">=", 20))
		Expect(len(synced)).To(BeNumerically("<", syncedBlocks), "the vmm was killed before the guest finished")
		for _, s := range synced {
			i, _ := strconv.Atoi(s[1])
			sum := md5.Sum(img[i*syncedBlock:][:syncedBlock])
			Expect(hex.EncodeToString(sum[:])).To(Equal(s[2]), "block %d", i)
		}
		GinkgoWriter.Printf("%d flushed blocks checked after the SIGKILL\n", len(synced))
	}, SpecTimeout(bootTimeout+8*time.Minute))

	It("gives the guest I/O errors when the image is truncated under it or its disk is full, logs them and runs on", func(ctx SpecContext) {
		// The image lives on a 4 MiB tmpfs: sparse at 32 MiB, it fills
		// the file system long before the guest fills the disk.
		dir := GinkgoT().TempDir()
		out, err := exec.CommandContext(ctx, "mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "mount a small tmpfs: %s", out)
		DeferCleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
		disk := filepath.Join(dir, "disk.img")
		Expect(os.WriteFile(disk, []byte(diskMarker), 0o644)).To(Succeed())
		Expect(os.Truncate(disk, 32<<20)).To(Succeed())
		m := diskGuest(ctx, "disk-full", disk)

		By("a full disk: the guest's flushed write fails with an I/O error")
		out2, status, err := m.Sh(ctx, "dd if=/dev/urandom of=/dev/vda bs=1M count=16 seek=4 conv=notrunc,fsync 2>&1")
		Expect(err).NotTo(HaveOccurred())
		Expect(status).NotTo(BeZero(), "writing 16 MiB on a 4 MiB file system succeeded: %s", out2)
		Expect(sh(ctx, m, "dmesg | grep -c 'I/O error' || true")).NotTo(Equal("0"), "the guest's kernel saw no I/O error")
		Eventually(m.VmmLog).WithTimeout(time.Minute).Should(MatchRegexp(`virtio-blk: I/O on the image failed.*no space left on device`))
		guestIsUnharmed(ctx, m)

		By("a truncated image: the guest's read past the cut fails with an I/O error")
		Expect(os.Truncate(disk, 1<<20)).To(Succeed())
		out3, status, err := m.Sh(ctx, "echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vda of=/dev/null bs=1M count=1 skip=24 2>&1")
		Expect(err).NotTo(HaveOccurred())
		Expect(status).NotTo(BeZero(), "reading past the end of a truncated image succeeded: %s", out3)
		Eventually(m.VmmLog).WithTimeout(time.Minute).Should(MatchRegexp(`virtio-blk: I/O on the image failed.*read at byte`))
		Expect(sh(ctx, m, "head -c "+strconv.Itoa(len(diskMarker))+" /dev/vda")).To(Equal(diskMarker), "the part before the cut still reads")
		guestIsUnharmed(ctx, m)
	}, SpecTimeout(bootTimeout+6*cmdTimeout))

	It("carries on when its tap is deleted under it: the guest's network fails, the rest runs", func(ctx SpecContext) {
		m, _, _, _ := devicesGuest(ctx, "tap-deleted")
		upGuestNet(ctx, m)
		out, err := exec.CommandContext(ctx, "ip", "link", "del", devTap()).CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "delete the tap: %s", out)
		_, status, err := m.Sh(ctx, "ping -c 2 -W 2 "+devHostIP())
		Expect(err).NotTo(HaveOccurred())
		Expect(status).NotTo(BeZero(), "the guest still reaches the deleted tap")
		Eventually(m.VmmLog).WithTimeout(time.Minute).Should(MatchRegexp(`virtio-net: tap (read|write)`), "the tap's failure is logged")
		writeGuestMarker(ctx, m)
		guestIsUnharmed(ctx, m)
		Expect(strings.Count(m.VmmLog(), "panic")).To(BeZero(), m.VmmLog())
	}, SpecTimeout(bootTimeout+6*cmdTimeout))
})
