// Command vmm runs one Linux guest on KVM. Its flags follow Cloud
// Hypervisor's:
//
//	vmm --kernel bzImage --initramfs initrd --cmdline "console=ttyS0" \
//	    --cpus boot=4,max=8 --memory size=1024M --serial tty [--api-socket PATH] \
//	    [--disk path=FILE[,readonly=on]]... [--net tap=,mac=,ip=,mask=]... [--rng [src=PATH]]
//	    [--balloon size=S[,deflate_on_oom=on][,free_page_reporting=on]]
//
// The virtio devices sit on PCI (segment 0, an MSI-X vector per queue)
// unless --virtio-transport mmio puts them on virtio-mmio.
//
// --kernel takes a bzImage or an uncompressed ELF vmlinux with a PVH entry
// (told apart by their bytes); --firmware, instead of --kernel, a firmware
// that boots through PVH (an ELF image too), which gets no command line or
// initramfs.
//
// Exit status: 0 after the guest powers off or a SIGTERM, SIGINT or
// vmm.shutdown request stops the VMM; 2 for a bad command line or a VM that
// cannot be built from it (a missing file, a kernel that is neither a
// bzImage nor a PVH ELF, more memory than the host can map); 1 for any
// other failure.
//
// SIGUSR1 logs a state dump (each vCPU's registers and local APIC, the I/O
// APIC's routes, the UART) and leaves the guest running.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/api"
	"github.com/vmmdev/vmm/vm/config"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// init keeps the main goroutine on the main thread for good, so that no
// other goroutine runs there: a vCPU goroutine locks its thread and ends
// with it, which the runtime cannot do to the main thread.
func init() { runtime.LockOSThread() }

func main() {
	start := time.Now()
	os.Exit(run(os.Args[1:], start, os.Stdin, os.Stdout, os.Stderr))
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// optionalFlag is a flag that may stand alone (--rng) or take a value
// (--rng=src=/dev/hwrng).
type optionalFlag struct {
	set   bool
	value string
}

func (o *optionalFlag) String() string { return o.value }
func (o *optionalFlag) IsBoolFlag() bool {
	return true
}
func (o *optionalFlag) Set(v string) error {
	o.set = true
	if v != "true" {
		o.value = v
	}
	return nil
}

// joinOptional rewrites "--name VALUE" as "--name=VALUE" for a flag whose
// value is optional, as Cloud Hypervisor's command line allows ("--rng" and
// "--rng src=/dev/hwrng"); a following argument that starts with "-" is the
// next flag, not a value.
func joinOptional(args []string, name string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if (a == "-"+name || a == "--"+name) && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			out = append(out, a+"="+args[i+1])
			i++
			continue
		}
		out = append(out, a)
	}
	return out
}

// usageError is a command line mistake: exit status 2.
type usageError struct{ error }

// options are the flags that are the VMM's, not the VM configuration's.
type options struct {
	apiSocket string
	verbose   bool
	transport vm.VirtioTransport
}

