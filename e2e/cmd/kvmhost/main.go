// Command kvmhost runs a command where a real KVM is: directly when this
// machine's /dev/kvm runs guests, otherwise inside an emulated KVM host.
//
//	kvmhost [flags] -- COMMAND [ARG...]
//
// Its exit status is the command's; 3 when every KVM host it was allowed to
// boot (-attempts) broke itself; 2 on misuse.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/vmmdev/vmm/e2e/kvmhost"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() { os.Exit(run(os.Args[1:])) }

// srcDst splits the SRC:DST value v of the flag -name.
func srcDst(name, v string) (src, dst string, err error) {
	src, dst, ok := strings.Cut(v, ":")
	if !ok || src == "" || dst == "" {
		return "", "", fmt.Errorf("kvmhost: -%s %q: want SRC:DST", name, v)
	}
	return src, dst, nil
}

func run(args []string) int {
	fl := flag.NewFlagSet("kvmhost", flag.ContinueOnError)
	var files, dirs, envs listFlag
	mode := fl.String("mode", "auto", "where to run: auto, direct or nested")
	results := fl.String("results", ".build/results", "directory for result files")
	timeout := fl.Duration("timeout", 25*time.Minute, "hard limit for one attempt")
	kernel := fl.String("kernel", ".cache/kvmhost/bzImage", "KVM host kernel")
	initrd := fl.String("initramfs", ".cache/kvmhost/initramfs.cpio", "KVM host base initramfs")
	memory := fl.Int("memory", 8192, "KVM host RAM in MiB")
	cpus := fl.Int("cpus", 2, "KVM host vCPUs")
	attempts := fl.Int("attempts", 2, "KVM host boots allowed when they break (a broken host is retried, a failing command never)")
	tcgThread := fl.String("tcg-thread", "multi", "QEMU's TCG threading for the KVM host: multi (one host thread per vCPU) or single")
	appendArgs := fl.String("append", "", "added to the KVM host kernel's command line (kvm_amd.npt=0: module M's parameters as M.param=value)")
	qemu := fl.String("qemu", os.Getenv("KVMHOST_QEMU"), "the KVM host's emulator, by default $KVMHOST_QEMU, else qemu-system-x86_64 (make emulator builds a patched one)")
	printMode := fl.Bool("print-mode", false, "print the mode auto resolves to (direct or nested) and exit")
	lockFile := fl.String("lock", kvmhost.DefaultLockFile(), "lock held while a KVM host runs")
	fl.Var(&files, "file", "SRC:DST, a file of the payload (repeatable)")
	fl.Var(&dirs, "dir", "SRC:DST, a directory of the payload (repeatable)")
	fl.Var(&envs, "env", "K=V exported before the command; V may use $PAYLOAD and $RESULTS (repeatable)")
	fl.Usage = func() {
		fmt.Fprintln(fl.Output(), "usage: kvmhost [flags] -- COMMAND [ARG...]")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if *printMode {
		m, _ := kvmhost.Resolve(kvmhost.Mode(*mode))
		fmt.Println(m)
		return 0
	}
	if fl.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "kvmhost: no command given")
		fl.Usage()
		return 2
	}
	opts := kvmhost.Options{
		Mode: kvmhost.Mode(*mode), Command: fl.Args(), Env: map[string]string{},
		ResultsDir: *results, Timeout: *timeout, Kernel: *kernel, Initramfs: *initrd,
		MemoryMiB: *memory, CPUs: *cpus, LockFile: *lockFile, TCGThread: *tcgThread, MaxAttempts: *attempts, Append: *appendArgs, QEMU: *qemu,
	}
	if _, err := kvmhost.ParseMode(*mode); err != nil {
		fmt.Fprintf(os.Stderr, "kvmhost: %v\n", err)
		return 2
	}
	for _, f := range files {
		src, dst, err := srcDst("file", f)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		opts.Files = append(opts.Files, kvmhost.File{Src: src, Dst: dst})
	}
	for _, d := range dirs {
		src, dst, err := srcDst("dir", d)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		more, err := kvmhost.DirFiles(src, dst)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kvmhost: -dir: %v\n", err)
			return 2
		}
		opts.Files = append(opts.Files, more...)
	}
	for _, e := range envs {
		k, v, ok := strings.Cut(e, "=")
		if !ok || k == "" {
			fmt.Fprintf(os.Stderr, "kvmhost: -env %q: want K=V\n", e)
			return 2
		}
		opts.Env[k] = v
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := kvmhost.Run(ctx, opts)
	summary := fmt.Sprintf("kvmhost: mode %s, %d attempt(s), exit %d, %.1fs", res.Mode, res.Attempts, res.ExitCode, res.Elapsed.Seconds())
	if res.Mode == kvmhost.ModeNested {
		summary += fmt.Sprintf(", KVM host start to payload start %.1fs", res.Overhead.Seconds())
	}
	for i, b := range res.Broken {
		summary += fmt.Sprintf("\nkvmhost: attempt %d: the KVM host broke: %s", i+1, b)
	}
	fmt.Fprintln(os.Stderr, summary)
	switch {
	case errors.Is(err, kvmhost.ErrHostBroken):
		slog.Error("kvmhost", "err", err)
		return 3
	case err != nil:
		slog.Error("kvmhost", "err", err)
		return 1
	}
	return res.ExitCode
}
