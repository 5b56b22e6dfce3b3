// Package pci is the guest's PCI: segments, each a host bridge with bus 0
// and up to 31 devices, the configuration space a guest enumerates them
// through, the BARs it sizes and moves, and MSI-X. It knows no device
// type: a device (virtio-pci in vm/virtio) builds a Function, gives it
// BARs and capabilities, and serves its BARs' accesses.
//
// # Configuration space
//
// Each segment's configuration space is memory mapped (ECAM, listed in the
// MCFG table, bus 0 only: 1 MiB); segment 0's is also reached through the
// legacy ports 0xcf8/0xcfc (ConfigIO), which Linux probes before it trusts
// the MCFG and uses for the first 256 bytes. A Function keeps its 256
// bytes with a write mask per bit: read-only identity, the command
// register's decode bits, BARs whose address bits below their size read as
// zero (a guest writing all ones reads back the size), the capability list
// (vendor capabilities, MSI-X). Device 0 is the host bridge (class 0x0600),
// which Linux's sanity check of mechanism #1 looks for. Absent devices and
// functions read all ones.
//
// # BARs
//
// Segment.Add places a device's BARs in the segment's windows (32-bit
// BARs below 4 GiB, 64-bit ones above RAM), naturally aligned, in BAR
// order, and turns memory decoding on, as a firmware does; the guest keeps
// them or moves them. Whenever the guest moves a BAR or switches decoding,
// the function's BAR listeners hear it (the segment's routing of window
// accesses, the device's ioeventfds). A BAR decodes only inside the
// segment's windows; one moved outside them decodes nowhere.
//
// # MSI-X
//
// A Function's MSIX has a table entry per vector (message address, data,
// mask bit) and a pending bit array, both in a BAR. Each vector is an
// MSIVector (vm/irq's MSI: a GSI that KVM routes to the message, raised
// through an irqfd), routed when the guest unmasks it. An event on a
// masked vector (its own mask or the function mask) sets its pending bit
// and is delivered when the vector is unmasked.
//
// # ACPI
//
// Segment.AML is the host bridge's DSDT device PCIn (PNP0A08, _CID
// PNP0A03) with _SEG, _BBN, _CRS (bus 0, the windows, the configuration
// ports on segment 0) and _OSC; Segment.MCFGEntry is its MCFG entry.
//
// Nothing a guest writes, at any offset or size, makes the package panic
// (FuzzConfigSpace).
package pci
