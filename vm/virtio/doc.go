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
// NewPCI or NewMMIO then places it in the guest behind its transport,
// which owns the device from then on.
//
// # Threads
//
// The guest's register accesses run on the vCPU thread that made them and
// do no device I/O; only a device reset waits, for the request in flight.
// Device I/O runs off the vCPU threads: one worker goroutine per queue
// waits on the queue's notification eventfd (signalled by KVM through an
// ioeventfd, or by a notify register write) and serves the queue;
// virtio-net adds a goroutine that reads the tap into the receive queue.
// Completions set the used-buffer bit of the interrupt status and raise
// the queue's interrupt: virtio-mmio's line, or virtio-pci's MSI-X vector
// for that queue.
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
// virtio-blk offers MQ (num_queues) when opened with several request
// queues (BlockConfig.NumQueues), each served by its own worker. virtio-rng
// has no features. virtio-vsock offers none either: stream sockets need
// no feature bit; it refuses other socket types with RST. virtio-net has
// one queue pair: multiqueue would need the control queue, a multi-queue
// tap and a receive goroutine per pair.
//
// # Transports
//
// virtio-pci (modern only, device IDs 0x1040 + the virtio ID, revision 1):
// one 64-bit BAR of 32 KiB holds, a page each, the common configuration,
// the ISR, the device configuration and the notify structure
// (notify_off_multiplier 4: a 2-byte write of the queue's index at its own
// address, which an ioeventfd without data match catches), then the
// MSI-X table and PBA. A vector per queue and one for configuration
// changes; the ISR is set too, for a driver without MSI-X, but there is
// no INTx pin to raise it with. The PCI configuration access capability
// reaches the BAR through configuration space.
//
// virtio-mmio: a 0x200-byte register block and an edge-triggered IOAPIC
// line per device, in the DSDT.
//
// # INTEGRATION
//
// What the machine (package vm) does to give a guest its virtio devices.
// Addresses, GSIs and PCI windows come from vm/layout.
//
// 1. Backends, at machine build, from the VmConfig, in this order: disks,
// nets, rng (vm's devicePlacements numbers them and names them as Cloud
// Hypervisor does, _disk0, _net1, __rng):
//
//	dev, err := virtio.OpenBlock(virtio.BlockConfig{Path: d.Path, Readonly: d.Readonly, NumQueues: n})
//	nic, err := virtio.NewNet(virtio.NetConfig{Tap: n.Tap, MAC: n.MAC, IP: n.IP, Mask: n.Mask})
//	cfg.Net[i].Tap, cfg.Net[i].MAC = nic.TapName(), nic.MAC().String()
//	dev, err := virtio.NewRNG(cfg.RNG.Src)
//
// Errors name the disk path or the tap and say what is wrong ("disk
// /x.img: no such file or directory", "... needs CAP_NET_ADMIN ..."); they
// are configuration errors. Writing the tap name and the MAC (generated
// when none was given) back into the config lets vm.info list them and a
// reboot reuse them.
//
// 2a. virtio-pci (the default): the transport is a pci.Function; its
// MSI-X vectors come from vm/irq, its ioeventfds are registered through
// the machine's IOEventRegistry (and moved with the BAR); a segment
// places it at its device number:
//
//	t, err := virtio.NewPCI(dev, virtio.PCIConfig{Memory: m.mem, MSI: m.newMSI, IOEvents: reg})
//	err = segment.Add(device, t.Function())
//
// 2b. virtio-mmio: device i at layout.VirtioMMIOStart + i*4 KiB with GSI
// layout.VirtioIRQStart + i (at most 8 devices), its register block on
// the MMIO bus (MMIOSize bytes), its IOEventFDs registered by the machine
// (datamatch: the queue index) and its AML in the DSDT:
//
//	t, err := virtio.NewMMIO(dev, virtio.MMIOConfig{Base: base, GSI: gsi, UID: i, Memory: m.mem, Interrupt: line})
//
// The DSDT entry is edge triggered, not level as QEMU's microvm declares
// it: an irqfd without a resample fd delivers edges, and a level-triggered
// IOAPIC pin would drop an edge that comes while the previous interrupt is
// still in service (remote IRR set), stalling the queue.
//
// On a NewPCI or NewMMIO error the device is still open: close it.
//
// 3. Teardown (machine.close), in this order: stop the vCPUs; remove the
// irqfds (vm/irq); Close every transport (it stops the workers, which
// write guest RAM, closes the backend and the eventfds, and virtio-pci
// removes its ioeventfds and gives its vectors back); then close the VM
// and unmap guest RAM. A reboot closes the old machine before the new one
// opens its backends: a tap accepts one open at a time (EBUSY), and a tap
// the vmm created disappears when closed and is created again, with its
// host address.
//
// 4. CPU and memory resize need nothing from the devices. Pause does not
// stop them: a paused guest sends no requests, but received frames still
// land in its posted receive buffers.
package virtio
