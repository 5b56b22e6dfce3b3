package e2e

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vmmdev/vmm/guest"
)

// kataCreateBody is the vm.create body Kata Containers' Cloud Hypervisor
// driver sends (e2e/testdata/kata-vm-create.json, as its generated client
// writes it), with the project's guest in place of its files: the ELF
// vmlinux, the initramfs and the default command line.
func kataCreateBody() string {
	GinkgoHelper()
	data, err := os.ReadFile(filepath.Join(testdataDir(), "kata-vm-create.json"))
	Expect(err).NotTo(HaveOccurred())
	var body map[string]any
	Expect(json.Unmarshal(data, &body)).To(Succeed())
	p := guest.ResolvePaths()
	Expect(p.Vmlinux).To(BeARegularFile(), "the vmlinux: make images, or set %s", guest.EnvVmlinux)
	body["payload"] = map[string]any{"kernel": p.Vmlinux, "initramfs": p.Initramfs, "cmdline": guest.DefaultCmdline}
	out, err := json.Marshal(body)
	Expect(err).NotTo(HaveOccurred())
	return string(out)
}

// configAt reads a field of vm.info's config by its dotted path.
func configAt(info map[string]any, path string) any {
	var v any = info["config"]
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// Kata Containers drives Cloud Hypervisor through a client generated from
// its OpenAPI document: vm.create with every field its constructors fill
// in, vm.boot, vm.info for the sizes its next requests start from,
// vm.resize, vm.shutdown and vmm.shutdown. The same requests, unchanged,
// drive vmm.
var _ = Describe("Kata Containers' requests against a vmm started with only --api-socket", Label("api"), func() {
	It("create from Kata's body, boot, add vCPUs (4 -> 8) and 1 GiB, read memory.size, shut down", func(ctx SpecContext) {
		sock := apiSocketPath()
		v := startAPIVMM(sock)
		v.waitAPI()

		By("vm.create takes Kata's body as it is: 204, state Created")
		r := apiPut(sock, "vm.create", kataCreateBody())
		Expect(r.status).To(Equal(204), r.raw+v.logs())
		Expect(r.header["content-type"]).To(Equal("application/json"))
		info := vmInfo(sock)
		Expect(info["state"]).To(Equal("Created"), "Kata checks the state after vm.create")
		for path, want := range map[string]any{
			"cpus.boot_vcpus": 4, "cpus.max_vcpus": 8, "cpus.nested": true, "cpus.topology.cores_per_die": 8,
			"memory.size": 1 << 30, "memory.hotplug_size": 8 << 30, "memory.hotplug_method": "Acpi", "memory.thp": true,
			"platform.num_pci_segments": 2, "rng.src": "/dev/urandom", "serial.mode": "Tty", "console.mode": "Off",
		} {
			Expect(configAt(info, path)).To(BeEquivalentTo(want), "vm.info config.%s", path)
		}

		By("vm.boot: 204, state Running, and the guest's shell on the serial port")
		r = apiPut(sock, "vm.boot")
		Expect(r.status).To(Equal(204), r.raw+v.logs())
		Expect(vmInfo(sock)["state"]).To(Equal("Running"), "Kata checks the state after vm.boot")
		v.waitConsole(ctx, 0, guest.ReadyMarker, apiBootTimeout)
		Expect(v.sh(ctx, "grep -c ^processor /proc/cpuinfo")).To(Equal("4"))

		By("vm.resize to 8 vCPUs: 204, boot_vcpus 8 at once; the guest onlines the new ones")
		r = apiPut(sock, "vm.resize", `{"desired_vcpus":8}`)
		Expect(r.status).To(Equal(204), r.raw+v.logs())
		Expect(configAt(vmInfo(sock), "cpus.boot_vcpus")).To(BeEquivalentTo(8))
		Eventually(func() string { return v.sh(ctx, "cat /sys/devices/system/cpu/present") }).
			WithContext(ctx).WithTimeout(apiCmdTimeout).WithPolling(time.Second).Should(Equal("0-7"), "present CPUs")
		v.sh(ctx, "echo 1 | tee /sys/devices/system/cpu/cpu[4-7]/online >/dev/null")
		Expect(v.sh(ctx, "cat /sys/devices/system/cpu/online")).To(Equal("0-7"), "online CPUs")
		Expect(v.sh(ctx, "grep -c ^processor /proc/cpuinfo")).To(Equal("8"))
		Expect(vmInfo(sock)["active_vcpus"]).To(BeEquivalentTo(8))

		By("vm.resize to 2 GiB, computed as Kata does from memory.size: 204, and memory.size is 2 GiB at once")
		v.sh(ctx, "echo online > /sys/devices/system/memory/auto_online_blocks")
		size, ok := configAt(vmInfo(sock), "memory.size").(float64)
		Expect(ok).To(BeTrue(), "memory.size in vm.info")
		desired := int64(size) + 1<<30
		r = apiPut(sock, "vm.resize", `{"desired_ram":`+jsonInt(desired)+`}`)
		Expect(r.status).To(Equal(204), r.raw+v.logs())
		info = vmInfo(sock)
		Expect(configAt(info, "memory.size")).To(BeEquivalentTo(2<<30), "config.memory.size right after the hot add")
		Expect(info["memory_actual_size"]).To(BeEquivalentTo(2 << 30))
		Eventually(func() int {
			kib, _ := strconv.Atoi(v.sh(ctx, "awk '/^MemTotal/ {print $2}' /proc/meminfo"))
			return kib
		}).WithContext(ctx).WithTimeout(apiCmdTimeout).WithPolling(time.Second).
			Should(BeNumerically(">=", 0.9*(2<<20)), "MemTotal (KiB) after the hot add")
		Expect(v.sh(ctx, "echo alive")).To(Equal("alive"))

		By("vm.shutdown: 204; vmm.shutdown: 200, the process exits with status 0 and removes its socket")
		r = apiPut(sock, "vm.shutdown")
		Expect(r.status).To(Equal(204), r.raw+v.logs())
		Expect(vmInfo(sock)["state"]).To(Equal("Shutdown"))
		r = apiPut(sock, "vmm.shutdown")
		Expect(r.status).To(Equal(200), r.raw)
		Eventually(v.done).WithTimeout(30 * time.Second).Should(BeClosed())
		Expect(v.err).NotTo(HaveOccurred(), v.logs())
		_, err := os.Lstat(sock)
		Expect(errors.Is(err, os.ErrNotExist)).To(BeTrue(), "socket left: %v", err)
	}, SpecTimeout(apiBootTimeout+8*apiCmdTimeout))
})

// jsonInt writes n as a JSON number.
func jsonInt(n int64) string {
	data, _ := json.Marshal(n)
	return string(data)
}
