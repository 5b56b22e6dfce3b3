package e2e

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vmmdev/vmm/guest"
)

// The curl lines of Cloud Hypervisor's hot plug guide, word for word but
// for the socket path, which curlLine substitutes.
const (
	guideSocket     = "/tmp/ch-socket"
	guideResizeUp   = `curl -H "Accept: application/json" -H "Content-Type: application/json" -i -XPUT --unix-socket /tmp/ch-socket -d "{ \"desired_vcpus\":8}" http://localhost/api/v1/vm.resize`
	guideResizeDown = `curl -H "Accept: application/json" -H "Content-Type: application/json" -i -XPUT --unix-socket /tmp/ch-socket -d "{ \"desired_vcpus\":2}" http://localhost/api/v1/vm.resize`
	guideResizeRAM  = `curl -H "Accept: application/json" -H "Content-Type: application/json" -i -XPUT --unix-socket /tmp/ch-socket -d "{ \"desired_vcpus\": 4, \"desired_ram\" : 3221225472}" http://localhost/api/v1/vm.resize`
)

// Bounds for the API specs under emulation.
const (
	apiBootTimeout = 4 * time.Minute
	apiCmdTimeout  = 2 * time.Minute
)

// notSupportedYet skips the rest of a spec when the VM answered that the
// operation has not landed yet (400 "not supported yet"), so the spec turns
// itself on when it does.
func notSupportedYet(r curlReply, what string) {
	if r.status == 400 && strings.Contains(r.body, "not supported yet") {
		Skip(what + " is not implemented by the VM yet: " + r.body)
	}
}

