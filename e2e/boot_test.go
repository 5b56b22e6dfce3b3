package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gmeasure"

	"github.com/vmmdev/vmm/e2e/runner"
	"github.com/vmmdev/vmm/guest"
	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/config"
)

// Bounds for one boot under emulation, where everything is 10-50x slower
// than on hardware: a boot takes 10-20 s there, 60 s at worst seen; one
// that takes longer has hung (it happens under emulation) and is better
// retried than waited for.
const (
	bootTimeout = 2 * time.Minute
	cmdTimeout  = 2 * time.Minute
)

// bootConfig is the boot specs' machine: 4 vCPUs, 1 GiB, the project's
// guest on the serial console.
func bootConfig() config.VM {
	cfg := config.Default()
	cfg.CPUs = config.CPUs{BootVCPUs: 4, MaxVCPUs: 4}
	cfg.Memory.Size = 1 << 30
	return cfg
}

// startGuest starts a vmm for cfg (extraArgs added to its command line),
// stopped again when the spec ends.
func startGuest(ctx context.Context, name string, cfg config.VM, extraArgs ...string) *guest.Machine {
	m, err := guest.Start(ctx, cfg, guest.Options{Name: name, VmmLog: GinkgoWriter, ExtraArgs: extraArgs})
	Expect(err).NotTo(HaveOccurred(), "start the vmm")
	DeferCleanup(func() {
		// A spec that failed by its own check gets the emulation fault
		// its guest shows, if any, which the e2e runner retries.
		if CurrentSpecReport().Failed() {
			reportSeccompDenials(m.Pid())
			if why := m.Diagnose(); why != "" {
				AddReportEntry(runner.EmulationFaultEntry, why+" ("+name+")")
			}
		}
		if err := m.Stop(); err != nil {
			GinkgoWriter.Printf("stop %s: %v\n", name, err)
		}
	})
	return m
}

// sh runs cmd in the guest and expects it to succeed.
func sh(ctx context.Context, m *guest.Machine, cmd string) string {
	GinkgoHelper()
	c, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	out, status, err := m.Sh(c, cmd)
	Expect(err).NotTo(HaveOccurred(), "guest command %q; console:\n%s", cmd, m.Console().Tail(40))
	Expect(status).To(Equal(0), "guest command %q: %s", cmd, out)
	return out
}

// expectFourCPUsAndOneGiB checks the guest's view of bootConfig's machine.
func expectFourCPUsAndOneGiB(ctx context.Context, m *guest.Machine) {
	GinkgoHelper()
	Expect(sh(ctx, m, "grep -c ^processor /proc/cpuinfo")).To(Equal("4"), "processors in /proc/cpuinfo")
	Expect(sh(ctx, m, "cat /sys/devices/system/cpu/online")).To(Equal("0-3"), "online CPUs")
	mem, err := m.MemTotal(ctx)
	Expect(err).NotTo(HaveOccurred())
	Expect(float64(mem)).To(BeNumerically(">=", 0.9*(1<<30)), "MemTotal %d", mem)
	Expect(mem).To(BeNumerically("<=", uint64(1<<30)), "MemTotal")
}

// vcpuThreads lists the names of the vmm's threads that start with "vcpu".
func vcpuThreads(pid int) []string {
	dirs, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/comm", pid))
	var names []string
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err == nil && strings.HasPrefix(string(b), "vcpu") {
			names = append(names, strings.TrimSpace(string(b)))
		}
	}
	sort.Strings(names)
	return names
}

