// Package hotplug holds the ACPI hot plug devices of a vmm guest: the
// Generic Event Device (GED), the power button it notifies, the CPU hot plug
// controller and the memory hot plug controller. Each is a register model
// (Read and Write at an offset of its MMIO block, as the vmm bus calls
// them) plus the AML that drives it from the guest ([GED.AML] and so on, for
// the DSDT's \_SB scope). They are pure Go: an owner that implements small
// interfaces ([IRQ], [CPUOwner]) connects them to KVM.
//
// # Wiring
//
// The owner maps each device's block on the MMIO bus (GEDSize,
// CPUBlockSize and MemoryBlockSize bytes at the addresses it passes to
// [NewGED], [NewCPUHotplug] and [NewMemoryHotplug]) before the guest boots:
// the guest evaluates the _STA of every processor and memory device while it
// boots. It routes the GED's GSI as an edge-triggered, active-high line, and
// puts every device's AML in the DSDT's \_SB scope:
//
//	acpi.DSDT(acpi.SystemBus(ged, hotplug.PowerButton{}, cpus, mem, ...))
//
// # Registers
//
// Offsets are from each block's start (constants in regs.go); registers are
// little endian and accept 1-, 2-, 4- and 8-byte accesses at any offset.
//
//	GED      0x00  u32  event bits (EventCPU, EventMemory, EventPowerButton);
//	                    a read returns and clears the bits read; writes ignored
//	CPU      0x00  u32  selector: CPU id (APIC id, processor UID)
//	         0x04  u8   status of the selected CPU: bit 0 enabled (RO),
//	                    bit 1 inserting, bit 2 removing (write 1 to
//	                    acknowledge), bit 3 eject (write 1 to eject)
//	         0x08  u32  _OST event of the selected CPU (WO)
//	         0x0c  u32  _OST status (WO): writing it reports the pair
//	Memory   0x00  u32  selector: slot index
//	         0x08  u64  base of the selected slot (RO)
//	         0x10  u64  length of the selected slot (RO)
//	         0x18  u8   status of the selected slot: bit 0 enabled (RO),
//	                    bit 1 inserting (write 1 to acknowledge)
//	         0x1c  u32  next: the lowest slot still inserting, or the
//	                    slot count when none is (RO)
//	PCI      0x00  u32  PCIU: slots up of the selected segment (RO,
//	                    read-to-clear)
//	         0x04  u32  PCID: slots down of the selected segment (RO,
//	                    read-to-clear)
//	         0x08  u32  B0EJ: write bit n to eject slot n (WO)
//	         0x0c  u32  PSEG: segment selector
//
// A selector value past the last CPU or slot selects nothing: the status
// and range read zero and writes are ignored. The names below are the
// AML's.
//
// # Adding a CPU
//
// The owner starts the vCPU, then calls [CPUHotplug.SetInserting] (the CPU
// is now present, with its inserting bit set) and [GED.Trigger] with
// [EventCPU]. The GED sets the bit in its event register and raises its
// interrupt (an edge on the GSI given in [GEDConfig]). The guest's GED
// driver evaluates \_SB.GED_._EVT, which reads the event register (clearing
// the bits it read) and calls \_SB.CPUS.CSCN. CSCN takes the CPUS mutex and,
// for every possible CPU, writes its id to the selector and reads its
// status byte: on inserting it does Notify(CPxx, 1) and writes the inserting
// bit back to acknowledge it. The guest then evaluates CPxx._STA (0xF: the
// enabled bit is set) and CPxx._MAT (the MADT Local APIC entry, Enabled)
// and brings the CPU up offline.
//
// # Removing a CPU
//
// The owner calls [CPUHotplug.SetRemoving] and [GED.Trigger] with
// [EventCPU]. CSCN sees the removing bit, does Notify(CPxx, 3) (eject
// request) and acknowledges the bit. Later, after offlining the CPU, the
// guest evaluates CPxx._EJ0, which selects the CPU and writes the eject bit.
// The device clears the CPU's enabled bit at once, so the _STA the guest
// evaluates right after _EJ0 reads 0 (no "Eject incomplete" warning), and
// then calls the owner's [CPUOwner.EjectCPU], which parks the vCPU.
//
// Race rules:
//   - The eject is honoured for a CPU whose removal the owner asked for and
//     the guest has not completed. It is never gated on the removing bit:
//     CSCN acknowledges (clears) that bit before the guest even starts
//     offlining the CPU, so by the time _EJ0 runs it is always clear.
//   - [CPUHotplug.PendingEject] tracks removals separately from the
//     removing bit: it is true from SetRemoving until the eject write, so
//     the owner can refuse a new resize while a removal is in flight.
//   - A guest that cannot or will not eject the CPU says so through the
//     device's _OST (COST writes the event, 3, and a failure status): the
//     controller withdraws the removal and calls the owner's
//     [CPUOwner.EjectRefused]. A guest that never answers leaves the
//     removal pending; the owner may give up with
//     [CPUHotplug.CancelRemoves].
//   - A guest may try to eject a CPU the owner never asked to remove
//     (through sysfs), or CPU 0: the eject is refused, as Cloud Hypervisor
//     refuses it, the CPU stays present and is flagged inserting, and the
//     owner's [CPUOwner.EjectIgnored] raises the GED. Linux forgets the
//     CPU before it evaluates _EJ0, so its next scan finds it again
//     (offline), and the guest and the owner agree on the CPUs present.
//   - Acknowledgements are write-1-to-clear and the AML fields use
//     WriteAsZeros, so acknowledging one bit never clears another that the
//     owner set in the meantime; the GED trigger that follows each owner
//     change makes the guest scan again, so no event is lost.
//   - The selector is shared by all vCPUs. The AML holds the device's
//     mutex (CMTX, MMTX) around every select-then-access sequence; Go-side
//     calls never touch the selector.
//   - Owner callbacks (IRQ.Trigger, EjectCPU, EjectRefused, EjectIgnored) run
//     without the device's lock held, so they may call back into the device.
//     The Eject callbacks run on the vCPU goroutine that wrote the register: they
//     must not wait for that vCPU.
//
// # Adding memory
//
// The owner maps the RAM and adds its memslot, then calls
// [MemoryHotplug.AddSlot] (the slot is enabled and inserting) and
// [GED.Trigger] with [EventMemory]. _EVT calls \_SB.MHPC.MSCN, which reads
// the next register and, until it reads the slot count, does
// Notify(Mxxx, 1) for the slot it names and acknowledges it: the scan costs
// three register accesses per added slot, where visiting every slot (as
// QEMU's does) costs two per slot of the whole hot plug space, each an exit. The guest evaluates Mxxx._STA (0xF) and Mxxx._CRS, a
// QWordMemory resource whose minimum, maximum and length the AML fills at
// run time from the base and length registers. Memory is never removed at
// run time: a reboot builds a new controller, every slot empty.
//
// # Adding and removing a PCI device
//
// The owner places the device's function at a free device number of a
// segment, then calls [PCIHotplug.SetInserting] and [GED.Trigger] with
// [EventPCI]. _EVT calls \_SB.PHPR.PSCN, which for each segment takes the
// mutex BLCK, selects the segment, reads (and so clears) its slots up and
// down, releases the mutex and calls the segment's DVNT(up, 1) and
// DVNT(down, 3): Notify(Sxx, 1) (device check) for each slot up, Linux's
// acpiphp then scans the slot and binds a driver; Notify(Sxx, 3) (eject
// request) for each slot down after [PCIHotplug.SetRemoving], on which
// acpiphp unbinds and removes the device and calls the slot's _EJ0. _EJ0
// calls PCEJ(slot, segment), which writes the slot's bit to B0EJ; the
// controller calls the owner's [PCIOwner.EjectPCI], on the vCPU goroutine,
// and the owner frees the device. The guest may eject a slot by itself
// (echo 0 > /sys/bus/pci/slots/N/power): EjectPCI is called all the same.
// Slot devices S01-S1F have no _STA: acpiphp reads the slot's vendor id
// to learn whether it holds a device.
//
// # Power button
//
// [GED.Trigger] with [EventPowerButton] makes _EVT Notify(\_SB.PWRB, 0x80);
// the guest's button driver ([PowerButton], PNP0C0C) reports a power button
// press.
package hotplug
