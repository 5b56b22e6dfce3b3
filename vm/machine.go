package vm

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmmdev/vmm/acpi"
	"github.com/vmmdev/vmm/kvm"
	"github.com/vmmdev/vmm/vm/boot"
	"github.com/vmmdev/vmm/vm/bus"
	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/devices"
	"github.com/vmmdev/vmm/vm/hotplug"
	"github.com/vmmdev/vmm/vm/irq"
	"github.com/vmmdev/vmm/vm/layout"
	"github.com/vmmdev/vmm/vm/memory"
	"github.com/vmmdev/vmm/vm/pci"
	"github.com/vmmdev/vmm/vm/seccomp"
	"github.com/vmmdev/vmm/vm/virtio"
	"golang.org/x/sys/unix"
)

// eventKind is why a machine ended.
type eventKind int

const (
	eventPowerOff eventKind = iota
	eventReset
	eventFailed
)

func (k eventKind) String() string {
	switch k {
	case eventPowerOff:
		return "power off"
	case eventReset:
		return "reset"
	}
	return "failure"
}

// machineEvent tells the VMM that a machine ended.
type machineEvent struct {
	m      *machine
	kind   eventKind
	source string
	err    error
}

// machineDeps is what a machine borrows from its VMM.
type machineDeps struct {
	sys         *kvm.System
	cpuid       []kvm.CPUIDEntry
	tscDeadline bool
	serialOut   io.Writer // never nil
	consoleOut  io.Writer // the virtio console's output; nil: no virtio console
	log         *slog.Logger
	events      chan<- machineEvent
	firstRun    func()
	transport   VirtioTransport // where the virtio devices go
	seccomp     seccomp.Mode    // the vCPU threads' and virtio workers' filters
}

// machine is one incarnation of the VM: a KVM VM with its memory, buses,
// devices and vCPUs, built from a config and torn down on power off or
// reset (a reboot builds a new one).
type machine struct {
	cfg  config.VM
	deps machineDeps
	log  *slog.Logger

	vm     *kvm.VM
	mem    *memory.Guest
	pioBus *bus.Bus
	mmBus  *bus.Bus
	serial *devices.Serial
	cpus   *cpuManager
	irq    *irq.Router     // the GSI routing table and the irqfds
	pci    []*pci.Segment  // the PCI segments, 0 first
	virtio []*virtioDevice // in device order; see addVirtio
	// vconsole is the virtio console, nil without.
	vconsole *virtio.Console
	// vmem is the virtio-mem device (memory.hotplug_method VirtioMem), nil
	// without; its region is mapped by mapVirtioMemRegion.
	vmem *virtio.Mem
	// balloon is the virtio-balloon, nil without.
	balloon *virtio.Balloon

	// ACPI hot plug: the GED, the CPU controller and, with a hot plug RAM
	// space, the memory controller (nil without).
	ged   *hotplug.GED
	cpuHP *hotplug.CPUHotplug
	memHP *hotplug.MemoryHotplug
	// pciHP is the PCI hot plug controller, nil on virtio-mmio.
	pciHP *hotplug.PCIHotplug
	// devMu guards virtio (and the devices' removal state) against the
	// guest's ejects, which arrive on vCPU threads.
	devMu sync.Mutex
	// guestRemoved are the ids of the devices the guest ejected without
	// being asked, for the VMM to drop from the configuration
	// (takeGuestRemoved); guarded by devMu.
	guestRemoved []string
	// removalAsked is when resizeCPUs last asked the guest to eject vCPUs;
	// guarded by the VMM's lock, as resizes are.
	removalAsked time.Time

	// ending is set by the first power off, reset or failure; later ones
	// (Linux often writes a second reset) are absorbed.
	ending atomic.Bool
	// ignoredEjects counts the guest's refused ejects (EjectIgnored).
	ignoredEjects atomic.Uint64

	closeOnce sync.Once
	// holdMu is held by a reader of the machine that runs without the
	// VMM's lock (the state dump: VMM.holdMachine); close takes it first.
	holdMu sync.Mutex
}

