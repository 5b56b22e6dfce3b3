package vm

import (
	"bytes"
	"strings"
	"testing"

	"github.com/vmmdev/vmm/acpi"
	"github.com/vmmdev/vmm/kvm"
	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/hotplug"
)

// topologyCases are the topologies the agreement tests run through.
var topologyCases = []struct {
	name string
	topo Topology
	// want are the APIC ids of the vCPUs, in order.
	want []uint32
}{
	{"flat, 1 vCPU", flatTopology(1), []uint32{0}},
	{"flat, 6 vCPUs", flatTopology(6), []uint32{0, 1, 2, 3, 4, 5}},
	{"2 sockets x 2 cores x 2 threads", Topology{Threads: 2, Cores: 2, Dies: 1, Packages: 2}, []uint32{0, 1, 2, 3, 4, 5, 6, 7}},
	{"3 cores of 2 threads, 2 sockets", Topology{Threads: 2, Cores: 3, Dies: 1, Packages: 2},
		[]uint32{0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13}},
	{"2 dies of 2 cores, 1 thread", Topology{Threads: 1, Cores: 2, Dies: 2, Packages: 1}, []uint32{0, 1, 2, 3}},
	{"3 threads, 2 dies, 2 sockets", Topology{Threads: 3, Cores: 1, Dies: 2, Packages: 2},
		[]uint32{0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14}},
}

// leafOf finds leaf fn.index in es, or fails.
func leafOf(t *testing.T, es []kvm.CPUIDEntry, fn, index uint32) kvm.CPUIDEntry {
	t.Helper()
	return find(t, es, fn, index)
}

func TestTopologyPacksThreadCoreDieAndPackageIntoTheAPICID(t *testing.T) {
	for _, c := range topologyCases {
		for i, want := range c.want {
			if got := c.topo.APICID(i); got != want {
				t.Errorf("%s: vCPU %d has APIC id %d, want %d", c.name, i, got, want)
			}
		}
		if n := c.topo.count(); n != len(c.want) {
			t.Errorf("%s: count %d, want %d", c.name, n, len(c.want))
		}
	}
}

