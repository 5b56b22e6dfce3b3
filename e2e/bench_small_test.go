package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vmmdev/vmm/bench"
	"github.com/vmmdev/vmm/vm/config"
)

// The small guest benchmark: 1 vCPU and 128 MiB, vmm beside QEMU q35 (with
// a PCI Express root port to hot plug into): the VMM's own memory at idle,
// and a disk hot-added through the API (vmm: vm.add-disk; QEMU: QMP
// blockdev-add and device_add of a virtio-blk-pci), until the guest has
// its block device. Then vmm alone at scale: what a machine laid out for
// 254 vCPUs and 512 GiB of hot plug space costs beside one for 8 and 8 GiB,
// and a resize from 1 to 64 vCPUs, both with 512 MiB of RAM (the overhead
// leaves guest RAM out). 512 GiB, not 1 TiB: the emulated KVM
// host's CPU has 40-bit physical addresses, and 1 TiB of hot plug space
// leaves no room for the PCI windows above it; 512 GiB already takes the
// most memory hot plug slots vmm lays out (4096 of 128 MiB).

const (
	smallRAM       = 128 << 20
	scaleRAM       = 512 << 20 // 128 MiB is too little for a kernel's per-CPU areas of 254 possible CPUs
	smallHotDisk   = 8 << 20
	smallHotDev    = "/dev/vda" // the guest has no other disk
	scaleMaxVCPUs  = 254
	scaleHotplug   = 512 << 30
	scaleResizeTo  = 64
	scaleBaseVCPUs = 8
	scaleBaseSpace = 8 << 30
)

// smallGuest is a booted 1 vCPU, 128 MiB guest under the small benchmark.
type smallGuest interface {
	consoleGuest
	pid() int
	addDisk(ctx context.Context, path string)
	stop()
}

var _ = Describe("small guest beside QEMU", Label("benchmark"), Serial, func() {
	It("reports the idle overhead at 1 vCPU and 128 MiB and a disk hot add", func(ctx SpecContext) {
		runs := min(benchRuns(3), 3)
		starters := []func(context.Context) smallGuest{startVmmSmall}
		if qemu := os.Getenv("VMM_QEMU"); qemu != "" {
			starters = append(starters, func(ctx context.Context) smallGuest { return startQEMUSmall(ctx, qemu) })
		}
		ok := takeTurns(ctx, "small", runs, starters, measureSmall)
		Expect(ok).To(BeNumerically(">", 0), "every run failed")
	}, SpecTimeout(15*time.Minute))

	It("reports vmm's cost of a machine laid out for 254 vCPUs and 512 GiB, and a resize to 64 vCPUs", func(ctx SpecContext) {
		runs := min(benchRuns(3), 3) // the Go heap alone moves an idle VMM by 2-3 MiB from one run to the next: one run says little
		for range runs {
			for _, c := range []struct {
				metric  string
				max     int
				hotplug uint64
			}{
				{fmt.Sprintf("scale: VMM overhead; max %d vCPUs and 8 GiB hot plug space", scaleBaseVCPUs), scaleBaseVCPUs, scaleBaseSpace},
				{fmt.Sprintf("scale: VMM overhead; max %d vCPUs and 512 GiB hot plug space", scaleMaxVCPUs), scaleMaxVCPUs, scaleHotplug},
			} {
				cfg := config.Default()
				cfg.CPUs = config.CPUs{BootVCPUs: 1, MaxVCPUs: c.max}
				cfg.Memory.Size, cfg.Memory.HotplugSize = scaleRAM, c.hotplug
				m := startGuest(ctx, "bench-scale", cfg)
				Expect(m.WaitReady(ctx)).To(Succeed(), "console:\n%s", m.Console().Tail(40))
				v := &vmmBench{m: m}
				emit(c.metric, "MiB", bench.VMM, idleOverhead(v.pid()))
				profileRSS(c.metric, v.pid())
				if c.max == scaleMaxVCPUs {
					took := timeToGuest(ctx, v, fmt.Sprintf(`{ read -r p </sys/devices/system/cpu/present; [ "$p" = 0-%d ]; }`, scaleResizeTo-1),
						func() { v.resizeVCPUs(ctx, scaleResizeTo) })
					emitDuration(fmt.Sprintf("scale: resize 1 -> %d vCPUs: request to present", scaleResizeTo), bench.VMM, took)
					emit(fmt.Sprintf("scale: VMM overhead with %d vCPUs", scaleResizeTo), "MiB", bench.VMM, idleOverhead(v.pid()))
				}
				v.stop()
			}
		}
	}, SpecTimeout(15*time.Minute))
})