// openPayload opens the kernel (a bzImage or a PVH ELF) and initramfs, or
// the firmware (a PVH ELF), named by cfg, parses the image's headers and
// checks that they fit its boot RAM. The files are read when boot.Load
// places them, straight into guest memory; closeFiles closes them, and is nil
// on error.
func openPayload(cfg config.VM) (_ boot.Payload, closeFiles func(), err error) {
	p := cfg.Payload
	what, path := "kernel", p.Kernel
	if p.Firmware != "" {
		what, path = "firmware", p.Firmware
	}
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			_ = f.Close()
		}
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	// O_NONBLOCK: a blocking open of a named pipe would wait for a writer;
	// the opened file's one fstat then refuses anything but a regular file
	// (where the flag changes nothing) and gives its size.
	open := func(what, path string) (*io.SectionReader, error) {
		f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			return nil, invalidf("%s: %w", what, err)
		}
		files = append(files, f)
		st, err := f.Stat()
		if err != nil {
			return nil, invalidf("%s: %w", what, err)
		}
		if !st.Mode().IsRegular() {
			return nil, invalidf("%s %s: not a regular file (%s)", what, path, st.Mode().Type())
		}
		return io.NewSectionReader(f, 0, st.Size()), nil
	}
	src, err := open(what, path)
	if err != nil {
		return boot.Payload{}, nil, err
	}
	img, err := boot.ParseImage(src)
	if err != nil {
		return boot.Payload{}, nil, invalidf("%s %s: %w", what, path, err)
	}
	if p.Firmware != "" && img.ELF == nil {
		return boot.Payload{}, nil, invalidf("firmware %s: a %s, not a PVH ELF firmware (a kernel goes with --kernel)", path, img.Kind())
	}
	bp := boot.Payload{Image: img, Cmdline: p.Cmdline, RAM: memory.BootRAM(cfg.Memory.Size), RSDPAddr: layout.ACPIStart}
	if p.Initramfs != "" {
		if bp.Initramfs, err = open("initramfs", p.Initramfs); err != nil {
			return boot.Payload{}, nil, err
		}
	}
	if err := boot.Check(bp); err != nil {
		return boot.Payload{}, nil, invalidf("%s %s: %w", what, path, err)
	}
	return bp, closeAll, nil
}