// TestCPUIDTellsEachVCPUItsPlaceAsTheMADTNumbersIt decodes, for each vCPU,
// its thread, core and package from its CPUID as Linux does (the x2APIC id
// of leaf 0xB and the shifts of its levels; AMD's leaves 0x80000008 and
// 0x8000001E) and checks them against the vCPU's index, and its APIC id
// against the MADT's entry and the hot plug block's _MAT.
func TestCPUIDTellsEachVCPUItsPlaceAsTheMADTNumbersIt(t *testing.T) {
	for _, c := range topologyCases {
		topo := c.topo
		madt, err := acpi.MADT(acpi.MADTConfig{BootCPUs: 1, MaxCPUs: topo.count(), APICIDs: topo.APICIDs()})
		if err != nil {
			t.Fatalf("%s: MADT: %v", c.name, err)
		}
		madtIDs := madtAPICIDs(madt)
		hp, err := hotplug.NewCPUHotplug(0xfe00_0000, 1, topo.count(), nopOwner{})
		if err != nil {
			t.Fatal(err)
		}
		if err := hp.SetAPICIDs(topo.APICIDs()); err != nil {
			t.Fatal(err)
		}
		aml, err := acpi.Encode(hp.AML())
		if err != nil {
			t.Fatal(err)
		}
		seen := map[uint32]bool{}
		for i := range topo.count() {
			es := CPUIDFor(supportedForTest(true), i, topo, false)
			apic := leafOf(t, es, 1, 0).EBX >> 24
			smt, core := leafOf(t, es, 0xb, 0), leafOf(t, es, 0xb, 1)
			if smt.EDX != apic || core.EDX != apic || leafOf(t, es, 0x8000_001e, 0).EAX != apic {
				t.Errorf("%s vCPU %d: APIC ids disagree: leaf 1 %d, 0xB %d/%d", c.name, i, apic, smt.EDX, core.EDX)
			}
			if seen[apic] {
				t.Errorf("%s vCPU %d: APIC id %d given twice", c.name, i, apic)
			}
			seen[apic] = true
			thread := apic & (1<<smt.EAX - 1)
			coreID := apic >> smt.EAX & (1<<(core.EAX-smt.EAX) - 1)
			pkg := apic >> core.EAX
			if int(thread) != i%topo.Threads || int(pkg) != i/topo.perPackage() ||
				int(smt.EBX) != topo.Threads || int(core.EBX) != topo.perPackage() {
				t.Errorf("%s vCPU %d: CPUID says thread %d, core field %d, package %d (levels %d and %d)",
					c.name, i, thread, coreID, pkg, smt.EBX, core.EBX)
			}
			wantCore := uint32(i/topo.Threads%topo.Cores) | uint32(i/(topo.Threads*topo.Cores)%topo.Dies)<<topo.coreBits()
			if coreID != wantCore {
				t.Errorf("%s vCPU %d: core field %d, want %d", c.name, i, coreID, wantCore)
			}
			if l1 := leafOf(t, es, 1, 0); l1.EBX>>16&0xff != 1<<core.EAX || topo.perPackage() > 1 && l1.EDX&leaf1EDXHTT == 0 {
				t.Errorf("%s vCPU %d: leaf 1 EBX %#x EDX %#x", c.name, i, l1.EBX, l1.EDX)
			}
			amdSize, amdExt := leafOf(t, es, 0x8000_0008, 0), leafOf(t, es, 0x8000_001e, 0)
			if amdSize.ECX>>12&0xf != core.EAX || int(amdSize.ECX&0xff)+1 != topo.perPackage() ||
				int(amdExt.EBX>>8&0xff)+1 != topo.Threads || amdExt.EBX&0xff != apic>>smt.EAX {
				t.Errorf("%s vCPU %d: AMD leaves 0x80000008 ECX %#x, 0x8000001E EBX %#x", c.name, i, amdSize.ECX, amdExt.EBX)
			}
			if madtIDs[i] != apic {
				t.Errorf("%s vCPU %d: MADT APIC id %d, CPUID %d", c.name, i, madtIDs[i], apic)
			}
			if !bytes.Contains(aml, acpi.LocalAPIC(uint8(i), uint8(apic), acpi.LocalAPICEnabled)) {
				t.Errorf("%s vCPU %d: no _MAT with APIC id %d in the hot plug block", c.name, i, apic)
			}
		}
	}
}

func TestTopologyLeaf1FHasADieLevelOnlyWithDies(t *testing.T) {
	supported := append(supportedForTest(false), kvm.CPUIDEntry{Function: 0x1f, Index: 0}, kvm.CPUIDEntry{Function: 0x1f, Index: 1})
	es := CPUIDFor(supported, 5, Topology{Threads: 2, Cores: 2, Dies: 2, Packages: 1}, false)
	smt, core, die, end := leafOf(t, es, 0x1f, 0), leafOf(t, es, 0x1f, 1), leafOf(t, es, 0x1f, 2), leafOf(t, es, 0x1f, 3)
	if smt.EAX != 1 || core.EAX != 2 || core.EBX != 4 || die.ECX>>8&0xff != topoLevelDie || die.EAX != 3 || die.EBX != 8 ||
		end.ECX>>8&0xff != topoLevelInvalid || die.EDX != 5 {
		t.Errorf("leaf 0x1F: %+v %+v %+v %+v", smt, core, die, end)
	}
	es = CPUIDFor(supported, 1, Topology{Threads: 2, Cores: 2, Dies: 1, Packages: 2}, false)
	if l := leafOf(t, es, 0x1f, 2); l.ECX>>8&0xff != topoLevelInvalid {
		t.Errorf("one die per package: leaf 0x1F.2 %+v, want the end of the list", l)
	}
}

