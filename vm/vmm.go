// Package vm is the virtual machine monitor's core: it builds a VM from a
// config.VM (memory layout, boot loader, vCPU and memory managers, devices,
// hot plug), runs it, resizes it and takes it through Cloud Hypervisor's
// lifecycle (Created, Running, Paused, Shutdown).
package vm

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/vmmdev/vmm/acpi"
	"github.com/vmmdev/vmm/kvm"
	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/events"
	"github.com/vmmdev/vmm/vm/seccomp"
)

// Options configure a VMM.
type Options struct {
	// Log receives the VMM's logs; nil means slog.Default().
	Log *slog.Logger
	// Stdin and Stdout are the serial port's input and output in tty mode;
	// nil means os.Stdin and os.Stdout. A terminal on Stdin is put in raw
	// mode while a VM runs and restored when the VMM ends.
	Stdin  io.Reader
	Stdout io.Writer
	// KVMPath is the KVM device; empty means /dev/kvm.
	KVMPath string
	// Start is when the process started, for the time-to-first-KVM_RUN log
	// line; zero means when New was called.
	Start time.Time
	// EjectTimeout is how long vCPU removals wait for the guest's eject:
	// until then a new vCPU resize gets ErrBusy (429), after it the resize
	// withdraws them and goes ahead. Zero means DefaultEjectTimeout.
	EjectTimeout time.Duration
	// Events receives Cloud Hypervisor's lifecycle and resize events
	// (--event-monitor); nil: none.
	Events events.Sink
	// VirtioTransport puts the virtio devices on PCI (TransportPCI, the
	// default when empty) or on virtio-mmio (TransportMMIO). It is the
	// machine's, not the VM configuration's: Cloud Hypervisor's VmConfig
	// has no such field.
	VirtioTransport VirtioTransport
	// Seccomp is the mode of the vCPU threads' seccomp filters (empty or
	// seccomp.Off: none). The process filter, which must come first, is
	// the program's to install (seccomp.InstallProcess).
	Seccomp seccomp.Mode
}

// DefaultEjectTimeout is Options.EjectTimeout's default. A Linux guest
// offlines and ejects a CPU in well under a second, a few seconds under
// emulation; a guest that has not in 30 s is not going to.
const DefaultEjectTimeout = 30 * time.Second

// VMM owns at most one VM: its configuration, its state and the machine
// currently running it. Every method is safe for concurrent use; one lock
// serialises lifecycle operations (create, boot, pause, reboot, resize,
// shutdown) and the handling of guest power events.
type VMM struct {
	opts        Options
	log         *slog.Logger
	sys         *kvm.System
	cpuid       []kvm.CPUIDEntry
	tscDeadline bool
	hostMaxCPUs int
	events      chan machineEvent

	mu    sync.Mutex
	cfg   *config.VM
	state State
	m     *machine
	// console is the serial port's host side, vconsole the virtio
	// console's (nil when off); both are opened at Create, as Cloud
	// Hypervisor does, and live until Delete or the end of the VMM.
	console  *console
	vconsole *console
	// bootRAM is the boot RAM the hot plug space was laid out after: that
	// of the running machine, or of the last one, or cfg's at create.
	// size + hotplug_size stays bootRAM + hotplug_size when the next boot
	// takes the RAM size a resize set (see layoutRAMLocked).
	bootRAM uint64
	// ended is set when the VMM ends; done is closed then, and exitErr
	// set, for Done and Wait.
	ended   bool
	done    chan struct{}
	exitErr error

	firstRun sync.Once
}

// New opens KVM and returns a VMM with no VM. The VMM runs until Stop, a
// guest power off, or a fatal error; Wait reports which.
func New(opts Options) (*VMM, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Stdin == nil {
		opts.Stdin = os.Stdin
	}
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.KVMPath == "" {
		opts.KVMPath = kvm.DevicePath
	}
	if opts.Start.IsZero() {
		opts.Start = time.Now()
	}
	if opts.EjectTimeout <= 0 {
		opts.EjectTimeout = DefaultEjectTimeout
	}
	switch opts.VirtioTransport {
	case "":
		opts.VirtioTransport = TransportPCI
	case TransportPCI, TransportMMIO:
	default:
		return nil, fmt.Errorf("virtio transport %q: want %q or %q", opts.VirtioTransport, TransportPCI, TransportMMIO)
	}
	sys, err := kvm.Open(opts.KVMPath)
	if err != nil {
		return nil, fmt.Errorf("KVM: %w", err)
	}
	v := &VMM{opts: opts, log: opts.Log, sys: sys, events: make(chan machineEvent, 4), done: make(chan struct{})}
	for _, c := range []kvm.Cap{kvm.CapIRQChip, kvm.CapUserMemory, kvm.CapSetTSSAddr, kvm.CapExtCPUID,
		kvm.CapPIT2, kvm.CapIRQFD, kvm.CapIRQRouting, kvm.CapImmediateExit, kvm.CapSetIdentityMapAddr} {
		n, err := sys.CheckExtension(c)
		if err == nil && n == 0 {
			err = errors.New("not supported")
		}
		if err != nil {
			sys.Close()
			return nil, fmt.Errorf("KVM lacks %v: %w", c, err)
		}
	}
	if v.cpuid, err = sys.SupportedCPUID(); err != nil {
		sys.Close()
		return nil, err
	}
	v.cpuid = WithBrand(v.cpuid, hostBrand())
	if err := v.hostCaps(sys); err != nil {
		sys.Close()
		return nil, err
	}
	go v.handleEvents()
	v.emit(events.SourceVMM, events.Starting)
	return v, nil
}

