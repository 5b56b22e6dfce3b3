package hotplug

import (
	"fmt"
	"slices"
	"sync"

	"github.com/vmmdev/vmm/acpi"
)

// CPUOwner is the owner of the vCPUs, told what the guest did with them.
// Its methods are called on the vCPU goroutine that wrote the register,
// without the controller's lock held, so they must not wait for that vCPU.
type CPUOwner interface {
	// EjectCPU parks CPU id: the guest ejected it, at the owner's request
	// or on its own.
	EjectCPU(id int)
	// EjectRefused reports that the guest answered the eject request of
	// CPU id with the _OST status code status (a failure): the removal is
	// withdrawn and the CPU stays present.
	EjectRefused(id int, status uint32)
	// EjectIgnored reports that the guest wrote the eject bit of CPU id,
	// which the owner never asked to remove (or CPU 0, the boot CPU): the
	// eject is refused, as Cloud Hypervisor refuses it, and the CPU stays
	// present, flagged inserting. The owner raises the GED (EventCPU) so
	// that the guest, which forgot the CPU before writing _EJ0, finds it
	// again at its scan.
	EjectIgnored(id int)
}

// cpuState is one possible CPU's view from the guest.
type cpuState struct {
	plug
	removing bool // not yet acknowledged by the guest
	ejecting bool // removal asked, eject not yet written
}

// CPUHotplug is the CPU hot plug controller: the register block of
// regs.go and the \_SB.CPUS container with one processor device per
// possible CPU. CPU ids are ACPI processor UIDs, 0 to max-1; their APIC
// ids are the CPU ids too unless SetAPICIDs says otherwise.
type CPUHotplug struct {
	base  uint64
	owner CPUOwner
	// apicIDs are the CPUs' APIC ids, for _MAT; nil: the CPU ids.
	apicIDs []uint8

	mu       sync.Mutex
	sel      selector
	ostEvent uint32 // the last _OST event written
	ostCode  uint32 // the _OST status being written
	cpus     []cpuState
}

// blockAML names the AML objects over the CPU controller's block.
func (c *CPUHotplug) blockAML() blockAML {
	// Processor devices CP00 to CPFE.
	return blockAML{device: "CPUS", base: c.base, size: CPUBlockSize, items: len(c.cpus), itemName: "CP%02X",
		region: "CREG", mutex: "CMTX", selector: "CSEL", enabled: "CPEN", inserting: "CINS"}
}

// NewCPUHotplug returns the controller for maxCPUs (1 to acpi.MaxCPUs)
// possible CPUs with its block at base, CPUs 0 to bootCPUs-1 present.
func NewCPUHotplug(base uint64, bootCPUs, maxCPUs int, owner CPUOwner) (*CPUHotplug, error) {
	if bootCPUs < 0 || bootCPUs > maxCPUs || maxCPUs < 1 || maxCPUs > acpi.MaxCPUs {
		return nil, fmt.Errorf("cpu hotplug: boot=%d max=%d: need 0 <= boot <= max, 1 <= max <= %d", bootCPUs, maxCPUs, acpi.MaxCPUs)
	}
	if owner == nil {
		return nil, fmt.Errorf("cpu hotplug: no owner")
	}
	c := &CPUHotplug{base: base, owner: owner, cpus: make([]cpuState, maxCPUs)}
	for id := range bootCPUs {
		c.cpus[id].present = true
	}
	return c, nil
}

// SetAPICIDs gives CPUs 0 to MaxCPUs-1 the APIC ids ids (those of the
// MADT), which their processor devices' _MAT report. Call it before AML.
func (c *CPUHotplug) SetAPICIDs(ids []uint8) error {
	if len(ids) != len(c.cpus) {
		return fmt.Errorf("cpu hotplug: %d APIC ids for %d CPUs", len(ids), len(c.cpus))
	}
	c.apicIDs = slices.Clone(ids)
	return nil
}