var _ = Describe("the API of a vmm started with only --api-socket", Label("api"), Ordered, func() {
	var v *apiVMM
	var sock string

	BeforeAll(func() {
		sock = apiSocketPath()
		v = startAPIVMM(sock)
		v.waitAPI()
	})

	It("answers vmm.ping with 200 and the VMM's version and pid", func() {
		r := apiGet(sock, "vmm.ping")
		Expect(r.status).To(Equal(200), r.raw)
		Expect(r.header["content-type"]).To(Equal("application/json"))
		var p map[string]any
		Expect(json.Unmarshal([]byte(r.body), &p)).To(Succeed())
		Expect(p).To(HaveKey("version"))
		Expect(p["pid"]).To(BeEquivalentTo(v.cmd.Process.Pid))
	})

	It("made its socket with mode 0600", func() {
		fi, err := os.Lstat(sock)
		Expect(err).NotTo(HaveOccurred())
		Expect(fi.Mode().Type()).To(Equal(os.ModeSocket))
		Expect(fi.Mode().Perm()).To(Equal(os.FileMode(0o600)))
	})

	It("answers 404 with Cloud Hypervisor's error body while there is no VM, and 204 to vm.delete", func() {
		r := apiGet(sock, "vm.info")
		Expect(r.status).To(Equal(404), r.raw)
		Expect(r.messages()).To(Equal([]string{"Error from API", "The VM info is not available", "VM is not created"}))
		for _, route := range []string{"vm.boot", "vm.pause", "vm.resume", "vm.reboot", "vm.shutdown", "vm.power-button"} {
			r := apiPut(sock, route)
			Expect(r.status).To(Equal(404), "%s: %s", route, r.raw)
			Expect(r.messages()).To(ContainElement("VM is not created"), route)
		}
		r = apiPut(sock, "vm.resize", `{"desired_vcpus":2}`)
		Expect(r.status).To(Equal(404), r.raw)
		r = apiPut(sock, "vm.delete")
		Expect(r.status).To(Equal(204), "vm.delete without a VM does nothing, as Cloud Hypervisor's: %s", r.raw)
		Expect(r.header["content-type"]).To(Equal("application/json"))
	})

	It("answers 404 to an unknown path and 405 with Allow to a wrong method", func() {
		r := apiGet(sock, "vm.nothing")
		Expect(r.status).To(Equal(404), r.raw)
		r.messages()
		r = curlI("-XGET", "--unix-socket", sock, "http://localhost/api/v1/vm.pause")
		Expect(r.status).To(Equal(405), r.raw)
		Expect(r.header["allow"]).To(Equal("PUT"))
		r.messages()
		r = curlI("-XPUT", "--unix-socket", sock, "http://localhost/api/v1/vmm.ping")
		Expect(r.status).To(Equal(405), r.raw)
		Expect(r.header["allow"]).To(Equal("GET"))
	})

	It("answers 400 naming the problem to bad vm.resize and vm.create bodies", func() {
		for body, want := range map[string]string{
			`{"desired_cpus":8}`:        `unknown field \"desired_cpus\"`,
			`{"desired_vcpus":"eight"}`: `field \"desired_vcpus\": want an integer, got string`,
			`{"desired_vcpus":0}`:       `desired_vcpus=0`,
			`{"desired_vcpus":-1}`:      `desired_vcpus=-1`,
			`[8]`:                       `want a JSON object`,
		} {
			r := apiPut(sock, "vm.resize", body)
			Expect(r.status).To(Equal(400), "%s: %s", body, r.raw)
			Expect(r.body).To(ContainSubstring(want), body)
			r.messages()
		}
		r := curlI("-XPUT", "--unix-socket", sock, "http://localhost/api/v1/vm.resize")
		Expect(r.status).To(Equal(400), "empty body: %s", r.raw)
		r = apiPut(sock, "vm.create", `{"payload":{"kernel":"/k"},"cpu":{}}`)
		Expect(r.status).To(Equal(400), r.raw)
		Expect(r.body).To(ContainSubstring(`unknown field \"cpu\"`))
		r = apiPut(sock, "vm.pause", `{}`)
		Expect(r.status).To(Equal(400), "a body on a body-less action: %s", r.raw)
	})

	It("answers 413 to a body over 1 MiB and keeps serving", func() {
		big := filepath.Join(filepath.Dir(sock), "big.json")
		Expect(os.WriteFile(big, []byte(`{"desired_vcpus":2,"x":"`+strings.Repeat("a", 2<<20)+`"}`), 0o644)).To(Succeed())
		r := curlI("-XPUT", "--unix-socket", sock, "-H", "Content-Type: application/json", "--data-binary", "@"+big, "http://localhost/api/v1/vm.resize")
		Expect(r.status).To(Equal(413), r.raw)
		Expect(curlStatus("--unix-socket", sock, "http://localhost/api/v1/vmm.ping")).To(Equal(200))
	})

	It("serves 64 concurrent clients while a silent one holds a connection", func() {
		silent, err := net.Dial("unix", sock)
		Expect(err).NotTo(HaveOccurred())
		defer silent.Close()
		var wg sync.WaitGroup
		codes := make(chan int, 64)
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes <- curlStatus("--max-time", "30", "--unix-socket", sock, "http://localhost/api/v1/vmm.ping")
			}()
		}
		wg.Wait()
		close(codes)
		for c := range codes {
			Expect(c).To(Equal(200))
		}
	})

	It("creates a VM from JSON with 204, refuses a second create with 500, and reports it Created", func() {
		r := apiPut(sock, "vm.create", guestConfigJSON(2, 2))
		Expect(r.status).To(Equal(204), r.raw+v.logs())
		Expect(r.body).To(BeEmpty())
		r = apiPut(sock, "vm.create", guestConfigJSON(2, 2))
		Expect(r.status).To(Equal(500), r.raw)
		r.messages()
		info := vmInfo(sock)
		Expect(info["state"]).To(Equal("Created"))
		Expect(info).To(HaveKey("memory_actual_size"))
		cfg, ok := info["config"].(map[string]any)
		Expect(ok).To(BeTrue(), "config in %v", info)
		Expect(cfg).To(HaveKey("payload"))
		Expect(cfg["cpus"]).To(HaveKeyWithValue("boot_vcpus", BeEquivalentTo(2)))
		Expect(cfg["memory"]).To(HaveKeyWithValue("size", BeEquivalentTo(1<<30)))
		Expect(cfg).To(HaveKey("serial"))
	})

	It("boots it with 204 and the guest reaches its shell", func(ctx SpecContext) {
		r := apiPut(sock, "vm.boot")
		Expect(r.status).To(Equal(204), r.raw+v.logs())
		v.waitConsole(ctx, 0, guest.ReadyMarker, apiBootTimeout)
		Expect(v.sh(ctx, "echo hello-$((6*7))")).To(Equal("hello-42"))
		Expect(v.sh(ctx, "grep -c ^processor /proc/cpuinfo")).To(Equal("2"))
		Expect(vmInfo(sock)["state"]).To(Equal("Running"))
		r = apiPut(sock, "vm.boot")
		Expect(r.status).To(Equal(500), "boot of a running VM: %s", r.raw)
	}, SpecTimeout(apiBootTimeout+2*apiCmdTimeout))

	It("pauses and resumes the vCPUs, answering 500 to a pause of a paused VM", func(ctx SpecContext) {
		// A guest loop printing a tick five times a second shows whether the
		// vCPUs run.
		from := v.console.Len()
		v.sh(ctx, "(for i in $(seq 1 30); do echo tick-$i; sleep 0.2; done) &")
		v.waitConsole(ctx, from, `tick-3\n`, apiCmdTimeout)
		Expect(apiPut(sock, "vm.pause").status).To(Equal(204))
		Expect(vmInfo(sock)["state"]).To(Equal("Paused"))
		r := apiPut(sock, "vm.pause")
		Expect(r.status).To(Equal(500), r.raw)
		Expect(strings.Join(r.messages(), ": ")).To(ContainSubstring("Paused"))
		time.Sleep(500 * time.Millisecond) // what was in flight has landed
		mark := v.console.Len()
		Consistently(func() string { return v.console.String()[mark:] }).
			WithTimeout(3*time.Second).WithPolling(100*time.Millisecond).
			ShouldNot(ContainSubstring("tick-"), "the guest ran while paused")
		Expect(apiPut(sock, "vm.resume").status).To(Equal(204))
		Expect(vmInfo(sock)["state"]).To(Equal("Running"))
		v.waitConsole(ctx, from, `tick-30\n`, apiCmdTimeout)
		r = apiPut(sock, "vm.resume")
		Expect(r.status).To(Equal(500), "resume of a running VM: %s", r.raw)
		// The guest's clock works after the pause: a 1 s sleep neither hangs
		// nor returns at once.
		begin := time.Now()
		Expect(v.sh(ctx, "sleep 1; echo slept")).To(Equal("slept"))
		Expect(time.Since(begin)).To(BeNumerically(">=", time.Second))
	}, SpecTimeout(4*apiCmdTimeout))

	It("answers 400 to desired_ram on a VM without hotplug_size, and the guest runs on", func(ctx SpecContext) {
		r := apiPut(sock, "vm.resize", `{"desired_ram":2147483648}`)
		Expect(r.status).To(Equal(400), r.raw)
		Expect(r.body).To(ContainSubstring("no hot plug space"))
		Expect(vmInfo(sock)["memory_actual_size"]).To(BeEquivalentTo(1 << 30))
		Expect(v.sh(ctx, "echo alive")).To(Equal("alive"))
	}, SpecTimeout(2*apiCmdTimeout))

	It("is driven by vmmctl: readable and JSON output, exit 1 on an error reply, 2 on misuse", func(ctx SpecContext) {
		code, out, errOut := vmmctl(sock, "ping")
		Expect(code).To(Equal(0), errOut)
		Expect(out).To(HavePrefix("vmm "))
		code, out, errOut = vmmctl(sock, "info")
		Expect(code).To(Equal(0), errOut)
		Expect(out).To(ContainSubstring("state:      Running"))
		Expect(out).To(ContainSubstring("(boot 2, max 2)"))
		code, out, _ = vmmctl(sock, "--json", "info")
		Expect(code).To(Equal(0))
		var info map[string]any
		Expect(json.Unmarshal([]byte(out), &info)).To(Succeed())
		Expect(info["state"]).To(Equal("Running"))
		code, _, errOut = vmmctl(sock, "pause")
		Expect(code).To(Equal(0), errOut)
		code, out, errOut = vmmctl(sock, "pause")
		Expect(code).To(Equal(1))
		Expect(out).To(BeEmpty())
		Expect(errOut).To(ContainSubstring("The VM could not be paused"))
		Expect(errOut).To(ContainSubstring("HTTP 500"))
		code, _, errOut = vmmctl(sock, "resume")
		Expect(code).To(Equal(0), errOut)
		for _, args := range [][]string{{"resize", "--cpus", "0"}, {"resize", "--memory", "12Q"}, {"resize"}, {"frobnicate"}, {"create"}} {
			code, _, errOut = vmmctl(sock, args...)
			Expect(code).To(Equal(2), "%v: %s", args, errOut)
			Expect(errOut).To(ContainSubstring("usage: vmmctl"))
		}
		Expect(v.sh(ctx, "echo back-$((1+1))")).To(Equal("back-2"))
	}, SpecTimeout(2*apiCmdTimeout))

	It("presses the power button with 204", func() {
		r := apiPut(sock, "vm.power-button")
		notSupportedYet(r, "vm.power-button")
		Expect(r.status).To(Equal(204), r.raw)
	})

	It("reboots with 204 and the guest reaches its shell again", func(ctx SpecContext) {
		from := v.console.Len()
		r := apiPut(sock, "vm.reboot")
		Expect(r.status).To(Equal(204), r.raw+v.logs())
		v.waitConsole(ctx, from, guest.ReadyMarker, apiBootTimeout)
		Expect(v.sh(ctx, "echo again-$((2*3))")).To(Equal("again-6"))
	}, SpecTimeout(apiBootTimeout+apiCmdTimeout))

	It("shuts the VM down and deletes it with 204; vm.info is then 404", func() {
		Expect(apiPut(sock, "vm.shutdown").status).To(Equal(204))
		Expect(vmInfo(sock)["state"]).To(Equal("Shutdown"))
		r := apiPut(sock, "vm.shutdown")
		Expect(r.status).To(Equal(500), "shutdown of a shut-down VM: %s", r.raw)
		Expect(apiPut(sock, "vm.delete").status).To(Equal(204))
		Expect(apiGet(sock, "vm.info").status).To(Equal(404))
	})

	It("exits on vmm.shutdown (200, as Cloud Hypervisor's server) with status 0 and removes its socket", func() {
		r := apiPut(sock, "vmm.shutdown")
		Expect(r.status).To(Equal(200), r.raw)
		Expect(r.body).To(BeEmpty())
		Eventually(v.done).WithTimeout(30 * time.Second).Should(BeClosed())
		Expect(v.err).NotTo(HaveOccurred(), v.logs())
		_, err := os.Lstat(sock)
		Expect(errors.Is(err, os.ErrNotExist)).To(BeTrue(), "socket left: %v", err)
	})
})