// extensionChecker answers KVM_CHECK_EXTENSION.
type extensionChecker interface {
	CheckExtension(kvm.Cap) (int, error)
}

// hostCaps reads the optional capabilities of the host's KVM: the TSC
// deadline timer, and the most vCPUs a VM may have (KVM_CAP_MAX_VCPUS, or
// the recommended KVM_CAP_NR_VCPUS of a KVM without it). A failing check is
// an error: only an answer of 0 says that KVM lacks a capability.
func (v *VMM) hostCaps(sys extensionChecker) error {
	n, err := sys.CheckExtension(kvm.CapTSCDeadlineTimer)
	if err != nil {
		return err
	}
	v.tscDeadline = n > 0
	if v.hostMaxCPUs, err = sys.CheckExtension(kvm.CapMaxVCPUs); err != nil {
		return err
	}
	if v.hostMaxCPUs == 0 {
		if v.hostMaxCPUs, err = sys.CheckExtension(kvm.CapNrVCPUs); err != nil {
			return err
		}
	}
	return nil
}

// emit sends an event without properties to Options.Events, if any.
func (v *VMM) emit(source, event string) {
	if v.opts.Events != nil {
		v.opts.Events.Emit(source, event, nil)
	}
}

// Create sets the VM's configuration after checking it as a whole: Cloud
// Hypervisor's rules, that vmm does what it asks (a field vmm does not do,
// away from its default, is refused: config.CheckSupported), that the
// kernel is one vmm boots and the files exist. The configuration is kept
// with its defaults filled in, as vm.info shows it. Nothing runs until
// Boot, and a refused configuration leaves no VM.
func (v *VMM) Create(cfg config.VM) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ended {
		return stateError("the VMM is shutting down")
	}
	if v.cfg != nil {
		return stateError(textAlreadyCreated)
	}
	c := cfg.Clone()
	if err := v.check(&c); err != nil {
		return err
	}
	if err := v.openConsolesLocked(&c); err != nil {
		return err
	}
	if c.LandlockEnable {
		if err := v.confine(c); err != nil {
			v.closeConsolesLocked()
			return err
		}
	}
	v.cfg = &c
	v.state = StateCreated
	v.bootRAM = c.Memory.Size
	return nil
}

// Check reports whether Create would refuse cfg for what it says (its
// fields, this host, this VMM's features), without creating anything: the
// command line's VM is checked before the API socket opens, so no client
// sees a vmm that is about to exit on its own command line.
func (v *VMM) Check(cfg config.VM) error {
	c := cfg.Clone()
	return v.check(&c)
}

// check fills in cfg's defaults and validates it for this host and this
// VMM's features.
func (v *VMM) check(cfg *config.VM) error {
	cfg.SetDefaults()
	if ignored := cfg.Payload.IgnoredWithFirmware(); len(ignored) > 0 {
		v.log.Warn("a firmware is the payload: ignoring the kernel's fields", "ignored", ignored, "firmware", cfg.Payload.Firmware)
	}
	if err := v.validate(cfg); err != nil {
		return err
	}
	if cfg.CPUs.MaxVCPUs > acpi.MaxCPUs {
		return invalidf("cpus: max=%d is above the %d the MADT can describe", cfg.CPUs.MaxVCPUs, acpi.MaxCPUs)
	}
	if err := topologyOf(cfg.CPUs).check(); err != nil {
		return invalid(err)
	}
	if err := checkConsoles(cfg); err != nil {
		return err
	}
	if err := checkVirtio(cfg, v.opts.VirtioTransport); err != nil {
		return err
	}
	_, closePayload, err := openPayload(*cfg)
	if err != nil {
		return err
	}
	closePayload()
	return nil
}