// apicID is CPU id's APIC id.
func (c *CPUHotplug) apicID(id int) uint8 {
	if c.apicIDs != nil {
		return c.apicIDs[id]
	}
	return uint8(id)
}

// MaxCPUs returns the number of possible CPUs.
func (c *CPUHotplug) MaxCPUs() int { return len(c.cpus) }

// update runs f on CPU id's state with the lock held.
func (c *CPUHotplug) update(id int, f func(s *cpuState) error) error {
	if id < 0 || id >= len(c.cpus) {
		return fmt.Errorf("cpu hotplug: CPU %d out of range 0-%d", id, len(c.cpus)-1)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return f(&c.cpus[id])
}

// SetInserting makes CPU id present and flags it for the guest's next scan
// (follow with GED.Trigger(EventCPU)). It does nothing for a CPU already
// present, and fails for a CPU whose removal is still pending.
func (c *CPUHotplug) SetInserting(id int) error {
	return c.update(id, func(s *cpuState) error {
		switch {
		case s.ejecting:
			return fmt.Errorf("cpu hotplug: CPU %d: its removal is still pending", id)
		case !s.present:
			*s = cpuState{plug: plug{present: true, inserting: true}}
		}
		return nil
	})
}

// CancelInsert withdraws the insertion of CPU id that SetInserting made,
// as long as the guest has not acknowledged it (the guest has not seen the
// CPU): the CPU is absent again and CancelInsert reports true. A CPU the
// guest has seen stays, and it reports false, as does CPU 0, which is always
// present.
func (c *CPUHotplug) CancelInsert(id int) bool {
	done := false
	_ = c.update(id, func(s *cpuState) error {
		if id != 0 && s.present && s.inserting && !s.ejecting {
			*s = cpuState{}
			done = true
		}
		return nil
	})
	return done
}

// SetRemoving asks the guest to eject CPU id at its next scan (follow with
// GED.Trigger(EventCPU)). The removal is pending until the guest writes the
// eject bit; asking again meanwhile does nothing. It fails for a CPU that
// is not present.
func (c *CPUHotplug) SetRemoving(id int) error {
	return c.update(id, func(s *cpuState) error {
		switch {
		case !s.present:
			return fmt.Errorf("cpu hotplug: CPU %d is not present", id)
		case !s.ejecting:
			s.removing, s.ejecting = true, true
		}
		return nil
	})
}

// CancelRemoves withdraws every removal asked with SetRemoving that the
// guest has not completed, and returns the CPUs it withdrew, in order: they
// stay present and PendingEject no longer counts them. A guest that ejects
// one later all the same is refused, as for any CPU not asked to remove.
func (c *CPUHotplug) CancelRemoves() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []int
	for id := range c.cpus {
		if s := &c.cpus[id]; s.ejecting {
			s.removing, s.ejecting = false, false
			ids = append(ids, id)
		}
	}
	return ids
}

// Present reports whether CPU id is present (the guest's _STA says enabled).
func (c *CPUHotplug) Present(id int) bool {
	present := false
	_ = c.update(id, func(s *cpuState) error {
		present = s.present
		return nil
	})
	return present
}

// PresentCount returns how many CPUs are present.
func (c *CPUHotplug) PresentCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return presentCount(c.cpus)
}

// PendingEject reports whether a removal asked with SetRemoving has not been
// completed by the guest's eject yet.
func (c *CPUHotplug) PendingEject() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.ContainsFunc(c.cpus, func(s cpuState) bool { return s.ejecting })
}

// status returns the status byte of the selected CPU; the lock is held.
func (c *CPUHotplug) status() byte {
	id, ok := c.sel.index(len(c.cpus))
	if !ok {
		return 0
	}
	s := c.cpus[id]
	b := s.status()
	if s.removing {
		b |= CPURemoving
	}
	return b
}

// Read reads the selector or the selected CPU's status byte.
func (c *CPUHotplug) Read(offset uint64, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	image := c.sel.image(CPUBlockSize)
	image[CPUStatusOffset] = c.status()
	readImage(image, offset, data)
}