// parse turns the command line into a configuration and the VMM's options.
func parse(args []string, stderr io.Writer) (cfg config.VM, o options, err error) {
	fs := flag.NewFlagSet("vmm", flag.ContinueOnError)
	// Errors are reported by the caller, in one line; -h prints the usage.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	kernel := fs.String("kernel", "", "Linux `kernel` to boot: a bzImage or an ELF vmlinux with a PVH entry")
	firmware := fs.String("firmware", "", "PVH ELF `firmware` to boot instead of a kernel")
	initramfs := fs.String("initramfs", "", "initramfs (initrd) `file` for the kernel")
	cmdline := fs.String("cmdline", "", "kernel command line")
	cpus := fs.String("cpus", "boot=1", "vCPUs: boot=N[,max=M] (max defaults to boot)")
	memory := fs.String("memory", "size=512M", "RAM: size=S[,hotplug_size=H][,hotplug_method=acpi|virtio-mem][,hotplugged_size=P], sizes in bytes or with K, M, G")
	balloon := fs.String("balloon", "", "virtio-balloon: size=S[,deflate_on_oom=on|off][,free_page_reporting=on|off]")
	serial := fs.String("serial", "tty", "serial port (COM1): tty, file=PATH, null or off")
	console := fs.String("console", "off", "virtio console: off or null (others not supported yet)")
	var disks, nets listFlag
	fs.Var(&disks, "disk", "virtio-blk disk path=FILE[,readonly=on] (repeatable)")
	fs.Var(&nets, "net", "virtio-net tap=,mac=,ip=,mask= (repeatable)")
	var rng optionalFlag
	fs.Var(&rng, "rng", "virtio-rng, optionally src=PATH (default /dev/urandom)")
	fs.StringVar(&o.apiSocket, "api-socket", "", "serve the HTTP API on this unix socket `path`")
	fs.BoolVar(&o.verbose, "v", false, "log debug messages")
	transport := fs.String("virtio-transport", string(vm.TransportPCI),
		"where the virtio devices go: pci (PCI segments, MSI-X) or mmio (virtio-mmio, an IOAPIC line each)")
	if err := fs.Parse(joinOptional(args, "rng")); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintln(stderr, "Usage: vmm --kernel bzImage|vmlinux [--initramfs initrd] [--cmdline CMDLINE] [--cpus boot=N,max=M]\n"+
				"           [--memory size=S] [--serial tty|file=PATH|off] [--api-socket PATH] [--virtio-transport pci|mmio] [-v]\n"+
				"       vmm --firmware FIRMWARE [--cpus ...] [--memory ...] [...]")
			fs.PrintDefaults()
			return cfg, o, err
		}
		return cfg, o, usageError{err}
	}
	if fs.NArg() > 0 {
		return cfg, o, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}

	cfg = config.Default()
	cfg.Payload = config.Payload{Kernel: *kernel, Firmware: *firmware, Initramfs: *initramfs, Cmdline: *cmdline}
	if cfg.CPUs, err = config.ParseCPUs(*cpus); err != nil {
		return cfg, o, usageError{err}
	}
	if cfg.Memory, err = config.ParseMemory(*memory); err != nil {
		return cfg, o, usageError{err}
	}
	if cfg.Serial, err = config.ParseSerial(*serial); err != nil {
		return cfg, o, usageError{err}
	}
	if cfg.Console, err = config.ParseConsole(*console); err != nil {
		return cfg, o, usageError{err}
	}
	if *balloon != "" {
		b, err := config.ParseBalloon(*balloon)
		if err != nil {
			return cfg, o, usageError{err}
		}
		cfg.Balloon = &b
	}
	for _, d := range disks {
		dc, err := config.ParseDisk(d)
		if err != nil {
			return cfg, o, usageError{err}
		}
		cfg.Disks = append(cfg.Disks, dc)
	}
	for _, n := range nets {
		nc, err := config.ParseNet(n)
		if err != nil {
			return cfg, o, usageError{err}
		}
		cfg.Net = append(cfg.Net, nc)
	}
	if rng.set {
		rc, err := config.ParseRNG(rng.value)
		if err != nil {
			return cfg, o, usageError{err}
		}
		cfg.RNG = &rc
	}
	if *kernel != "" && *firmware != "" {
		return cfg, o, usageError{errors.New("--kernel and --firmware: give one, not both")}
	}
	switch o.transport = vm.VirtioTransport(*transport); o.transport {
	case vm.TransportPCI, vm.TransportMMIO:
	default:
		return cfg, o, usageError{fmt.Errorf("--virtio-transport %s: want pci or mmio", *transport)}
	}
	if !hasPayload(cfg) && o.apiSocket == "" {
		return cfg, o, usageError{errors.New("--kernel or --firmware is required (or --api-socket to create the VM through the API)")}
	}
	return cfg, o, nil
}

// hasPayload reports whether the command line names something to boot.
func hasPayload(cfg config.VM) bool { return cfg.Payload.Kernel != "" || cfg.Payload.Firmware != "" }

// run is main without the exit, for tests.
func run(args []string, start time.Time, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg, o, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "vmm: %v (vmm -h lists the flags)\n", err)
		return exitUsage
	}
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)

	v, err := vm.New(vm.Options{Log: log, Stdin: stdin, Stdout: stdout, Start: start, VirtioTransport: o.transport})
	if err != nil {
		fmt.Fprintf(stderr, "vmm: %v\n", err)
		return exitFailure
	}
	// fail stops the VMM (restoring the terminal) and reports err.
	fail := func(err error) int {
		_ = v.Stop()
		fmt.Fprintf(stderr, "vmm: %v\n", err)
		if errors.Is(err, vm.ErrInvalid) {
			return exitUsage
		}
		return exitFailure
	}

	if hasPayload(cfg) {
		if err := v.Create(cfg); err != nil {
			return fail(fmt.Errorf("create: %w", err))
		}
	}
	var srv *api.Server
	if o.apiSocket != "" {
		srv, err = api.NewServer(o.apiSocket, v, api.Options{Logger: log, ShutdownVMM: func() { _ = v.Stop() }})
		if err != nil {
			return fail(fmt.Errorf("API socket: %w", err))
		}
		defer srv.Close()
	}
	if hasPayload(cfg) {
		if err := v.Boot(); err != nil {
			if srv != nil {
				srv.Close()
			}
			return fail(fmt.Errorf("boot: %w", err))
		}
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		select {
		case s := <-sigs:
			log.Info("stopping on signal", "signal", s.String())
			_ = v.Stop()
		case <-v.Done():
		}
	}()
	// SIGUSR1 logs where the vCPUs are and what the interrupt controllers
	// hold, for a guest that has stopped answering; the guest runs on.
	dumps := make(chan os.Signal, 1)
	signal.Notify(dumps, syscall.SIGUSR1)
	defer signal.Stop(dumps)
	go func() {
		for {
			select {
			case <-dumps:
				v.DumpState()
			case <-v.Done():
				return
			}
		}
	}()

	if err := v.Wait(); err != nil {
		fmt.Fprintf(stderr, "vmm: %v\n", err)
		return exitFailure
	}
	return exitOK
}
