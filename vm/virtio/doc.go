// Package virtio holds the virtio devices of a vmm guest: block (raw
// images), network (a tap), entropy and vsock (stream sockets to host
// programs on unix sockets, Cloud Hypervisor's hybrid vsock: vsock*.go). A device model knows nothing of
// its transport: it sits behind virtio-pci (NewPCI: a PCI function with
// the virtio 1.x structures in a BAR and an MSI-X vector per queue, which
// Linux's virtio_pci driver finds on the PCI bus) or behind virtio-mmio
// (NewMMIO: register layout version 2, found in the DSDT with _HID
// "LNRO0005" by the virtio_mmio driver). Both share the status and
// feature handling, the queues and their workers (transport.go).
//
// A device is built in two steps. The constructor opens its backend, so a
// missing disk image or a tap the process may not create is a clear error
// before the guest runs:
//
//	blk, err := virtio.NewBlock(path, readonly)
//	nic, err := virtio.NewNet(virtio.NetConfig{Tap: "tap0", IP: "192.168.249.1", Mask: "255.255.255.0"})
//	rng, err := virtio.NewRNG("") // /dev/urandom
//
// NewMMIO then places it in the guest: its register block address, its
// interrupt, guest RAM. The transport implements the bus device interface
// (Read, Write) and acpi.Describer, and owns the device from then on.
//
// # Threads
//
// The guest's register accesses run on the vCPU thread that made them and
// do no device I/O; only a device reset waits, for the request in flight. Device I/O runs off the vCPU threads: one
// worker goroutine per queue waits on the queue's notification eventfd
// (signalled by KVM through an ioeventfd, or by a QueueNotify write through
// Write) and serves the queue; virtio-net adds a goroutine that reads the
// tap into the receive queue. Completions raise the device's Interrupt
// after setting the used-buffer bit of InterruptStatus.
//
// # Guest input
//
// Everything the guest controls is checked: ring addresses, sizes and
// alignment when a queue goes live; every descriptor (index, address,
// length, flags, indirect tables) while walking a chain, with walks bounded
// by the table size; request headers, sectors and lengths in the devices.
// A malformed chain is returned to the driver unused; a broken ring (an
// available index running ahead, a head out of range) stops that queue and
// sets DEVICE_NEEDS_RESET until the driver resets the device. Nothing a
// guest writes makes the package panic (FuzzDescriptorChain,
// FuzzMMIORegisters).
//
// # Features
//
// Every device offers VIRTIO_F_VERSION_1 (required: legacy drivers are
// refused at FEATURES_OK) and VIRTIO_F_INDIRECT_DESC. virtio-blk offers
// SEG_MAX, BLK_SIZE (512), FLUSH, and RO for a read-only image; it serves
// IN, OUT, FLUSH (fdatasync of the image, so data a guest synced survives
// the vmm being killed, and the host crashing) and GET_ID (the image's
// file name), answers UNSUPP to anything else and IOERR to a write to a
// read-only disk or an access outside the image. virtio-net offers MAC;
// frames carry the 12-byte virtio 1.x header, without offloads, so the tap
// is opened with IFF_VNET_HDR, a 12-byte header size and no offloads.
// virtio-rng has no features. virtio-vsock offers none either: stream
// sockets need no feature bit; it refuses other socket types with RST.
//
// # INTEGRATION
//
// What the machine (package vm) does to give a guest its virtio devices.
// Addresses and GSIs come from vm/layout.
//
// 1. Backends, at machine build, from the VmConfig, in this order: disks,
// nets, rng (the order numbers the devices; the guest probes them in DSDT
// order, so vda, vdb... normally follow the --disk order):
//
//	for _, d := range cfg.Disks { dev, err := virtio.NewBlock(d.Path, d.Readonly) }
//	for i, n := range cfg.Net {
//		dev, err := virtio.NewNet(virtio.NetConfig{Tap: n.Tap, MAC: n.MAC, IP: n.IP, Mask: n.Mask})
//		cfg.Net[i].Tap, cfg.Net[i].MAC = dev.TapName(), dev.MAC().String()
//	}
//	if cfg.RNG != nil { dev, err := virtio.NewRNG(cfg.RNG.Src) }
//
// Errors name the disk path or the tap and say what is wrong ("disk
// /x.img: no such file or directory", "... needs CAP_NET_ADMIN ..."); they
// are configuration errors. Writing the tap name and the MAC (generated
// when none was given) back into the config lets vm.info list them and a
// reboot reuse them.
//
// 2. Placement of device i (0, 1, ... in the order above):
//
//	base := layout.VirtioMMIOStart + uint64(i)*layout.VirtioMMIOStride // 0xd010_0000 + i*4 KiB
//	gsi  := uint32(layout.VirtioIRQStart + i)                          // 16 + i
//
// Each device has its own GSI (exclusive, edge triggered, active high), so
// at most layout.IOAPICPins-layout.VirtioIRQStart = 8 virtio devices fit;
// refuse more as a configuration error.
//
// 3. Interrupt and transport. The machine's irqfd line (vm/irq's Line, whose
// Trigger writes the irqfd eventfd) is a virtio.Interrupt; guest RAM
// (*memory.Guest, whose Slice looks the regions up on every call, so hot
// plugged RAM is seen) is a virtio.Memory:
//
//	irq, err := m.irq.Line(gsi)
//	t, err := virtio.NewMMIO(dev, virtio.MMIOConfig{
//		Base: base, GSI: gsi, UID: i, Memory: m.mem, Interrupt: irq, Log: m.log,
//	})
//
// On a NewMMIO error the device is still open: close it.
//
// 4. MMIO bus: map the register block (MMIOSize = 0x200 bytes; the rest
// of the 4 KiB slot stays unmapped):
//
//	m.mmBus.Insert(base, virtio.MMIOSize, fmt.Sprintf("virtio%d", i), t)
//
// 5. Queue notifications through KVM (optional but cheaper: no VM exit per
// notification; without it a QueueNotify write reaches Write through the
// bus and works the same):
//
//	for _, e := range t.IOEventFDs() {
//		dm := e.Datamatch // the queue index
//		err := m.vm.AddIOEventFD(kvm.IOEventFD{EventFD: e.EventFD, Addr: e.Addr, Len: e.Len, Datamatch: &dm})
//	}
//
// 6. DSDT: each transport is an acpi.Describer; pass them to the \_SB
// scope with the other devices (acpiTables(..., m.serial, powerButton{},
// t0, t1, ...)). Device i appears as:
//
//	Device (VRnn)          // nn = i, two decimal digits
//	{
//	    Name (_HID, "LNRO0005")
//	    Name (_UID, i)
//	    Name (_CRS, ResourceTemplate ()
//	    {
//	        Memory32Fixed (ReadWrite, base, 0x00000200)
//	        Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { gsi }
//	    })
//	}
//
// Edge triggered, not level as QEMU's microvm declares it: an irqfd
// without a resample fd delivers edges, and a level-triggered IOAPIC pin
// would drop an edge that comes while the previous interrupt is still in
// service (remote IRR set), stalling the queue. Firecracker declares its
// virtio-mmio devices edge triggered too.
//
// 7. Teardown (machine.close), in this order: stop the vCPUs; Close every
// transport (it stops the workers, which write guest RAM and raise
// interrupts, and closes the backend and the eventfds); then remove the
// irqfds, close the VM (which drops the ioeventfds) and unmap guest RAM.
// A reboot closes the old machine before the new one opens its backends:
// a tap accepts one open at a time (EBUSY), and a tap the vmm created
// disappears when closed and is created again, with its host address.
//
// 8. CPU and memory resize need nothing from the devices. Pause does not
// stop them: a paused guest sends no requests, but received frames still
// land in its posted receive buffers.
package virtio