// Write sets the selector, acts on the selected CPU's status byte
// (acknowledgements: write 1 to CPUInserting or CPURemoving to clear it;
// the eject: write 1 to CPUEject) or takes the guest's _OST report.
func (c *CPUHotplug) Write(offset uint64, data []byte) {
	ejected, refused, ignored := -1, -1, -1
	ost := false
	c.mu.Lock()
	for i, b := range data {
		off := offset + uint64(i)
		switch {
		case c.sel.write(off, b):
		case off == CPUStatusOffset:
			switch id, r := c.writeStatus(b); r {
			case ejectDone:
				ejected = id
			case ejectIgnored:
				ignored = id
			}
		case writeReg32(&c.ostEvent, CPUOSTEventOffset, off, b):
		case writeReg32(&c.ostCode, CPUOSTStatusOffset, off, b):
			ost = true
		}
	}
	if ost {
		if id, ok := c.reportOST(); ok {
			refused = id
		}
	}
	status := c.ostCode
	c.mu.Unlock()
	if ejected >= 0 {
		c.owner.EjectCPU(ejected)
	}
	if refused >= 0 {
		c.owner.EjectRefused(refused, status)
	}
	if ignored >= 0 {
		c.owner.EjectIgnored(ignored)
	}
}

// reportOST acts on the guest's _OST report for the selected CPU and
// reports the CPU whose pending removal it withdrew, if any: an eject
// request answered with a failure (anything but success or "in progress")
// will never be followed by an eject. The lock is held.
func (c *CPUHotplug) reportOST() (int, bool) {
	id, ok := c.sel.index(len(c.cpus))
	if !ok {
		return 0, false
	}
	if c.ostEvent != OSTEjectRequest && c.ostEvent != OSTOSPMEject {
		return 0, false
	}
	if c.ostCode == OSTSuccess || c.ostCode == OSTEjectInProgress {
		return 0, false
	}
	s := &c.cpus[id]
	if !s.ejecting {
		return 0, false // the guest's own eject failed: nothing was asked
	}
	s.removing, s.ejecting = false, false
	return id, true
}

// ejectResult is what a status write did with the eject bit.
type ejectResult int

const (
	ejectNone    ejectResult = iota // no eject bit, or no CPU to eject
	ejectDone                       // the CPU was ejected
	ejectIgnored                    // the eject was refused
)

// writeStatus applies a status write to the selected CPU and reports what
// it did with an eject, and of which CPU; the lock is held.
func (c *CPUHotplug) writeStatus(b byte) (int, ejectResult) {
	id, ok := c.sel.index(len(c.cpus))
	if !ok {
		return 0, ejectNone
	}
	s := &c.cpus[id]
	s.acknowledge(b)
	if b&CPURemoving != 0 {
		s.removing = false
	}
	if b&CPUEject == 0 || !s.present {
		return 0, ejectNone
	}
	// The eject is honoured for a CPU whose removal is pending, whatever
	// the removing bit says: the scan acknowledged that bit long before
	// _EJ0 runs. The boot CPU, and a CPU nobody asked to remove, stay; the
	// guest is told about them again (inserting) at its next scan.
	if id == 0 || !s.ejecting {
		s.removing, s.ejecting = false, false
		s.inserting = true
		return id, ejectIgnored
	}
	*s = cpuState{}
	return id, ejectDone
}