// The guide's story is one spec on one guest, so that a retry (see
// e2e/runner) starts it afresh.
var _ = Describe("the hot plug guide's curl lines against a booted vmm", Label("api"), func() {
	// The guide's VM (boot=4,max=8, 1 GiB + 8 GiB hotplug) is created through
	// the API; a no-op resize before boot must answer 204.
	It("add vCPUs, remove them (429 only while an eject is pending), and add RAM with vCPUs", func(ctx SpecContext) {
		p := guest.ResolvePaths()
		sock := apiSocketPath()
		v := startAPIVMM(sock)
		v.waitAPI()
		cfg, err := json.Marshal(map[string]any{
			"payload": map[string]any{"kernel": p.Kernel, "initramfs": p.Initramfs, "cmdline": guest.DefaultCmdline},
			"cpus":    map[string]any{"boot_vcpus": 4, "max_vcpus": 8},
			"memory":  map[string]any{"size": 1 << 30, "hotplug_size": 8 << 30},
		})
		Expect(err).NotTo(HaveOccurred())
		r := apiPut(sock, "vm.create", string(cfg))
		Expect(r.status).To(Equal(204), r.raw+v.logs())
		r = apiPut(sock, "vm.resize", `{"desired_vcpus":4}`)
		Expect(r.status).To(Equal(204), r.raw+v.logs())
		r = apiPut(sock, "vm.boot")
		Expect(r.status).To(Equal(204), r.raw+v.logs())
		v.waitConsole(ctx, 0, guest.ReadyMarker, apiBootTimeout)

		By("adding vCPUs: 204, and vm.info reports 8")
		r = curlLine(guideResizeUp, sock)
		Expect(r.status).To(Equal(204), r.raw)
		vmCfg := vmInfo(sock)["config"].(map[string]any)
		Expect(vmCfg["cpus"]).To(HaveKeyWithValue("boot_vcpus", BeEquivalentTo(8)))

		By("removing vCPUs: 204, with 429 only while an eject is pending")
		r = curlLine(guideResizeDown, sock)
		Expect(r.status).To(BeElementOf(204, 429), r.raw)
		Eventually(func() int { return curlLine(guideResizeDown, sock).status }).
			WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Equal(204))

		By("adding RAM with vCPUs: 204, and vm.info reports 3 GiB")
		v.sh(ctx, "echo online > /sys/devices/system/memory/auto_online_blocks")
		r = curlLine(guideResizeRAM, sock)
		Expect(r.status).To(BeElementOf(204, 429), r.raw)
		Eventually(func() int { return curlLine(guideResizeRAM, sock).status }).
			WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Equal(204))
		Expect(vmInfo(sock)["memory_actual_size"]).To(BeEquivalentTo(3 << 30))
	}, SpecTimeout(8*time.Minute))
})