// idleOverhead waits for the VMM to settle and returns its resident memory
// outside guest RAM, in MiB.
func idleOverhead(pid int) float64 {
	GinkgoHelper()
	time.Sleep(2 * time.Second)
	total, guestMem, err := rssSplit(pid)
	Expect(err).NotTo(HaveOccurred())
	return float64(total-guestMem) / (1 << 20)
}

// measureSmall takes one run's measurements on a booted small guest.
func measureSmall(ctx context.Context, g smallGuest) {
	GinkgoHelper()
	emit("VMM overhead: RSS minus guest memory; idle; 1 vCPU; 128 MiB", "MiB", g.name(), idleOverhead(g.pid()))
	profileRSS(g.name(), g.pid())
	hot := filepath.Join(GinkgoT().TempDir(), "hot.img")
	makeImage(hot, smallHotDisk, hpMarker)
	var stats map[string]uint64
	if benchProfiling() {
		stats = kvmStats(g.pid())
	}
	took := timeToGuest(ctx, g, "[ -b "+smallHotDev+" ]", func() { g.addDisk(ctx, hot) })
	emitDuration("add-disk: request to block device in the guest (vm.add-disk; device_add virtio-blk-pci)", g.name(), took)
	profileStep("add-disk", g.name(), g.pid(), stats)
}

// vmmSmall is vmm under the small benchmark.
type vmmSmall struct{ *vmmBench }

func startVmmSmall(ctx context.Context) smallGuest {
	GinkgoHelper()
	cfg := config.Default()
	cfg.CPUs = config.CPUs{BootVCPUs: 1, MaxVCPUs: 1}
	cfg.Memory.Size = smallRAM
	m := startGuest(ctx, "bench-small", cfg)
	Expect(m.WaitReady(ctx)).To(Succeed())
	return vmmSmall{&vmmBench{m: m}}
}

func (v vmmSmall) addDisk(ctx context.Context, path string) {
	GinkgoHelper()
	c, cancel := apiCtx(ctx)
	defer cancel()
	_, err := v.m.API().AddDisk(c, config.Disk{Path: path})
	Expect(err).NotTo(HaveOccurred())
}

// qemuSmall is QEMU q35 under the small benchmark, with a PCI Express root
// port (hp0) for the hot-added disk.
type qemuSmall struct{ *qemuBench }

func startQEMUSmall(ctx context.Context, qemu string) smallGuest {
	GinkgoHelper()
	return qemuSmall{startQEMUWithQMP(ctx, qemu, "-smp", "1", "-m", fmt.Sprintf("%dM", smallRAM>>20),
		"-device", "pcie-root-port,id=hp0,chassis=1")}
}

func (q qemuSmall) addDisk(_ context.Context, path string) {
	GinkgoHelper()
	Expect(q.qmp.do("blockdev-add", map[string]any{"driver": "raw", "node-name": "hot0",
		"file": map[string]any{"driver": "file", "filename": path}})).To(Succeed())
	Expect(q.qmp.do("device_add", map[string]any{"driver": "virtio-blk-pci", "id": "hotdisk0", "drive": "hot0", "bus": "hp0"})).To(Succeed())
}