// AML returns \_SB.CPUS: the processor container (ACPI0010) with the
// register block's operation region and fields, its mutex CMTX, the methods
// CSTA(id) (a CPU's _STA value), CEJ0(id) (eject), COST(id, event,
// status) (the guest's _OST report), CTFY(id, event) (notify a CPU's
// device) and CSCN (the scan the GED calls), and one processor device
// (ACPI0007) per possible CPU with _UID, _STA, _MAT, _EJ0 and _OST.
func (c *CPUHotplug) AML() acpi.Aml {
	b := c.blockAML()
	ids := []acpi.Aml{acpi.Name("_HID", acpi.String("ACPI0010")), acpi.Name("_CID", acpi.EISAID("PNP0A05"))}
	return b.container(ids, []acpi.Aml{
		b.selectorField(),
		// CPEN (CPUEnabled), CINS (CPUInserting), CRMV (CPURemoving),
		// CEJF (CPUEject).
		b.statusField(CPUStatusOffset, acpi.FieldUnit{Name: "CRMV", Bits: 1}, acpi.FieldUnit{Name: "CEJF", Bits: 1}),
		acpi.Field("CREG", acpi.DWordAcc, acpi.NoLock, acpi.WriteAsZeros,
			acpi.FieldOffset(CPUOSTEventOffset),
			acpi.FieldUnit{Name: "OEVT", Bits: 32},
			acpi.FieldUnit{Name: "OSTS", Bits: 32},
		),
		// CSTA(id): 0xF when the CPU is present, else 0.
		b.staMethod("CSTA"),
		// CEJ0(id): eject the CPU.
		acpi.Method("CEJ0", 1, true, b.locked(acpi.Store(acpi.One, acpi.Path("CEJF")))...),
		// COST(id, event, status): the guest's _OST report on a CPU.
		acpi.Method("COST", 3, true, b.locked(
			acpi.Store(acpi.Arg(1), acpi.Path("OEVT")),
			acpi.Store(acpi.Arg(2), acpi.Path("OSTS")),
		)...),
		b.notifyMethod("CTFY"),
		// CSCN: for each CPU, notify and acknowledge insertions (1: device
		// check) and removal requests (3: eject request).
		acpi.Method("CSCN", 0, true,
			acpi.Acquire("CMTX", acpi.WaitForever),
			acpi.Store(acpi.Zero, acpi.Local(0)),
			acpi.While(acpi.LLess(acpi.Local(0), acpi.Int(b.items)),
				acpi.Store(acpi.Local(0), acpi.Path("CSEL")),
				acpi.If(acpi.LEqual(acpi.Path("CINS"), acpi.One),
					acpi.Call("CTFY", acpi.Local(0), acpi.One),
					acpi.Store(acpi.One, acpi.Path("CINS")),
				),
				acpi.If(acpi.LEqual(acpi.Path("CRMV"), acpi.One),
					acpi.Call("CTFY", acpi.Local(0), acpi.Int(3)),
					acpi.Store(acpi.One, acpi.Path("CRMV")),
				),
				acpi.Increment(acpi.Local(0)),
			),
			acpi.Release("CMTX"),
		),
	}, c.cpuDevice)
}

// cpuDevice is the processor device of CPU id inside \_SB.CPUS.
func (c *CPUHotplug) cpuDevice(name string, id int) acpi.Aml {
	// _MAT: the MADT Local APIC entry, Enabled while present.
	apicID := c.apicID(id)
	mat := func(flags uint32) acpi.Aml {
		return acpi.Buffer(acpi.LocalAPIC(uint8(id), apicID, flags))
	}
	sta := acpi.Call("CSTA", acpi.Int(id))
	return acpi.Device(name,
		acpi.Name("_HID", acpi.String("ACPI0007")),
		acpi.Name("_UID", acpi.Int(id)),
		acpi.Method("_STA", 0, false, acpi.Return(sta)),
		acpi.Method("_MAT", 0, false,
			acpi.If(acpi.LEqual(sta, acpi.Int(0xf)), acpi.Return(mat(acpi.LocalAPICEnabled))),
			acpi.Return(mat(0)),
		),
		acpi.Method("_EJ0", 1, false, acpi.Call("CEJ0", acpi.Int(id))),
		// _OST(event, status, info): how the guest handled a notification.
		acpi.Method("_OST", 3, false, acpi.Call("COST", acpi.Int(id), acpi.Arg(0), acpi.Arg(1))),
	)
}