// newMachine builds a VM from cfg and leaves it ready to run: nothing runs
// until start. On error nothing is left behind.
func newMachine(cfg config.VM, deps machineDeps) (_ *machine, err error) {
	payload, closePayload, err := openPayload(cfg)
	if err != nil {
		return nil, err
	}
	defer closePayload()
	m := &machine{cfg: cfg, deps: deps, log: deps.log}
	defer func() {
		if err != nil {
			m.close()
		}
	}()

	if m.vm, err = deps.sys.CreateVM(); err != nil {
		return nil, err
	}
	if err = m.vm.SetTSSAddr(layout.TSSStart); err != nil {
		return nil, err
	}
	if err = m.vm.SetIdentityMapAddr(layout.IdentityMapStart); err != nil {
		return nil, err
	}
	if err = m.vm.CreateIRQChip(); err != nil {
		return nil, err
	}
	if err = m.vm.CreatePIT2(kvm.PITSpeakerDummy); err != nil {
		return nil, err
	}
	if m.irq, err = irq.NewRouter(m.vm); err != nil {
		return nil, err
	}

	ram := memory.BootRAM(cfg.Memory.Size)
	if m.mem, err = memory.MapWith(ram, memoryOptions(cfg.Memory)); err != nil {
		return nil, invalidf("memory: size=%dM: %w", cfg.Memory.Size>>20, err)
	}
	for _, r := range m.mem.Regions() {
		if err = m.vm.SetUserMemoryRegion(kvm.MemoryRegion(r.Slot, r.Start, r.Host())); err != nil {
			return nil, err
		}
	}
	if err = m.mapVirtioMemRegion(); err != nil {
		return nil, err
	}

	if err = m.addDevices(); err != nil {
		return nil, err
	}
	if deps.transport != TransportMMIO {
		if m.pciHP, err = hotplug.NewPCIHotplug(layout.PCIHotplugStart, len(m.pci), m); err != nil {
			return nil, err
		}
	}
	pm := devices.NewACPIPM(m, layout.ResetValue, m.log)
	if err = m.pioBus.Insert(layout.ACPIPMStart, layout.ACPIPMSize, "acpi-pm", pm); err != nil {
		return nil, err
	}
	if err = m.addHotplug(); err != nil {
		return nil, err
	}
	sb := []acpi.Describer{m.serial, m.ged, hotplug.PowerButton{}, m.cpuHP}
	if m.memHP != nil {
		sb = append(sb, m.memHP)
	}
	if m.pciHP != nil {
		sb = append(sb, m.pciHP)
	}
	sb = append(sb, m.pciDescribers()...)
	sb = append(sb, m.virtioDescribers()...)
	tables, err := acpiTables(cfg.CPUs.BootVCPUs, topologyOf(cfg.CPUs), pm, m.mcfgEntries(), sb...)
	if err != nil {
		return nil, err
	}
	if err = m.mem.WriteAt(tables, layout.ACPIStart); err != nil {
		return nil, fmt.Errorf("write ACPI tables: %w", err)
	}
	if err = m.mem.WriteAt(boot.ResetStub(layout.ResetRegisterPort, layout.ResetValue), layout.ResetVector); err != nil {
		return nil, fmt.Errorf("write reset vector: %w", err)
	}
	entry, err := boot.Load(m.mem, payload)
	if err != nil {
		return nil, invalid(err)
	}
	m.log.Debug("payload loaded", "image", payload.Image.Kind(), "protocol", entry.Protocol, "entry", fmt.Sprintf("%#x", entry.Addr))

	cpuid := deps.cpuid
	if !cfg.CPUs.NestedEnabled() {
		cpuid = WithoutNested(cpuid)
	}
	m.cpus = newCPUManager(m.vm, cpuConfig{maxVCPUs: cfg.CPUs.MaxVCPUs, topo: topologyOf(cfg.CPUs), cpuid: cpuid, tscDeadline: deps.tscDeadline, entry: entry,
		seccomp: deps.seccomp},
		m, m.log, deps.firstRun)
	for id := range cfg.CPUs.BootVCPUs {
		if err = m.cpus.create(id, id == 0); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// addDevices creates the buses, the legacy devices, the PCI segments and
// the virtio devices.
func (m *machine) addDevices() error {
	m.pioBus = bus.New("pio", m.log)
	m.mmBus = bus.New("mmio", m.log)
	com1IRQ, err := m.irq.Line(layout.COM1IRQ)
	if err != nil {
		return err
	}
	m.serial = devices.NewSerial(layout.COM1Port, layout.COM1IRQ, com1IRQ, m.deps.serialOut, m.log)
	kbd := devices.NewI8042(m)
	for _, d := range []struct {
		base, size uint64
		name       string
		dev        bus.Device
	}{
		{layout.COM1Port, layout.COM1Size, "com1", m.serial},
		{layout.I8042DataPort, 1, "i8042-data", kbd.Data()},
		{layout.I8042CommandPort, 1, "i8042-command", kbd.Command()},
		{layout.POSTPort, 1, "post", devices.Sink{}},
	} {
		if err := m.pioBus.Insert(d.base, d.size, d.name, d.dev); err != nil {
			return err
		}
	}
	if err := m.addPCI(pciSegmentCount(&m.cfg)); err != nil {
		return err
	}
	return m.addVirtio()
}

// maxMemorySlots bounds the memory hot plug slots a machine lays out, below
// hotplug.MaxMemorySlots: each RAM increase takes one slot, whatever its
// size, and each slot is a device in the DSDT (some 75 bytes). The 4096
// slots of 512 GiB of hot plug space made the ACPI tables 316 KB, beyond
// their 128 KiB; 256 slots (QEMU's limit of DIMMs) take about 19 KB, so
// even a machine with 255 vCPUs and 16 PCI segments fits. A slot takes a
// hot add of any size, so this bounds the number of RAM increases, not the
// RAM.
const maxMemorySlots = 256

// addHotplug creates the ACPI hot plug devices on the MMIO bus: the GED
// (power button and CPU events, and memory events with a hot plug RAM
// space), the CPU controller for max_vcpus CPUs, and the memory controller
// with one slot per whole 128 MiB block of hot plug space, at most
// maxMemorySlots (ACPI hot plug
// only: with virtio-mem, the space is the virtio-mem device's).
func (m *machine) addHotplug() error {
	var err error
	events := hotplug.EventPowerButton | hotplug.EventCPU
	if m.pciHP != nil {
		events |= hotplug.EventPCI
		if err := m.mmBus.Insert(layout.PCIHotplugStart, hotplug.PCIBlockSize, "pci-hotplug", m.pciHP); err != nil {
			return err
		}
	}
	if blocks := m.cfg.Memory.HotplugSize / config.HotplugBlock; blocks > 0 && m.cfg.Memory.HotplugMethod != config.HotplugVirtioMem {
		slots := int(min(blocks, maxMemorySlots))
		if m.memHP, err = hotplug.NewMemoryHotplug(layout.MemoryHotplugStart, slots); err != nil {
			return err
		}
		events |= hotplug.EventMemory
	}
	if m.cpuHP, err = hotplug.NewCPUHotplug(layout.CPUHotplugStart, m.cfg.CPUs.BootVCPUs, m.cfg.CPUs.MaxVCPUs, m); err != nil {
		return err
	}
	if err = m.cpuHP.SetAPICIDs(topologyOf(m.cfg.CPUs).APICIDs()); err != nil {
		return err
	}
	gedIRQ, err := m.irq.Line(layout.GEDIRQ)
	if err != nil {
		return err
	}
	if m.ged, err = hotplug.NewGED(hotplug.GEDConfig{Base: layout.GEDStart, GSI: layout.GEDIRQ, Events: events}, gedIRQ); err != nil {
		return err
	}
	if err := m.mmBus.Insert(layout.GEDStart, hotplug.GEDSize, "ged", m.ged); err != nil {
		return err
	}
	if err := m.mmBus.Insert(layout.CPUHotplugStart, hotplug.CPUBlockSize, "cpu-hotplug", m.cpuHP); err != nil {
		return err
	}
	if m.memHP != nil {
		if err := m.mmBus.Insert(layout.MemoryHotplugStart, hotplug.MemoryBlockSize, "memory-hotplug", m.memHP); err != nil {
			return err
		}
	}
	return nil
}

// EjectCPU parks vCPU id after the guest ejected it (hotplug.CPUOwner). It
// runs on the thread of the vCPU that wrote the eject register, so it must
// not wait.
func (m *machine) EjectCPU(id int) {
	m.log.Info("guest ejected a CPU", "vcpu", id)
	m.cpus.parkAsync(id)
}

// maxLoggedGuestErrors bounds the log lines a guest repeating one refused
// request causes.
const maxLoggedGuestErrors = 8

// EjectIgnored logs that the guest tried to eject vCPU id, which nobody
// asked to remove (or the boot vCPU), and raises the GED so that the guest
// finds the vCPU again (hotplug.CPUOwner): the vCPU keeps running and stays
// counted, in the guest too. It runs on a vCPU thread and does not wait.
func (m *machine) EjectIgnored(id int) {
	// A guest that writes the eject bit without end is logged only so far.
	if n := m.ignoredEjects.Add(1); n <= maxLoggedGuestErrors {
		m.log.Warn("refused the guest's eject of a CPU the vmm did not ask to remove; it stays", "vcpu", id, "refused", n)
	}
	if err := m.ged.Trigger(hotplug.EventCPU); err != nil {
		m.log.Error("signal the guest that a refused CPU stays", "vcpu", id, "err", err)
	}
}

// EjectRefused logs that the guest refused to eject vCPU id
// (hotplug.CPUOwner); the vCPU keeps running and stays counted.
func (m *machine) EjectRefused(id int, status uint32) {
	m.log.Warn("the guest refused to eject a CPU; it stays", "vcpu", id,
		"ost_status", fmt.Sprintf("%#x", status), "reason", ostReason(status))
}

// ostReason names an _OST status code of an eject request (ACPI 6.5,
// 6.3.5 "_OST").
func ostReason(status uint32) string {
	switch status {
	case 0x01:
		return "failure"
	case 0x02:
		return "unrecognized notify"
	case 0x80:
		return "eject not supported by the guest (Linux: /sys/firmware/acpi/hotplug/processor/enabled is 0)"
	case 0x81:
		return "device in use by an application"
	case 0x82:
		return "device busy (it could not be offlined)"
	case 0x83:
		return "an ejection dependency is busy"
	}
	return "unknown status"
}

// powerButton presses the ACPI power button.
func (m *machine) powerButton() error {
	return m.ged.Trigger(hotplug.EventPowerButton)
}

// start runs the boot vCPUs. They were all created first so that the boot
// vCPU's INIT and SIPI find them.
func (m *machine) start() error {
	ids := make([]int, m.cfg.CPUs.BootVCPUs)
	for i := range ids {
		ids[i] = i
	}
	return m.cpus.plug(ids...)
}

// close stops the vCPUs and frees everything. Safe to call more than once
// and on a machine that was only partly built.
func (m *machine) close() {
	m.closeOnce.Do(func() {
		m.holdMu.Lock()
		defer m.holdMu.Unlock()
		m.ending.Store(true)
		if m.cpus != nil {
			m.cpus.stopAll()
		}
		// The irqfds go first: the devices' last interrupts then raise
		// nothing, and closing their MSI-X vectors does not rewrite the
		// routing table once per vector.
		if m.irq != nil {
			if err := m.irq.Close(); err != nil {
				m.log.Warn("remove irqfds", "err", err)
			}
		}
		m.closeVirtio()
		if m.vm != nil {
			if err := m.vm.Close(); err != nil {
				m.log.Warn("close VM", "err", err)
			}
		}
		if m.mem != nil {
			if err := m.mem.Close(); err != nil {
				m.log.Warn("unmap guest RAM", "err", err)
			}
		}
	})
}

// pio, mmio, halted, Reset, PowerOff and fail make the machine the vCPUs'
// exitHandler.
func (m *machine) pio(port uint16, data []byte, write bool) {
	if write {
		m.pioBus.Write(uint64(port), data)
	} else {
		m.pioBus.Read(uint64(port), data)
	}
}

func (m *machine) mmio(addr uint64, data []byte, write bool) {
	if write {
		m.mmBus.Write(addr, data)
	} else {
		m.mmBus.Read(addr, data)
	}
}

func (m *machine) halted() bool { return m.ending.Load() }

func (m *machine) end(kind eventKind, source string, err error) {
	if !m.ending.CompareAndSwap(false, true) {
		m.log.Debug("machine already ending; event absorbed", "event", kind.String(), "source", source)
		return
	}
	m.log.Info("guest "+kind.String(), "source", source)
	if m.cpus != nil {
		m.cpus.kickAll()
	}
	// The channel has room for one event per machine; never block a vCPU.
	select {
	case m.deps.events <- machineEvent{m: m, kind: kind, source: source, err: err}:
	default:
		m.log.Error("machine event dropped", "event", kind.String())
	}
}

// Reset implements devices.Power for the devices and the vCPUs.
func (m *machine) Reset(source string) { m.end(eventReset, source, nil) }

// PowerOff implements devices.Power for the devices and the vCPUs.
func (m *machine) PowerOff(source string) { m.end(eventPowerOff, source, nil) }

func (m *machine) fail(err error) { m.end(eventFailed, err.Error(), err) }
