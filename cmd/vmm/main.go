// Command vmm runs one Linux guest on KVM. Its flags follow Cloud
// Hypervisor's:
//
//	vmm --kernel bzImage --initramfs initrd --cmdline "console=ttyS0" \
//	    --cpus boot=4,max=8[,topology=2:2:1:2] --memory size=1024M[,shared=on,prefault=on] \
//	    --serial tty|pty|file=PATH|socket=PATH|null|off --console off|null|tty|pty|file=PATH \
//	    [--disk path=FILE[,readonly=on,direct=on]]... [--net tap=,mac=,ip=,mask=]... [--rng [src=PATH]] \
//	    [--vsock cid=N,socket=PATH[,id=ID][,pci_segment=N]] [--virtio-transport pci|mmio] \
//	    [--balloon size=S[,deflate_on_oom=on][,free_page_reporting=on]] \
//	    [--api-socket PATH|path=PATH|fd=N] [--event-monitor path=PATH|fd=N] [--log-file F] [--seccomp true|false|log] \
//	    [--landlock] [--landlock-rules path=P,access=r|w|rw ...] [-v]
//
// Every key of Cloud Hypervisor's --cpus, --memory, --disk, --net, --rng,
// --platform, --serial and --console is parsed with its syntax
// (vm/config's parsers); what vmm does not do is refused naming it.
// --seccomp (default true) confines every thread with a seccomp filter for
// its kind (vm/seccomp, docs/security.md): a call outside it kills the
// process, or with log is logged by the kernel and by vmm with its name.
// --landlock confines the process's file system access from the VM's
// creation on to the VM's files and the paths of --landlock-rules (one or
// more values after the flag, or the flag repeated).
//
// --vsock adds a virtio-vsock device whose host side is Cloud
// Hypervisor's hybrid vsock (docs/vsock.md): host programs connect to
// PATH and write "CONNECT <port>\n"; guest connections to the host's
// port P reach a program listening on PATH_P.
//
// The virtio devices sit on PCI (an MSI-X vector per queue) unless
// --virtio-transport mmio puts them on virtio-mmio.
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
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/api"
	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/events"
	"github.com/vmmdev/vmm/vm/seccomp"
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

// joinMulti rewrites "--name V1 V2" as "--name V1 --name V2" for a flag
// that takes one or more values, as Cloud Hypervisor's --landlock-rules
// does; the values end at the next argument that starts with "-".
func joinMulti(args []string, name string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		out = append(out, a)
		if a != "-"+name && a != "--"+name {
			continue
		}
		for n := 0; i+1 < len(args) && !strings.HasPrefix(args[i+1], "-"); n++ {
			if n > 0 {
				out = append(out, a)
			}
			out = append(out, args[i+1])
			i++
		}
	}
	return out
}

// usageError is a command line mistake: exit status 2. usage asks for the
// synopsis after the message (an unknown flag).
type usageError struct {
	error
	usage bool
}

// countFlag counts -v (and adds 2 for -vv, 3 for -vvv).
type countFlag struct {
	n    *int
	step int
}

func (c countFlag) String() string {
	if c.n == nil {
		return "0"
	}
	return fmt.Sprint(*c.n)
}
func (c countFlag) IsBoolFlag() bool { return true }
func (c countFlag) Set(v string) error {
	if v == "true" {
		*c.n += c.step
	}
	return nil
}

// refusedFlags are Cloud Hypervisor's flags for what vmm does not do yet:
// each is refused naming it rather than as an unknown flag.
var refusedFlags = []string{"fs", "pmem", "device", "user-device", "vdpa", "numa",
	"pci-segment", "rate-limit-group", "memory-zone", "tpm", "generic-vhost-user",
	"restore", "igvm", "host-data", "fw-cfg-config", "gdb", "log-format", "rtc"}

// refusedBoolFlags are the value-less ones.
var refusedBoolFlags = []string{"watchdog", "pvpanic", "no-shutdown", "pvmemcontrol"}

// options are the command line's settings beside the VM's configuration.
type options struct {
	apiSocket    string // --api-socket path
	apiSocketFD  int    // --api-socket fd=N; -1 without
	verbosity    int    // -v count
	logFile      string
	eventMonitor string // --event-monitor path
	eventFD      int    // --event-monitor fd=N; -1 without
	transport    vm.VirtioTransport
	seccomp      seccomp.Mode
}