func TestCPUIDOffersAMDTopologyExtensionsForATopologyOnly(t *testing.T) {
	supported := append(supportedForTest(true), kvm.CPUIDEntry{Function: leafAMDFeatures})
	threaded := CPUIDFor(supported, 1, Topology{Threads: 2, Cores: 2, Dies: 1, Packages: 1}, false)
	if leafOf(t, threaded, leafAMDFeatures, 0).ECX&leafAMDFeaturesECXTopoExt == 0 {
		t.Error("2 threads per core on AMD: no TopologyExtensions")
	}
	if flat := CPUIDFor(supported, 1, flatTopology(4), false); leafOf(t, flat, leafAMDFeatures, 0).ECX != 0 {
		t.Error("the flat topology changed leaf 0x80000001")
	}
	intel := append(supportedForTest(false), kvm.CPUIDEntry{Function: leafAMDFeatures})
	if es := CPUIDFor(intel, 1, Topology{Threads: 2, Cores: 2, Dies: 1, Packages: 1}, false); leafOf(t, es, leafAMDFeatures, 0).ECX != 0 {
		t.Error("TopologyExtensions offered on Intel")
	}
}

func TestCPUIDAddsLeafBForAThreadedTopologyWhenKVMHasNone(t *testing.T) {
	var supported []kvm.CPUIDEntry
	for _, e := range supportedForTest(true) {
		if e.Function != 0xb {
			supported = append(supported, e)
		}
	}
	supported[0].EAX = 0xd
	es := CPUIDFor(supported, 3, Topology{Threads: 2, Cores: 2, Dies: 1, Packages: 2}, false)
	if leafOf(t, es, 0, 0).EAX < 0xb || leafOf(t, es, 0xb, 0).EBX != 2 || leafOf(t, es, 0xb, 1).EDX != 3 {
		t.Error("no usable leaf 0xB added")
	}
	flat := CPUIDFor(supported, 3, flatTopology(4), false)
	if leafOf(t, flat, 0, 0).EAX != 0xd {
		t.Error("the flat topology raised the basic leaf limit")
	}
}

func TestTopologyCheckRefusesAPICIDsBeyondTheMADT(t *testing.T) {
	for _, c := range []struct {
		topo Topology
		want string
	}{
		{Topology{Threads: 2, Cores: 2, Dies: 1, Packages: 2}, ""},
		{flatTopology(254), ""},
		{Topology{Threads: 3, Cores: 3, Dies: 3, Packages: 10}, "APIC id would be 618"},
		{Topology{Threads: 0, Cores: 1, Dies: 1, Packages: 1}, "can be zero"},
	} {
		err := c.topo.check()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.topo, err, c.want)
		}
	}
}

func TestTopologyOfReadsTheConfig(t *testing.T) {
	got := topologyOf(config.CPUs{MaxVCPUs: 8, Topology: &config.CPUTopology{ThreadsPerCore: 2, CoresPerDie: 2, DiesPerPackage: 1, Packages: 2}})
	if got != (Topology{Threads: 2, Cores: 2, Dies: 1, Packages: 2}) {
		t.Errorf("topologyOf = %+v", got)
	}
	if got := topologyOf(config.CPUs{MaxVCPUs: 8}); got != flatTopology(8) {
		t.Errorf("no topology: %+v", got)
	}
}

// madtAPICIDs lists the APIC ids of the MADT's Processor Local APIC
// entries, in UID order.
func madtAPICIDs(madt []byte) []uint32 {
	var ids []uint32
	const header = 36 + 8 // SDT header, local APIC address, flags
	for b := madt[header:]; len(b) >= 2 && int(b[1]) <= len(b) && b[1] > 0; b = b[b[1]:] {
		if b[0] == 0 {
			ids = append(ids, uint32(b[3]))
		}
	}
	return ids
}

// nopOwner is a hotplug.CPUOwner that does nothing.
type nopOwner struct{}

func (nopOwner) EjectCPU(int)             {}
func (nopOwner) EjectRefused(int, uint32) {}
func (nopOwner) EjectIgnored(int)         {}
