package hotplug

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/vmmdev/vmm/acpi"
)

// IRQ raises the GED's interrupt in the guest: an edge on its GSI, with
// KVM_IRQ_LINE (1 then 0) or an irqfd.
type IRQ interface {
	Trigger() error
}

// IRQFunc adapts a function to the IRQ interface.
type IRQFunc func() error

// Trigger calls f.
func (f IRQFunc) Trigger() error { return f() }

// GEDConfig places the GED.
type GEDConfig struct {
	// Base is the guest physical address of the GEDSize-byte block.
	Base uint64
	// GSI is the GED's interrupt, edge triggered, active high.
	GSI uint32
	// Events are the event bits the guest's _EVT handles (EventCPU,
	// EventMemory, EventPowerButton, EventPCI). The DSDT must then hold
	// \_SB.CPUS (CPUHotplug.AML) for EventCPU, \_SB.MHPC
	// (MemoryHotplug.AML) for EventMemory, \_SB.PWRB (PowerButton.AML)
	// for EventPowerButton and \_SB.PHPR (PCIHotplug.AML) for EventPCI.
	Events uint32
}

// GED is the Generic Event Device (ACPI0013): one event register the
// guest reads from its _EVT method when the GED's interrupt fires.
type GED struct {
	cfg GEDConfig
	irq IRQ

	mu      sync.Mutex
	pending uint32
}

// NewGED returns a GED that raises irq. It fails on an unknown event bit.
func NewGED(cfg GEDConfig, irq IRQ) (*GED, error) {
	if cfg.Events&^allEvents != 0 {
		return nil, fmt.Errorf("ged: unknown event bits %#x", cfg.Events&^allEvents)
	}
	if irq == nil {
		return nil, fmt.Errorf("ged: no IRQ")
	}
	return &GED{cfg: cfg, irq: irq}, nil
}

// Trigger sets the event bits and raises the interrupt. Bits already
// pending stay set: the guest handles each event once however often it was
// triggered. It fails on a bit the GED was not configured for (its event
// would be lost) and when raising the interrupt fails; the bits then stay
// pending for the next interrupt.
func (g *GED) Trigger(events uint32) error {
	if events == 0 || events&^g.cfg.Events != 0 {
		return fmt.Errorf("ged: cannot signal events %#x (configured %#x)", events, g.cfg.Events)
	}
	g.mu.Lock()
	g.pending |= events
	g.mu.Unlock()
	if err := g.irq.Trigger(); err != nil {
		return fmt.Errorf("ged: raise interrupt: %w", err)
	}
	return nil
}

// Pending returns the event bits the guest has not read yet.
func (g *GED) Pending() uint32 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pending
}

// Read reads the event register: the pending bits in the bytes read, which
// are then cleared.
func (g *GED) Read(offset uint64, data []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var image [4]byte
	binary.LittleEndian.PutUint32(image[:], g.pending)
	readImage(image[:], offset, data)
	for i := range data {
		if off := offset + uint64(i); off < uint64(len(image)) {
			g.pending &^= 0xff << (8 * off)
		}
	}
}

// Write ignores the write: the GED has no writable register.
func (g *GED) Write(offset uint64, data []byte) {}

// AML returns the GED device \_SB.GED_: its interrupt, its event register
// and the _EVT method that dispatches the configured events.
func (g *GED) AML() acpi.Aml {
	evt := []acpi.Aml{acpi.Store(acpi.Path("GDAT"), acpi.Local(0))}
	handle := func(bit uint32, action acpi.Aml) {
		if g.cfg.Events&bit != 0 {
			evt = append(evt, acpi.If(
				acpi.LEqual(acpi.And(acpi.Local(0), acpi.Int(bit), nil), acpi.Int(bit)),
				action))
		}
	}
	handle(EventCPU, acpi.Call(CPUScanPath))
	handle(EventMemory, acpi.Call(MemoryScanPath))
	handle(EventPowerButton, acpi.Notify(acpi.Path(PowerButtonPath), acpi.Int(0x80)))
	handle(EventPCI, acpi.Call(PCIScanPath))

	return acpi.Device("GED_",
		acpi.Name("_HID", acpi.String("ACPI0013")),
		acpi.Name("_UID", acpi.Zero),
		acpi.Name("_CRS", acpi.ResourceTemplate(acpi.Interrupt{GSIs: []uint32{g.cfg.GSI}})),
		acpi.OperationRegion("GDST", acpi.SystemMemory, g.cfg.Base+GEDEventOffset, 4),
		acpi.Field("GDST", acpi.DWordAcc, acpi.NoLock, acpi.WriteAsZeros, acpi.FieldUnit{Name: "GDAT", Bits: 32}),
		// Arg0 is the GSI that fired; there is only one.
		acpi.Method("_EVT", 1, true, evt...),
	)
}

// ACPI paths the GED's _EVT uses.
const (
	// CPUScanPath is the CPU hot plug scan, declared by CPUHotplug.AML.
	CPUScanPath = `\_SB.CPUS.CSCN`
	// MemoryScanPath is the memory hot plug scan, declared by
	// MemoryHotplug.AML.
	MemoryScanPath = `\_SB.MHPC.MSCN`
	// PowerButtonPath is the power button device, declared by PowerButton.
	PowerButtonPath = `\_SB.PWRB`
	// PCIScanPath is the PCI hot plug scan, declared by PCIHotplug.AML.
	PCIScanPath = `\_SB.PHPR.PSCN`
)

// PowerButton is the control-method power button \_SB.PWRB (PNP0C0C) that
// the GED notifies on EventPowerButton. It has no registers.
type PowerButton struct{}

// AML returns the power button device.
func (PowerButton) AML() acpi.Aml {
	return acpi.Device("PWRB",
		acpi.Name("_HID", acpi.EISAID("PNP0C0C")),
		acpi.Name("_UID", acpi.Zero),
	)
}
