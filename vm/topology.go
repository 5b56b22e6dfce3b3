package vm

import (
	"fmt"
	"math/bits"

	"github.com/vmmdev/vmm/acpi"
	"github.com/vmmdev/vmm/vm/config"
)

// Topology is how a VM's vCPUs are grouped: threads in cores, cores in
// dies, dies in packages (sockets), as cpus.topology says. vCPU i is
// thread i%Threads of core i/Threads%Cores, and so on up: the vCPUs of a
// core, then of a die, then of a package are consecutive.
//
// A vCPU's APIC id packs its thread, core, die and package numbers into
// bit fields, each as wide as its count needs (Intel SDM vol. 3A, 10.4.5
// "Identifying Logical Processors in an MP System"): the CPUID topology
// leaves, the MADT, the CPU hot plug block's _MAT entries and
// KVM_CREATE_VCPU all take the APIC id from APICID, so that they agree.
type Topology struct {
	Threads, Cores, Dies, Packages int
}

// flatTopology is the topology of a VM without cpus.topology: one package
// of one die of maxVCPUs cores of one thread each, the APIC id being the
// vCPU's index.
func flatTopology(maxVCPUs int) Topology {
	return Topology{Threads: 1, Cores: max(maxVCPUs, 1), Dies: 1, Packages: 1}
}

// topologyOf is the topology cpus asks for, or the flat one without
// cpus.topology.
func topologyOf(c config.CPUs) Topology {
	t := c.Topology
	if t == nil {
		return flatTopology(c.MaxVCPUs)
	}
	return Topology{Threads: int(t.ThreadsPerCore), Cores: int(t.CoresPerDie), Dies: int(t.DiesPerPackage), Packages: int(t.Packages)}
}

// width is how many APIC id bits number n things.
func width(n int) uint32 {
	if n <= 1 {
		return 0
	}
	return uint32(bits.Len(uint(n - 1)))
}

// threadBits, coreBits and dieBits are the widths of the APIC id's fields.
func (t Topology) threadBits() uint32 { return width(t.Threads) }
func (t Topology) coreBits() uint32   { return width(t.Cores) }
func (t Topology) dieBits() uint32    { return width(t.Dies) }

// coreShift is where the core field ends: the thread and core bits.
func (t Topology) coreShift() uint32 { return t.threadBits() + t.coreBits() }

// packageShift is where the package field starts: the APIC id bits below
// it number the logical processors of one package.
func (t Topology) packageShift() uint32 { return t.coreShift() + t.dieBits() }

// perPackage is how many vCPUs one package holds.
func (t Topology) perPackage() int { return t.Threads * t.Cores * t.Dies }

// count is how many vCPUs the topology holds.
func (t Topology) count() int { return t.perPackage() * t.Packages }

// APICID is the APIC id of vCPU index (0 to count-1).
func (t Topology) APICID(index int) uint32 {
	i := uint32(index)
	thread := i % uint32(t.Threads)
	core := i / uint32(t.Threads) % uint32(t.Cores)
	die := i / uint32(t.Threads*t.Cores) % uint32(t.Dies)
	pkg := i / uint32(t.perPackage())
	return thread | core<<t.threadBits() | die<<t.coreShift() | pkg<<t.packageShift()
}

// APICIDs lists the APIC ids of vCPUs 0 to count-1, as the MADT and the
// CPU hot plug block take them; check must have accepted t.
func (t Topology) APICIDs() []uint8 {
	ids := make([]uint8, t.count())
	for i := range ids {
		ids[i] = uint8(t.APICID(i))
	}
	return ids
}

// check refuses a topology whose APIC ids do not fit the MADT's one-byte
// entries (0xff is the broadcast id).
func (t Topology) check() error {
	if t.Threads < 1 || t.Cores < 1 || t.Dies < 1 || t.Packages < 1 {
		return fmt.Errorf("cpus: topology %d:%d:%d:%d: No part of the CPU topology can be zero", t.Threads, t.Cores, t.Dies, t.Packages)
	}
	if last := t.APICID(t.count() - 1); last >= acpi.MaxCPUs {
		return fmt.Errorf("cpus: topology %d:%d:%d:%d: the last vCPU's APIC id would be %d, above the %d the MADT can hold (each field's width is rounded up to a power of two)",
			t.Threads, t.Cores, t.Dies, t.Packages, last, acpi.MaxCPUs-1)
	}
	return nil
}