// validate checks cfg, with its defaults filled in, for this host and for
// what vmm supports: a duplicate id or address is ErrConflict, anything
// else invalid.
func (v *VMM) validate(cfg *config.VM) error {
	if err := cfg.Validate(v.hostMaxCPUs); err != nil {
		if nu := (*config.NotUniqueError)(nil); errors.As(err, &nu) {
			return ofKind(err, ErrConflict)
		}
		return invalid(err)
	}
	if err := cfg.CheckSupported(); err != nil {
		return invalid(err)
	}
	return nil
}

// lifecycle runs step under the lock once a VM exists in one of the
// allowed states (in any state when none is given); to is the state the
// operation takes the VM to, for the error when it is in another.
func (v *VMM) lifecycle(to State, allowed []State, step func() error) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.checkLocked(to, allowed...); err != nil {
		return err
	}
	return step()
}

// checkLocked fails an operation taking the VM to state to with ErrNoVM
// when there is no VM, and with an ErrState error in Cloud Hypervisor's
// words when the VM is in none of the allowed states (any state will do
// when none is given): "VM is not running" when it is not, an invalid
// transition otherwise. Called with v.mu held.
func (v *VMM) checkLocked(to State, allowed ...State) error {
	switch {
	case v.cfg == nil:
		return ErrNoVM
	case len(allowed) == 0 || slices.Contains(allowed, v.state):
		return nil
	case v.state == StateCreated || v.state == StateShutdown:
		return stateError(textNotRunning)
	}
	return transitionError(v.state, to)
}

// Boot builds the VM from its configuration and starts it.
func (v *VMM) Boot() error {
	return v.lifecycle(StateRunning, []State{StateCreated, StateShutdown}, func() error {
		if v.ended {
			return stateError("the VMM is shutting down")
		}
		v.emit(events.SourceVM, events.Booting)
		if err := v.bootLocked(); err != nil {
			return err
		}
		v.emit(events.SourceVM, events.Booted)
		return nil
	})
}

// bootLocked builds a machine from the current config and runs it.
func (v *VMM) bootLocked() error {
	v.layoutRAMLocked()
	if v.console == nil {
		if err := v.openConsolesLocked(v.cfg); err != nil {
			return err
		}
	}
	var consoleOut io.Writer
	if v.vconsole != nil {
		consoleOut = v.vconsole.out
	}
	m, err := newMachine(*v.cfg, machineDeps{
		sys: v.sys, cpuid: v.cpuid, tscDeadline: v.tscDeadline,
		serialOut: v.console.out, consoleOut: consoleOut, log: v.log, events: v.events, transport: v.opts.VirtioTransport,
		seccomp: v.opts.Seccomp,
		firstRun: func() {
			v.firstRun.Do(func() {
				v.log.Info("first KVM_RUN", "since_start_ms", time.Since(v.opts.Start).Milliseconds())
			})
		},
	})
	if err != nil {
		return err
	}
	v.cfg.Net = m.cfg.Net // the tap names and MACs the nets got
	v.console.attach(m.serial)
	if v.vconsole != nil && m.vconsole != nil {
		v.vconsole.attach(m.vconsole)
	}
	if err := m.start(); err != nil {
		v.detachConsolesLocked()
		m.close()
		return err
	}
	v.m = m
	v.bootRAM = m.cfg.Memory.Size
	v.state = StateRunning
	// Building the machine allocated what it no longer needs (the kernel
	// and initramfs are read straight into guest RAM, but the tables and
	// devices' set-up are not); the Go runtime would keep those pages for
	// minutes. Give them back now, off the caller's path.
	go debug.FreeOSMemory()
	v.log.Info("VM running", "vcpus", v.cfg.CPUs.BootVCPUs, "max_vcpus", v.cfg.CPUs.MaxVCPUs, "memory_mib", v.cfg.Memory.Size>>20)
	return nil
}

// stopLocked tears the current machine down, if any. The vCPUs the guest
// left present are the next boot's.
func (v *VMM) stopLocked() {
	if v.m == nil {
		return
	}
	v.syncVCPUsLocked()
	v.syncDevicesLocked()
	v.detachConsolesLocked()
	v.m.close()
	v.m = nil
}

// Shutdown stops the VM; its configuration stays, and Boot starts it again.
func (v *VMM) Shutdown() error {
	return v.lifecycle(StateShutdown, []State{StateRunning, StatePaused}, func() error {
		v.stopLocked()
		v.state = StateShutdown
		v.emit(events.SourceVM, events.Shutdown)
		return nil
	})
}

// Reboot tears the VM down and builds it again from its current
// configuration, as a guest reset does.
func (v *VMM) Reboot() error {
	return v.lifecycle(StateRunning, []State{StateRunning, StatePaused}, v.rebootLocked)
}

