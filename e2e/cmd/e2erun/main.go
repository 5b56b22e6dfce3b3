// Command e2erun runs the end-to-end suite (make e2e): each group of Ginkgo
// labels in a KVM host of its own, with retries only for failures
// recognised as the emulated KVM host's (package runner).
//
//	e2erun [flags] [GROUP...]     (groups: core api devices memory cpu scenarios distro)
//
// Flags default to the environment variables make passes on (BUILD, CACHE,
// KVMHOST_MODE, KVMHOST_QEMU, E2E_TIMEOUT, E2E_HOST_ATTEMPTS, E2E_HOST_CPUS,
// E2E_HOST_APPEND, E2E_HOST_MEMORY_MIB, E2E_PROCS, E2E_EMULATION_RETRIES,
// E2E_BUDGET_MIN, GINKGO_FLAGS).
// The scenarios' knobs VMM_STRESS_CYCLES, VMM_STRESS_MAX, VMM_NET_MIB,
// VMM_VSOCK_MIB, VMM_SCENARIO_AGENT, VMM_POKE_SECONDS and VMM_API_REQUESTS
// are passed into the KVM host when set. Exit status: 0 when every group
// passed, 1 when one failed, 2 on misuse.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vmmdev/vmm/e2e/kvmhost"
	"github.com/vmmdev/vmm/e2e/runner"
)

func main() { os.Exit(run(os.Args[1:])) }

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func envInt(k string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return n
	}
	return def
}

func envDuration(k string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(k)); err == nil {
		return d
	}
	return def
}