var _ = Describe("the API socket of the real vmm", Label("api"), func() {
	It("replaces a stale socket left by a dead vmm", func() {
		sock := apiSocketPath()
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
		Expect(err).NotTo(HaveOccurred())
		ln.SetUnlinkOnClose(false)
		Expect(ln.Close()).To(Succeed())
		v := startAPIVMM(sock)
		v.waitAPI()
	})

	It("refuses a path that is not a socket with a clear error and leaves it alone", func() {
		path := apiSocketPath()
		Expect(os.WriteFile(path, []byte("precious"), 0o644)).To(Succeed())
		v := startAPIVMM(path)
		Eventually(v.done).WithTimeout(30 * time.Second).Should(BeClosed())
		Expect(v.err).To(HaveOccurred())
		Expect(v.stderr.String()).To(ContainSubstring("is not a socket"))
		Expect(os.ReadFile(path)).To(BeEquivalentTo("precious"))
	})

	It("refuses a socket another vmm serves", func() {
		sock := apiSocketPath()
		first := startAPIVMM(sock)
		first.waitAPI()
		second := startAPIVMM(sock)
		Eventually(second.done).WithTimeout(30 * time.Second).Should(BeClosed())
		Expect(second.stderr.String()).To(ContainSubstring("another process is listening"))
		Expect(curlStatus("--unix-socket", sock, "http://localhost/api/v1/vmm.ping")).To(Equal(200))
	})

	It("removes its socket when stopped with SIGTERM", func() {
		sock := apiSocketPath()
		v := startAPIVMM(sock)
		v.waitAPI()
		Expect(v.cmd.Process.Signal(syscall.SIGTERM)).To(Succeed())
		Eventually(v.done).WithTimeout(30 * time.Second).Should(BeClosed())
		Expect(v.err).NotTo(HaveOccurred(), v.logs())
		_, err := os.Lstat(sock)
		Expect(errors.Is(err, os.ErrNotExist)).To(BeTrue(), "socket left: %v", err)
	})
})