func (v *VMM) rebootLocked() error {
	v.emit(events.SourceVM, events.Rebooting)
	v.stopLocked()
	v.state = StateShutdown
	if err := v.bootLocked(); err != nil {
		return err
	}
	v.emit(events.SourceVM, events.Rebooted)
	return nil
}

// Pause stops every vCPU; Resume lets them run again.
func (v *VMM) Pause() error {
	return v.switchRun(StatePaused, StateRunning, events.Pausing, events.Paused, func() { v.m.cpus.pause() })
}

// Resume undoes Pause.
func (v *VMM) Resume() error {
	return v.switchRun(StateRunning, StatePaused, events.Resuming, events.Resumed, func() { v.m.cpus.resume() })
}

// switchRun takes the VM from state from to state to with act (pausing or
// resuming the vCPUs, which it reaches through v.m only once lifecycle
// has checked that there is a VM), announced by the events before and after.
func (v *VMM) switchRun(to, from State, before, after string, act func()) error {
	return v.lifecycle(to, []State{from}, func() error {
		v.emit(events.SourceVM, before)
		act()
		v.state = to
		v.emit(events.SourceVM, after)
		return nil
	})
}

// PowerButton presses the guest's ACPI power button.
func (v *VMM) PowerButton() error {
	return v.lifecycle(StateShutdown, []State{StateRunning}, func() error { return v.m.powerButton() })
}

// Info reports the configuration and state.
func (v *VMM) Info() (Info, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cfg == nil {
		return Info{}, ErrNoVM
	}
	v.syncVCPUsLocked()
	v.syncDevicesLocked()
	info := Info{Config: v.cfg.Clone(), State: v.state, MemoryActualSize: v.cfg.Memory.TotalSize()}
	if v.m != nil {
		info.ActiveVCPUs = v.m.cpus.active()
		info.MemoryActualSize = v.m.ramSize()
		if v.m.balloon != nil {
			actual := v.m.balloonActual()
			info.BalloonActualSize = &actual
			info.MemoryActualSize -= min(actual, info.MemoryActualSize)
		}
		info.DeviceTree = v.m.deviceTree()
		info.PendingRemovals = v.m.pendingRemovals()
	}
	return info, nil
}

// Delete stops the VM if it runs and forgets its configuration. Without a
// VM it does nothing, as Cloud Hypervisor's.
func (v *VMM) Delete() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.stopLocked()
	v.closeConsolesLocked()
	if v.cfg != nil {
		for _, n := range v.cfg.Net {
			closeFDs(n.FDs)
		}
		v.emit(events.SourceVM, events.Deleted)
	}
	v.cfg = nil
	v.state = ""
	v.bootRAM = 0
	return nil
}

// Stop stops the VM if it runs and ends the VMM: Wait then returns nil.
func (v *VMM) Stop() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.stopLocked()
	if v.cfg != nil {
		v.state = StateShutdown
	}
	v.endLocked(nil)
	return nil
}

// Done is closed when the VMM has ended.
func (v *VMM) Done() <-chan struct{} { return v.done }

// Wait blocks until the VMM ends and returns nil after a guest power off or
// Stop, or the error that ended it.
func (v *VMM) Wait() error {
	<-v.done
	return v.exitErr
}

// endLocked ends the VMM once: the console is flushed and the terminal
// restored, KVM closed, and Done closed. Called with v.mu held.
func (v *VMM) endLocked(err error) {
	if v.ended {
		return
	}
	v.ended = true
	v.emit(events.SourceVMM, events.Shutdown)
	v.closeConsolesLocked()
	v.sys.Close()
	v.exitErr = err
	close(v.done)
}

// handleEvents acts on machines ending: a power off ends the VMM, a reset
// rebuilds the VM, a failure ends the VMM with the error.
func (v *VMM) handleEvents() {
	for {
		select {
		case ev := <-v.events:
			v.handleEvent(ev)
		case <-v.done:
			return
		}
	}
}

func (v *VMM) handleEvent(ev machineEvent) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if ev.m != v.m || v.m == nil {
		ev.m.close() // a machine already replaced or stopped
		return
	}
	switch ev.kind {
	case eventPowerOff:
		v.stopLocked()
		v.state = StateShutdown
		v.emit(events.SourceVM, events.Shutdown)
		v.endLocked(nil)
	case eventReset:
		v.log.Info("rebooting", "source", ev.source)
		if err := v.rebootLocked(); err != nil {
			v.log.Error("reboot failed", "err", err)
			v.endLocked(fmt.Errorf("reboot: %w", err))
		}
	default:
		v.stopLocked()
		v.state = StateShutdown
		err := ev.err
		if err == nil {
			err = errors.New(ev.source)
		}
		v.endLocked(fmt.Errorf("VM failed: %w", err))
	}
}