// parseOptional parses the value of a flag given only when set: nil when
// it is not.
func parseOptional[T any](set bool, value string, parse func(string) (T, error)) (*T, error) {
	if !set {
		return nil, nil
	}
	v, err := parse(value)
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// parseEach parses each value of a repeatable flag: nil when there is none.
func parseEach[T any](values []string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, s := range values {
		v, err := parse(s)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// parse turns the command line into a configuration.
func parse(args []string, stderr io.Writer) (cfg config.VM, o options, err error) {
	o.apiSocketFD, o.eventFD = -1, -1
	fs := flag.NewFlagSet("vmm", flag.ContinueOnError)
	// Errors are reported by the caller, in one line; -h prints the usage.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	kernel := fs.String("kernel", "", "Linux `kernel` to boot: a bzImage or an ELF vmlinux with a PVH entry")
	firmware := fs.String("firmware", "", "PVH ELF `firmware` to boot instead of a kernel")
	initramfs := fs.String("initramfs", "", "initramfs (initrd) `file` for the kernel")
	cmdline := fs.String("cmdline", "", "kernel command line")
	cpus := fs.String("cpus", "boot=1", "vCPUs: boot=N,max=M,topology=T:C:D:P,nested=on|off,... (Cloud Hypervisor's keys)")
	memory := fs.String("memory", "size=512M", "RAM: size=S,hotplug_size=H,hotplug_method=acpi|virtio-mem,hotplugged_size=P,shared=on,hugepages=on,hugepage_size=S,prefault=on,mergeable=on,thp=off,...")
	serial := fs.String("serial", "tty", "serial port (COM1): off, null, pty, tty, file=PATH or socket=PATH")
	console := fs.String("console", "off", "virtio console (hvc0): off, null, pty, tty or file=PATH")
	debugConsole := fs.String("debug-console", "", "debug console (port 0xe9): off only")
	platform := fs.String("platform", "", "platform: num_pci_segments=N,...")
	balloon := fs.String("balloon", "", "virtio-balloon: size=S,deflate_on_oom=on|off,free_page_reporting=on|off")
	var disks, nets listFlag
	fs.Var(&disks, "disk", "virtio-blk disk path=FILE[,readonly=on,direct=on,id=ID,image_type=raw] (repeatable)")
	fs.Var(&nets, "net", "virtio-net tap=,mac=,ip=,mask=[,id=ID] (repeatable)")
	var rng optionalFlag
	fs.Var(&rng, "rng", "virtio-rng, optionally src=PATH (default /dev/urandom)")
	vsock := fs.String("vsock", "", "virtio-vsock cid=N,socket=PATH[,id=ID][,pci_segment=N] (hybrid vsock on a unix socket)")
	transport := fs.String("virtio-transport", string(vm.TransportPCI),
		"where the virtio devices go: pci (PCI segments, MSI-X) or mmio (virtio-mmio, an IOAPIC line each)")
	apiSocket := fs.String("api-socket", "", "serve the HTTP API on this unix socket: PATH, path=PATH or fd=N")
	eventMonitor := fs.String("event-monitor", "", "write Cloud Hypervisor's JSON events: path=PATH or fd=N")
	fs.StringVar(&o.logFile, "log-file", "", "write the log to this `file` instead of standard error")
	seccompMode := fs.String("seccomp", string(seccomp.Kill), "seccomp filters: true (a call outside them kills vmm), log (it is logged) or false")
	landlockOn := fs.Bool("landlock", false, "confine vmm's file system access with Landlock once the VM is created")
	var landlockRules listFlag
	fs.Var(&landlockRules, "landlock-rules", "with --landlock, more paths vmm may reach: path=P,access=r|w|rw (one or more)")
	fs.Var(countFlag{&o.verbosity, 1}, "v", "more log (-v info, -vv debug; repeatable)")
	fs.Var(countFlag{&o.verbosity, 2}, "vv", "debug log")
	fs.Var(countFlag{&o.verbosity, 3}, "vvv", "debug log")
	refused := map[string]*string{}
	for _, name := range refusedFlags {
		refused[name] = fs.String(name, "", "not supported by vmm yet")
	}
	refusedBool := map[string]*bool{}
	for _, name := range refusedBoolFlags {
		refusedBool[name] = fs.Bool(name, false, "not supported by vmm yet")
	}
	if err := fs.Parse(joinOptional(joinMulti(args, "landlock-rules"), "rng")); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintln(stderr, usageText)
			fs.PrintDefaults()
			return cfg, o, err
		}
		return cfg, o, usageError{error: err, usage: true}
	}
	if fs.NArg() > 0 {
		return cfg, o, usageError{error: fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	for _, name := range refusedFlags {
		if set(fs, name) {
			return cfg, o, usageError{error: fmt.Errorf("--%s: not supported by vmm yet", name)}
		}
	}
	for _, name := range refusedBoolFlags {
		if *refusedBool[name] {
			return cfg, o, usageError{error: fmt.Errorf("--%s: not supported by vmm yet", name)}
		}
	}
	if o.seccomp, err = seccomp.ParseMode(*seccompMode); err != nil {
		return cfg, o, usageError{error: err}
	}
	if o.apiSocket, o.apiSocketFD, err = pathOrFD("api-socket", *apiSocket, true); err != nil {
		return cfg, o, usageError{error: err}
	}
	if o.eventMonitor, o.eventFD, err = pathOrFD("event-monitor", *eventMonitor, false); err != nil {
		return cfg, o, usageError{error: err}
	}

	cfg = config.Default()
	cfg.Payload = config.Payload{Kernel: *kernel, Firmware: *firmware, Initramfs: *initramfs, Cmdline: *cmdline}
	if cfg.CPUs, err = config.ParseCPUs(*cpus); err != nil {
		return cfg, o, usageError{error: err}
	}
	if cfg.Memory, err = config.ParseMemory(*memory); err != nil {
		return cfg, o, usageError{error: err}
	}
	if cfg.Serial, err = config.ParseSerial(*serial); err != nil {
		return cfg, o, usageError{error: err}
	}
	if cfg.Console, err = config.ParseConsole(*console); err != nil {
		return cfg, o, usageError{error: err}
	}
	if *debugConsole != "" {
		if cfg.DebugConsole, err = config.ParseDebugConsole(*debugConsole); err != nil {
			return cfg, o, usageError{error: err}
		}
	}
	if cfg.Balloon, err = parseOptional(*balloon != "", *balloon, config.ParseBalloon); err != nil {
		return cfg, o, usageError{error: err}
	}
	if cfg.Platform, err = parseOptional(*platform != "", *platform, config.ParsePlatform); err != nil {
		return cfg, o, usageError{error: err}
	}
	if cfg.Disks, err = parseEach(disks, config.ParseDisk); err != nil {
		return cfg, o, usageError{error: err}
	}
	if cfg.Net, err = parseEach(nets, config.ParseNet); err != nil {
		return cfg, o, usageError{error: err}
	}
	if cfg.RNG, err = parseOptional(rng.set, rng.value, config.ParseRNG); err != nil {
		return cfg, o, usageError{error: err}
	}
	cfg.LandlockEnable = *landlockOn
	if cfg.LandlockRules, err = parseEach(landlockRules, config.ParseLandlockRule); err != nil {
		return cfg, o, usageError{error: err}
	}
	if cfg.Vsock, err = parseOptional(*vsock != "", *vsock, config.ParseVsock); err != nil {
		return cfg, o, usageError{error: err}
	}
	if *kernel != "" && *firmware != "" {
		return cfg, o, usageError{error: errors.New("--kernel and --firmware: give one, not both")}
	}
	switch o.transport = vm.VirtioTransport(*transport); o.transport {
	case vm.TransportPCI, vm.TransportMMIO:
	default:
		return cfg, o, usageError{error: fmt.Errorf("--virtio-transport %s: want pci or mmio", *transport)}
	}
	if !hasPayload(cfg) && o.apiSocket == "" && o.apiSocketFD < 0 {
		return cfg, o, usageError{error: errors.New("--kernel or --firmware is required (or --api-socket to create the VM through the API)")}
	}
	return cfg, o, nil
}

// usageText is the synopsis printed with -h and after an unknown flag.
const usageText = "Usage: vmm --kernel bzImage|vmlinux [--initramfs initrd] [--cmdline CMDLINE] [--cpus boot=N,max=M,topology=T:C:D:P]\n" +
	"           [--memory size=S,...] [--disk path=F]... [--net tap=,...]... [--rng [src=P]] [--vsock cid=N,socket=P]\n" +
	"           [--serial MODE] [--console MODE]\n" +
	"           [--api-socket PATH|path=PATH|fd=N] [--event-monitor path=PATH|fd=N] [--log-file F] [--seccomp true|false|log]\n" +
	"           [--landlock] [--landlock-rules path=P,access=rw ...] [--virtio-transport pci|mmio] [-v]\n" +
	"       vmm --firmware FIRMWARE [--cpus ...] [--memory ...] [...]\n" +
	"       vmm --api-socket PATH (then vm.create and vm.boot through the API)"

// set reports whether flag name was given.
func set(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

// pathOrFD reads Cloud Hypervisor's path=PATH or fd=N (and, with bare, a
// plain PATH): the path, or the fd with -1 for none.
func pathOrFD(flag, s string, bare bool) (string, int, error) {
	switch {
	case s == "":
		return "", -1, nil
	case strings.HasPrefix(s, "path="):
		return strings.TrimPrefix(s, "path="), -1, nil
	case strings.HasPrefix(s, "fd="):
		fd, err := strconv.Atoi(strings.TrimPrefix(s, "fd="))
		if err != nil || fd < 0 {
			return "", -1, fmt.Errorf("--%s %s: fd= wants a file descriptor number", flag, s)
		}
		return "", fd, nil
	case bare && !strings.Contains(s, "="):
		return s, -1, nil
	}
	return "", -1, fmt.Errorf("--%s: Error parsing --%s: path or fd required (path=PATH or fd=N)", flag, flag)
}

// openEventMonitor opens --event-monitor's file (created or truncated) or
// takes its fd.
func openEventMonitor(o options) (io.WriteCloser, error) {
	if o.eventFD >= 0 {
		f := os.NewFile(uintptr(o.eventFD), "event-monitor")
		if f == nil {
			return nil, fmt.Errorf("--event-monitor fd=%d: not an open file", o.eventFD)
		}
		return f, nil
	}
	f, err := os.OpenFile(o.eventMonitor, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("--event-monitor: %w", err)
	}
	return f, nil
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
		if ue := (usageError{}); errors.As(err, &ue) && ue.usage {
			fmt.Fprintln(stderr, usageText)
		}
		return exitUsage
	}
	logOut := stderr
	if o.logFile != "" {
		f, err := os.OpenFile(o.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintf(stderr, "vmm: --log-file: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		logOut = f
	}
	// vmm logs at info by default (Cloud Hypervisor at warn): -v adds
	// debug.
	level := slog.LevelInfo
	if o.verbosity > 0 {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)

	// The process filter goes on every thread before vmm reads anything
	// from the API or the guest; the vCPU threads and, below, the main
	// thread stack their own on it.
	if err := seccomp.InstallProcess(o.seccomp); err != nil {
		fmt.Fprintf(stderr, "vmm: %v\n", err)
		return exitFailure
	}
	if o.seccomp == seccomp.Log {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := seccomp.WatchLog(ctx, log); err != nil {
			log.Warn("denied calls are logged by the kernel only (dmesg or the audit log)", "err", err)
		}
	}

	vopts := vm.Options{Log: log, Stdin: stdin, Stdout: stdout, Start: start, VirtioTransport: o.transport, Seccomp: o.seccomp}
	if o.eventMonitor != "" || o.eventFD >= 0 {
		w, err := openEventMonitor(o)
		if err != nil {
			fmt.Fprintf(stderr, "vmm: %v\n", err)
			return exitUsage
		}
		defer w.Close()
		vopts.Events = events.New(w, start)
	}
	v, err := vm.New(vopts)
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

	// The API socket comes before the VM: --landlock confines the process
	// from the VM's creation on, and the socket's directory is not the VM's.
	// The command line's VM is checked first: a vmm that exits on it never
	// answers on its socket.
	if hasPayload(cfg) {
		if err := v.Check(cfg); err != nil {
			return fail(fmt.Errorf("create: %w", err))
		}
	}
	var srv *api.Server
	if o.apiSocket != "" || o.apiSocketFD >= 0 {
		aopts := api.Options{Logger: log, ShutdownVMM: func() { _ = v.Stop() }}
		if o.apiSocketFD >= 0 {
			srv, err = api.NewServerFD(o.apiSocketFD, v, aopts)
		} else {
			srv, err = api.NewServer(o.apiSocket, v, aopts)
		}
		if err != nil {
			return fail(fmt.Errorf("API socket: %w", err))
		}
		defer srv.Close()
	}
	if hasPayload(cfg) {
		if err := v.Create(cfg); err != nil {
			if srv != nil {
				srv.Close()
			}
			return fail(fmt.Errorf("create: %w", err))
		}
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

	// From here the main thread only waits and tears down.
	if err := seccomp.InstallThread(seccomp.Main, o.seccomp); err != nil {
		_ = v.Stop()
		fmt.Fprintf(stderr, "vmm: %v\n", err)
		return exitFailure
	}
	if err := v.Wait(); err != nil {
		fmt.Fprintf(stderr, "vmm: %v\n", err)
		return exitFailure
	}
	return exitOK
}