// Each boot spec has a guest of its own: a boot costs about 10 s under
// emulation, and a spec that is retried (see e2e/runner) then
// starts afresh, where a guest shared through BeforeAll would hand the
// retry the same dead guest.
var _ = Describe("booting Debian's kernel", Label("boot"), func() {
	It("reaches the shell with 4 vCPUs and 1 GiB, found through ACPI", func(ctx SpecContext) {
		m := startGuest(ctx, "boot", bootConfig())
		Expect(m.WaitReady(ctx)).To(Succeed())
		expectFourCPUsAndOneGiB(ctx, m)

		dmesg := sh(ctx, m, "dmesg")
		Expect(dmesg).NotTo(MatchRegexp(`ACPI (BIOS )?Error`), "ACPI errors in dmesg")
		Expect(dmesg).To(ContainSubstring("ACPI: Using ACPI (MADT) for SMP configuration information"))
		Expect(dmesg).NotTo(MatchRegexp(`(?i)MP-?table|MPS support|Intel MultiProcessor`), "MP table fallback")
		Expect(dmesg).To(ContainSubstring("ACPI: PM: (supports S0 S5)"))
		Expect(dmesg).To(MatchRegexp(`ttyS0 at I/O 0x3f8 .* is a 16550A`))
		// PCI: the ECAM is trusted (reserved in the e820 map), the host
		// bridge enumerated through ACPI, and _OSC answered.
		Expect(dmesg).To(MatchRegexp(`PCI: (MMCONFIG|ECAM) .* reserved (as|in) E820`), "the MCFG area")
		Expect(dmesg).NotTo(ContainSubstring("not using MMCONFIG"))
		Expect(dmesg).To(ContainSubstring("ACPI: PCI Root Bridge [PCI0] (domain 0000 [bus 00])"))
		Expect(dmesg).To(MatchRegexp(`_OSC: OS now controls \[[^]]*PME`), "_OSC")
		Expect(vcpuThreads(m.Pid())).To(Equal([]string{"vcpu0", "vcpu1", "vcpu2", "vcpu3"}), "named vCPU threads")
	}, SpecTimeout(bootTimeout+3*cmdTimeout))

	It("pauses, resumes and presses the ACPI power button through the API", func(ctx SpecContext) {
		m := startGuest(ctx, "buttons", bootConfig())
		// The button's driver (button.ko) is a module the test image does
		// not load; the devices are there all the same.
		sh(ctx, m, "test -e /sys/bus/acpi/devices/PNP0C0C:00 && test -e /sys/bus/acpi/devices/ACPI0013:00")
		// The GED's interrupt count, from its line in /proc/interrupts.
		gedIRQs := `awk '/ACPI:Ged/ {s=0; for (i=2; i<=NF; i++) if ($i ~ /^[0-9]+$/) s+=$i; print s}' /proc/interrupts`
		before := sh(ctx, m, gedIRQs)
		Expect(before).To(MatchRegexp(`^\d+$`), "no GED line in /proc/interrupts")

		Expect(m.API().Pause(ctx)).To(Succeed())
		info, err := m.Info(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(info.State).To(Equal(vm.StatePaused))
		Expect(info.ActiveVCPUs).To(Equal(4))
		Expect(m.API().Resume(ctx)).To(Succeed())
		Expect(sh(ctx, m, "echo alive")).To(Equal("alive"))

		Expect(m.API().PowerButton(ctx)).To(Succeed())
		Eventually(func() string { return sh(ctx, m, gedIRQs) }).WithContext(ctx).WithTimeout(cmdTimeout).
			ShouldNot(Equal(before), "the GED interrupt never fired")
	}, SpecTimeout(bootTimeout+4*cmdTimeout))

	It("logs a state dump of every vCPU, the I/O APIC and the UART on SIGUSR1 and runs on", func(ctx SpecContext) {
		m := startGuest(ctx, "dump", bootConfig())
		Expect(m.WaitReady(ctx)).To(Succeed())
		Expect(syscall.Kill(m.Pid(), syscall.SIGUSR1)).To(Succeed())
		Eventually(m.StateDumpLines).WithTimeout(cmdTimeout).Should(HaveLen(6), "a UART, an I/O APIC and 4 vCPU lines")
		lines := m.StateDumpLines()
		Expect(lines[0]).To(MatchRegexp(`serial="ier=0x[0-9a-f]+ `))
		// Linux routes the UART's ISA IRQ 4 as an unmasked edge-triggered pin.
		Expect(lines[1]).To(MatchRegexp(`ioapic="irr=0x[0-9a-f]+ .*pin4:vec=0x[0-9a-f]+,edge,`))
		for i, l := range lines[2:] {
			// The bytes at RIP come from a walk of the guest's page tables.
			Expect(l).To(MatchRegexp(`vcpu=%d state="plugged=true .* rip=0x[0-9a-f]+ rflags=0x[0-9a-f]+ cr2=0x[0-9a-f]+ cr3=0x[0-9a-f]+ cr4=0x[0-9a-f]+ code=[0-9a-f]{0,16}\|[0-9a-f]{2,32} .* isr=\[`, i))
		}
		Expect(sh(ctx, m, "echo alive")).To(Equal("alive"))
	}, SpecTimeout(bootTimeout+2*cmdTimeout))

	// A reboot from inside the guest, and one through the API, each with
	// the same CPUs and memory after: scenarios/boot.lua.
	It("reboots through the API and stops cleanly on SIGTERM", func(ctx SpecContext) {
		m := startGuest(ctx, "api-reboot", bootConfig())
		// Let the guest finish its line: a reset cuts whatever output the
		// guest has not sent yet, such as the newline after the marker.
		sh(ctx, m, "true")
		Expect(m.Reboot(ctx)).To(Succeed())
		Expect(m.WaitReady(ctx)).To(Succeed(), "boot after vm.reboot")
		Expect(sh(ctx, m, "cat /sys/devices/system/cpu/online")).To(Equal("0-3"))
		Expect(syscall.Kill(m.Pid(), syscall.SIGTERM)).To(Succeed())
		status, err := m.Wait(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(status).To(Equal(0), "exit status after SIGTERM; log:\n%s", m.VmmLog())
	}, SpecTimeout(2*bootTimeout+2*cmdTimeout))
})

var _ = Describe("a guest that powers off", Label("boot"), func() {
	It("ends the vmm with status 0", func(ctx SpecContext) {
		m := startGuest(ctx, "poweroff", bootConfig())
		Expect(m.WaitReady(ctx)).To(Succeed())
		Expect(m.PowerOffFromGuest(ctx)).To(Succeed())
		status, err := m.Wait(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(status).To(Equal(0), "vmm exit status; its log:\n%s", m.VmmLog())
	}, SpecTimeout(bootTimeout+cmdTimeout))
})

var _ = Describe("a bad command line", Label("boot"), func() {
	DescribeTable("refuses a bad command line with one clear message and status 2",
		func(ctx SpecContext, args func(dir string) []string, want string) {
			dir := GinkgoT().TempDir()
			cmd := exec.CommandContext(ctx, guest.ResolvePaths().Vmm, args(dir)...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			Expect(err).To(BeAssignableToTypeOf(exit), "vmm should fail: %v", err)
			Expect(err.(*exec.ExitError).ExitCode()).To(Equal(2), "stderr:\n%s", stderr.String())
			Expect(stderr.String()).To(ContainSubstring(want))
			first, rest, _ := strings.Cut(strings.TrimSpace(stderr.String()), "\n")
			Expect(first).To(ContainSubstring(want), "the first line")
			if want == "flag provided but not defined" {
				Expect(rest).To(ContainSubstring("Usage: vmm"), "the usage after an unknown flag")
			} else {
				Expect(rest).To(BeEmpty(), "one line:\n%s", stderr.String())
			}
			left, _ := os.ReadDir(dir)
			names := []string{}
			for _, e := range left {
				names = append(names, e.Name())
			}
			Expect(names).To(ConsistOf("kernel"), "nothing left behind")
		},
		Entry("a garbage kernel file", func(dir string) []string {
			k := filepath.Join(dir, "kernel")
			Expect(os.WriteFile(k, []byte(strings.Repeat("garbage ", 50000)), 0o644)).To(Succeed())
			return []string{"--kernel", k, "--api-socket", filepath.Join(dir, "api.sock")}
		}, "not a bzImage"),
		Entry("a missing initramfs", func(dir string) []string {
			Expect(os.WriteFile(filepath.Join(dir, "kernel"), nil, 0o644)).To(Succeed())
			return []string{"--kernel", guest.ResolvePaths().Kernel, "--initramfs", filepath.Join(dir, "nope")}
		}, "no such file"),
		Entry("an unknown flag", func(dir string) []string {
			Expect(os.WriteFile(filepath.Join(dir, "kernel"), nil, 0o644)).To(Succeed())
			return []string{"--kernel", guest.ResolvePaths().Kernel, "--frobnicate"}
		}, "flag provided but not defined"),
		Entry("more memory than the host can map", func(dir string) []string {
			Expect(os.WriteFile(filepath.Join(dir, "kernel"), nil, 0o644)).To(Succeed())
			return []string{"--kernel", guest.ResolvePaths().Kernel, "--memory", "size=65536G", "--serial", "off",
				"--api-socket", filepath.Join(dir, "api.sock")}
		}, "cannot map"),
	)
})

// The benchmark: process start to first KVM_RUN and to the guest's ready
// marker, for vmm and for QEMU's microvm booting the same kernel and
// initramfs in the same KVM host. It reports and never fails on time. It
// runs when VMM_BENCH is set; QEMU runs when VMM_QEMU names a qemu-system-x86_64
// (or a wrapper script that runs one).
var _ = Describe("boot time", Label("benchmark"), Serial, func() {
	It("is reported beside QEMU microvm", func(ctx SpecContext) {
		runs := benchRuns(3)
		paths := guest.ResolvePaths()
		qemu := os.Getenv("VMM_QEMU")
		e := gmeasure.NewExperiment("boot: 4 vCPUs, 1 GiB, process start to ...")
		AddReportEntry(e.Name, e)
		vmmArgs := []string{"--kernel", paths.Kernel, "--initramfs", paths.Initramfs, "--cmdline", guest.DefaultCmdline,
			"--cpus", "boot=4", "--memory", "size=1024M", "--serial", "tty"}
		qemuArgs := []string{"-enable-kvm", "-M", "microvm", "-cpu", "host", "-smp", "4", "-m", "1024",
			"-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-serial", "stdio",
			"-kernel", paths.Kernel, "-initrd", paths.Initramfs, "-append", guest.DefaultCmdline}
		// A run that fails (the emulated KVM host is not reliable) is
		// reported and left out; the benchmark never fails on time.
		record := func(name string, d time.Duration, err error) {
			if err != nil {
				GinkgoWriter.Printf("BENCH %s: run failed: %v\n", name, err)
				return
			}
			GinkgoWriter.Printf("BENCH run %-42s %8d ms\n", name, d.Milliseconds())
			e.RecordDuration(name, d)
			// "vmm: ready marker" is vmm's "boot: process start to ready
			// marker" for cmd/benchreport.
			who, what, _ := strings.Cut(name, ": ")
			who = strings.TrimSuffix(who, " microvm")
			emitDuration("boot: process start to "+what, who, d)
		}
		for range runs {
			r, err := timeBoot(ctx, paths.Vmm, vmmArgs, regexp.MustCompile(`msg="first KVM_RUN"`), false)
			record("vmm: first KVM_RUN", r.firstRun, err)
			record("vmm: ready marker", r.ready, err)
			if qemu == "" {
				continue
			}
			// QEMU reports its first vCPU exit only with tracing on, which
			// slows every exit: a traced run, stopped at its first exit,
			// for the first KVM_RUN, and a plain run for the ready marker.
			r, err = timeBoot(ctx, qemu, append([]string{"-trace", "kvm_run_exit"}, qemuArgs...), regexp.MustCompile(`kvm_run_exit`), true)
			record("qemu microvm: first KVM_RUN", r.firstRun, err)
			r, err = timeBoot(ctx, qemu, qemuArgs, nil, false)
			record("qemu microvm: ready marker", r.ready, err)
		}
		// The same kernel as the ELF vmlinux make images extracts, entered
		// through PVH, by both: microvm loads a PVH ELF -kernel.
		for range runs {
			if st, err := os.Stat(paths.Vmlinux); err != nil || !st.Mode().IsRegular() {
				break
			}
			r, err := timeBoot(ctx, paths.Vmm, withArg(vmmArgs, "--kernel", paths.Vmlinux), regexp.MustCompile(`msg="first KVM_RUN"`), false)
			record("vmm: first KVM_RUN (vmlinux; PVH)", r.firstRun, err)
			record("vmm: ready marker (vmlinux; PVH)", r.ready, err)
			if qemu != "" {
				r, err = timeBoot(ctx, qemu, withArg(qemuArgs, "-kernel", paths.Vmlinux), nil, false)
				record("qemu microvm: ready marker (vmlinux; PVH)", r.ready, err)
			}
		}
		Expect(e.Get("vmm: ready marker").Durations).NotTo(BeEmpty(), "no vmm run succeeded")
		for _, name := range []string{"vmm: first KVM_RUN", "vmm: ready marker", "qemu microvm: first KVM_RUN", "qemu microvm: ready marker",
			"vmm: first KVM_RUN (vmlinux; PVH)", "vmm: ready marker (vmlinux; PVH)", "qemu microvm: ready marker (vmlinux; PVH)"} {
			if s := e.Get(name); s.Name != "" {
				GinkgoWriter.Printf("BENCH %-42s median %8.0f ms over %d runs\n", name, float64(s.Stats().DurationFor(gmeasure.StatMedian))/1e6, s.Stats().N)
			}
		}
		if v, q := e.Get("vmm: ready marker"), e.Get("qemu microvm: ready marker"); v.Name != "" && q.Name != "" {
			GinkgoWriter.Printf("BENCH ready marker vmm/qemu ratio %.2f\n",
				float64(v.Stats().DurationFor(gmeasure.StatMedian))/float64(q.Stats().DurationFor(gmeasure.StatMedian)))
		}
	}, SpecTimeout(30*time.Minute))
})

// withArg returns a copy of args with the value after flag set to value.
func withArg(args []string, flag, value string) []string {
	out := slices.Clone(args)
	if i := slices.Index(out, flag); i >= 0 && i+1 < len(out) {
		out[i+1] = value
	}
	return out
}

// bootTimes are the times from a process's start to its first KVM_RUN and
// to the guest's ready marker.
type bootTimes struct {
	firstRun, ready time.Duration
}

// timeBoot starts bin with args and its stdin empty but open, waits for the
// ready marker on its stdout, and kills it. firstRun, when not nil, is the
// stderr line that marks the first KVM_RUN; with onlyFirstRun the process
// is killed as soon as that line appears.
func timeBoot(ctx context.Context, bin string, args []string, firstRun *regexp.Regexp, onlyFirstRun bool) (_ bootTimes, err error) {
	ctx, cancel := context.WithTimeout(ctx, bootTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	stdin, err := cmd.StdinPipe() // stays open: EOF would not matter, but be fair
	if err != nil {
		return bootTimes{}, err
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return bootTimes{}, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return bootTimes{}, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return bootTimes{}, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}()
	var logs tail
	firstRunAt := make(chan time.Duration, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := firstRun == nil
		for sc.Scan() {
			if !sent && firstRun.MatchString(sc.Text()) {
				firstRunAt <- time.Since(start)
				sent = true
			}
			if !strings.Contains(sc.Text(), "kvm_run_exit") {
				logs.add("stderr: " + sc.Text())
			}
		}
		if !sent {
			close(firstRunAt)
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	readyAt := make(chan time.Duration, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			logs.add(sc.Text())
			if strings.Contains(sc.Text(), guest.ReadyMarker) {
				readyAt <- time.Since(start)
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w; last output:\n%s", err, logs.String())
		}
	}()
	var t bootTimes
	if onlyFirstRun {
		select {
		case d, ok := <-firstRunAt:
			if !ok {
				return t, fmt.Errorf("%s: no first KVM_RUN line", filepath.Base(bin))
			}
			t.firstRun = d
			return t, nil
		case err := <-exited:
			exited <- err
			return t, fmt.Errorf("%s exited early: %v", filepath.Base(bin), err)
		case <-ctx.Done():
			return t, fmt.Errorf("%s: no first KVM_RUN line: %w", filepath.Base(bin), ctx.Err())
		}
	}
	select {
	case t.ready = <-readyAt:
	case err := <-exited:
		exited <- err
		return t, fmt.Errorf("%s exited before the ready marker: %v", filepath.Base(bin), err)
	case <-ctx.Done():
		return t, fmt.Errorf("%s: no ready marker: %w", filepath.Base(bin), ctx.Err())
	}
	if firstRun != nil {
		d, ok := <-firstRunAt
		if !ok {
			return t, fmt.Errorf("%s: no first KVM_RUN line", filepath.Base(bin))
		}
		t.firstRun = d
	}
	return t, nil
}

// tail keeps the last lines written to it, for failure messages.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	if len(t.lines) > 60 {
		t.lines = t.lines[len(t.lines)-60:]
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}