func run(args []string) int {
	fl := flag.NewFlagSet("e2erun", flag.ContinueOnError)
	build := fl.String("build", env("BUILD", ".build"), "make's build directory (the binaries, results/)")
	cache := fl.String("cache", env("CACHE", ".cache"), "the download and image cache")
	mode := fl.String("mode", env("KVMHOST_MODE", "auto"), "where the suite runs: auto, direct or nested")
	qemu := fl.String("qemu", os.Getenv("KVMHOST_QEMU"), "the KVM host's emulator (qemu-system-x86_64 when empty)")
	timeout := fl.Duration("timeout", envDuration("E2E_TIMEOUT", 20*time.Minute), "hard limit for one KVM host")
	attempts := fl.Int("host-attempts", envInt("E2E_HOST_ATTEMPTS", 3), "KVM host boots per run when they break")
	cpus := fl.Int("host-cpus", envInt("E2E_HOST_CPUS", 2), "the KVM host's vCPUs")
	memory := fl.Int("host-memory", envInt("E2E_HOST_MEMORY_MIB", 12288), "the KVM host's RAM in MiB (two specs' guests at once)")
	procs := fl.Int("procs", envInt("E2E_PROCS", 2), "Ginkgo processes for the groups whose specs may run side by side ("+strings.Join(runner.Parallel, " ")+")")
	appendArgs := fl.String("host-append", os.Getenv("E2E_HOST_APPEND"), "added to the KVM host kernel's command line")
	retries := fl.Int("emulation-retries", envInt("E2E_EMULATION_RETRIES", 2), "runs again of a spec that failed with an emulation fault")
	budget := fl.Int("budget-min", envInt("E2E_BUDGET_MIN", 50), "minutes after which no retry starts")
	ginkgo := fl.String("ginkgo-flags", os.Getenv("GINKGO_FLAGS"), "flags added to the suite's command line (space-separated)")
	summary := fl.String("summary", "", "where the summary goes (BUILD/results/summary.txt)")
	fl.Usage = func() {
		fmt.Fprintln(fl.Output(), "usage: e2erun [flags] [GROUP...]   (groups: "+strings.Join(runner.Groups, " ")+")")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if *procs < 1 || *memory < 1024 {
		fmt.Fprintln(os.Stderr, "e2erun: -procs must be at least 1 and -host-memory at least 1024")
		return 2
	}
	hostMode, err := kvmhost.ParseMode(*mode)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2erun: %v\n", err)
		return 2
	}
	groups := fl.Args()
	if len(groups) == 0 {
		groups = runner.Groups
	}
	B, C := *build, *cache
	files := []kvmhost.File{
		{Src: filepath.Join(B, "e2e.test"), Dst: "bin/e2e.test"},
		{Src: filepath.Join(B, "vmm"), Dst: "bin/vmm"},
		{Src: filepath.Join(B, "vmmctl"), Dst: "bin/vmmctl"},
		{Src: filepath.Join(B, "ginkgo"), Dst: "bin/ginkgo"},
		{Src: filepath.Join(C, "guest/bzImage"), Dst: "guest/bzImage"},
		{Src: filepath.Join(C, "guest/initramfs.cpio.gz"), Dst: "guest/initramfs.cpio.gz"},
		{Src: filepath.Join(C, "guest/rootfs.ext4.gz"), Dst: "guest/rootfs.ext4.gz"},
	}
	for _, d := range [][2]string{{"scenarios", "scenarios"}, {"e2e/testdata", "testdata"}} {
		more, err := kvmhost.DirFiles(d[0], d[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2erun:", err)
			return 2
		}
		files = append(files, more...)
	}
	for _, f := range files {
		if _, err := os.Stat(f.Src); err != nil {
			fmt.Fprintf(os.Stderr, "e2erun: %v (make build images)\n", err)
			return 2
		}
	}
	opts := runner.Options{
		Build: B, Cache: C,
		Host: kvmhost.Options{
			Mode: hostMode, QEMU: *qemu, Timeout: *timeout, MaxAttempts: *attempts,
			CPUs: *cpus, MemoryMiB: *memory, Append: *appendArgs, Files: files,
			Kernel: filepath.Join(C, "kvmhost/bzImage"), Initramfs: filepath.Join(C, "kvmhost/initramfs.cpio"),
			LockFile: kvmhost.DefaultLockFile(),
			Env: map[string]string{
				"VMM_BIN": "$PAYLOAD/bin/vmm", "VMMCTL_BIN": "$PAYLOAD/bin/vmmctl",
				"VMM_GUEST_KERNEL": "$PAYLOAD/guest/bzImage", "VMM_GUEST_INITRAMFS": "$PAYLOAD/guest/initramfs.cpio.gz",
				"VMM_GUEST_VMLINUX": "$PAYLOAD/guest/vmlinux",
				"VMM_GUEST_ROOTFS":  "$PAYLOAD/guest/rootfs.ext4.gz",
				"VMM_SCENARIOS":     "$PAYLOAD/scenarios", "VMM_TESTDATA": "$PAYLOAD/testdata",
			},
		},
		SuiteTimeout:     *timeout - 2*time.Minute,
		EmulationRetries: *retries,
		Budget:           time.Duration(*budget) * time.Minute,
		GinkgoFlags:      strings.Fields(*ginkgo),
		Procs:            map[string]int{},
		Env:              map[string]string{},
		Out:              os.Stdout,
		Logger:           slog.Default(),
	}
	for _, g := range runner.Parallel {
		opts.Procs[g] = *procs
	}
	// Large images go only to the groups that boot them: each group's KVM
	// host unpacks its whole payload before it starts.
	vmlinux := kvmhost.File{Src: filepath.Join(C, "guest/vmlinux"), Dst: "guest/vmlinux"}
	opts.GroupFiles = map[string][]kvmhost.File{
		"core": {vmlinux}, "scenarios": {vmlinux}, "api": {vmlinux},
		"distro": {
			{Src: filepath.Join(C, "debian/rootfs.ext4.gz"), Dst: "distro/rootfs.ext4.gz"},
			{Src: filepath.Join(C, "debian/initrd.img"), Dst: "distro/initrd.img"},
		},
	}
	opts.GroupEnv = map[string]map[string]string{"distro": {
		"VMM_DISTRO_ROOTFS": "$PAYLOAD/distro/rootfs.ext4.gz", "VMM_DISTRO_INITRD": "$PAYLOAD/distro/initrd.img",
	}}
	for _, g := range groups {
		for _, f := range opts.GroupFiles[g] {
			if _, err := os.Stat(f.Src); err != nil {
				fmt.Fprintf(os.Stderr, "e2erun: %v (make images)\n", err)
				return 2
			}
		}
	}
	for _, k := range []string{"VMM_STRESS_CYCLES", "VMM_STRESS_MAX", "VMM_NET_MIB", "VMM_VSOCK_MIB", "VMM_SCENARIO_AGENT", "VMM_POKE_SECONDS", "VMM_API_REQUESTS"} {
		if v := os.Getenv(k); v != "" {
			opts.Env[k] = v
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	t0 := time.Now()
	results, err := runner.Run(ctx, opts, groups)
	var b strings.Builder
	failed := err != nil
	for _, r := range results {
		b.WriteString(r.Line() + "\n")
		failed = failed || !r.Passed
	}
	fmt.Fprintf(&b, "=== e2e: %d group(s) in %ds", len(results), int(time.Since(t0).Seconds()))
	if err != nil {
		fmt.Fprintf(&b, "; stopped: %v", err)
	}
	b.WriteString("\n")
	fmt.Print("\n" + b.String())
	if *summary == "" {
		*summary = filepath.Join(B, "results", "summary.txt")
	}
	if werr := os.WriteFile(*summary, []byte(b.String()), 0o644); werr != nil {
		fmt.Fprintln(os.Stderr, "e2erun:", werr)
	}
	if failed {
		return 1
	}
	return 0
}
