package vm

import (
	"os"
	"strings"

	"github.com/vmmdev/vmm/kvm"
)

// CPUID leaves and bits patched per vCPU (Intel SDM vol. 2A "CPUID"; AMD
// APM vol. 3 appendix E).
const (
	leafVendor      = 0x0
	leafFeatures    = 0x1
	leafCacheParams = 0x4
	leafTopology    = 0xb
	leafTopologyV2  = 0x1f
	leafAMDAddrSize = 0x8000_0008
	leafAMDTopoExt  = 0x8000_001e
	// leafAMDCacheTopo is AMD's cache topology leaf, leaf 4's twin.
	leafAMDCacheTopo = 0x8000_001d

	leafAMDFeatures = 0x8000_0001

	leaf1ECXVMX         = 1 << 5
	leaf1ECXTSCDeadline = 1 << 24
	leaf1ECXHypervisor  = 1 << 31
	leaf1EDXHTT         = 1 << 28

	// Topology level types in leaf 0xB/0x1F ECX[15:8].
	topoLevelInvalid = 0
	topoLevelSMT     = 1
	topoLevelCore    = 2
	topoLevelDie     = 5

	// leafAMDFeaturesECXSVM is SVM in leaf 0x80000001 ECX,
	// leafAMDFeaturesECXTopoExt TopologyExtensions.
	leafAMDFeaturesECXSVM     = 1 << 2
	leafAMDFeaturesECXTopoExt = 1 << 22

	// vendorAMDEBX is "Auth" of "AuthenticAMD" in leaf 0 EBX.
	vendorAMDEBX = 0x6874_7541
)

// CPUIDFor derives the CPUID of vCPU index from what KVM supports
// (KVM_GET_SUPPORTED_CPUID) for a VM of the topology topo: the APIC id is
// topo.APICID(index) everywhere the CPUID shows one, the topology leaves
// (1, 4, 0xB, 0x1F and AMD's 0x80000008, 0x8000001D and 0x8000001E) tell
// the guest how the vCPUs group into threads, cores, dies and packages,
// the hypervisor bit is set, and KVM's paravirtual leaves (0x40000000...)
// stay so the guest finds kvm-clock. tscDeadline reports
// KVM_CAP_TSC_DEADLINE_TIMER, which KVM does not put in the supported
// leaves. Without cpus.topology (flatTopology) the leaves describe one
// package of max_vcpus single-thread cores.
func CPUIDFor(supported []kvm.CPUIDEntry, index int, topo Topology, tscDeadline bool) []kvm.CPUIDEntry {
	out := make([]kvm.CPUIDEntry, 0, len(supported)+4)
	apicID := topo.APICID(index)
	amd, topoExtLeaf := false, false
	for _, e := range supported {
		switch e.Function {
		case leafVendor:
			amd = e.EBX == vendorAMDEBX
		case leafAMDTopoExt:
			topoExtLeaf = true
		}
	}
	perPackage := uint32(1) << topo.packageShift()
	hadTopology, hadTopologyV2 := false, false
	for _, e := range supported {
		switch e.Function {
		case leafVendor:
			if needsTopologyLeaf(topo) && e.EAX < leafTopology {
				e.EAX = leafTopology // the leaf is added below
			}
		case leafFeatures:
			e.EBX = e.EBX&0x0000_ffff | apicID<<24 | min(perPackage, 0xff)<<16
			e.ECX |= leaf1ECXHypervisor
			if tscDeadline {
				e.ECX |= leaf1ECXTSCDeadline
			}
			if topo.perPackage() > 1 {
				e.EDX |= leaf1EDXHTT
			}
		case leafCacheParams:
			e.EAX = cacheLeafEAX(e.EAX, topo, true)
		case leafAMDCacheTopo:
			e.EAX = cacheLeafEAX(e.EAX, topo, false)
		case leafTopology:
			hadTopology = true
			continue // replaced below
		case leafTopologyV2:
			hadTopologyV2 = true
			continue // replaced below
		case leafAMDFeatures:
			// Linux reads AMD's topology (0x8000001E, then leaf 0xB) only
			// with TopologyExtensions: offer it for a topology with threads,
			// dies or packages, whose leaves vmm fills in.
			if amd && topoExtLeaf && needsTopologyLeaf(topo) {
				e.ECX |= leafAMDFeaturesECXTopoExt
			}
		case leafAMDAddrSize:
			if amd {
				e.ECX = e.ECX&^0xf0ff | topo.packageShift()<<12 | uint32(topo.perPackage()-1)&0xff
			}
		case leafAMDTopoExt:
			e.EAX = apicID
			// Threads per core less one, and the core's id.
			e.EBX = uint32(topo.Threads-1)&0xff<<8 | apicID>>topo.threadBits()&0xff
			// Nodes (dies) per package less one, and the die's id: unique
			// in the VM.
			e.ECX = uint32(topo.Dies-1)&0x7<<8 | apicID>>topo.coreShift()&0xff
		}
		out = append(out, e)
	}
	if hadTopology || needsTopologyLeaf(topo) {
		out = append(out, topologyLeaves(leafTopology, apicID, topo)...)
	}
	if hadTopologyV2 {
		out = append(out, topologyLeaves(leafTopologyV2, apicID, topo)...)
	}
	return out
}

// needsTopologyLeaf reports whether topo has threads, dies or packages that
// only the extended topology leaf describes fully: a guest whose KVM
// offers no leaf 0xB gets one.
func needsTopologyLeaf(topo Topology) bool {
	return topo.Threads > 1 || topo.Dies > 1 || topo.Packages > 1
}

// cacheLeafEAX patches EAX of a deterministic cache parameters leaf (Intel
// leaf 4, AMD leaf 0x8000001D): L1 and L2 caches are shared by the threads
// of a core, L3 by the package. Intel's leaf also says how many cores a
// package has (EAX[31:26]).
func cacheLeafEAX(eax uint32, topo Topology, intel bool) uint32 {
	if eax&0x1f == 0 { // no more caches
		return eax
	}
	sharing := uint32(1)<<topo.threadBits() - 1
	if eax>>5&7 >= 3 {
		sharing = uint32(1)<<topo.packageShift() - 1
	}
	eax = eax&^(0xfff<<14) | min(sharing, 0xfff)<<14
	if intel {
		cores := uint32(1)<<(topo.coreBits()+topo.dieBits()) - 1
		eax = eax&0x03ff_ffff | min(cores, 0x3f)<<26
	}
	return eax
}

// topologyLeaves is the extended topology leaf 0xB or 0x1F of the vCPU
// with apicID, every subleaf: SMT (the threads of a core), core (leaf 0xB:
// every vCPU of the package; leaf 0x1F: the cores of a die), die (leaf
// 0x1F with more than one die per package), then the invalid level that
// ends the list. EAX is the shift to the next level's id, EBX the logical
// processors at this level, ECX the level type and number, EDX the x2APIC
// id.
func topologyLeaves(leaf, apicID uint32, topo Topology) []kvm.CPUIDEntry {
	type level struct {
		kind, shift uint32
		count       int
	}
	levels := []level{{topoLevelSMT, topo.threadBits(), topo.Threads}}
	if leaf == leafTopologyV2 && topo.Dies > 1 {
		levels = append(levels, level{topoLevelCore, topo.coreShift(), topo.Threads * topo.Cores},
			level{topoLevelDie, topo.packageShift(), topo.perPackage()})
	} else {
		levels = append(levels, level{topoLevelCore, topo.packageShift(), topo.perPackage()})
	}
	levels = append(levels, level{kind: topoLevelInvalid})
	out := make([]kvm.CPUIDEntry, len(levels))
	for i, l := range levels {
		out[i] = kvm.CPUIDEntry{Function: leaf, Index: uint32(i), Flags: kvm.CPUIDFlagSignificantIndex,
			EAX: l.shift, EBX: uint32(l.count) & 0xffff, ECX: l.kind<<8 | uint32(i)&0xff, EDX: apicID}
	}
	return out
}

// WithoutNested is entries without hardware virtualisation: the VMX bit
// (Intel) of leaf 1 and the SVM bit (AMD) of leaf 0x80000001 cleared, so
// that the guest cannot run VMs of its own (cpus.nested=false). entries is
// left as it is.
func WithoutNested(entries []kvm.CPUIDEntry) []kvm.CPUIDEntry {
	out := make([]kvm.CPUIDEntry, len(entries))
	for i, e := range entries {
		switch e.Function {
		case leafFeatures:
			e.ECX &^= leaf1ECXVMX
		case leafAMDFeatures:
			e.ECX &^= leafAMDFeaturesECXSVM
		}
		out[i] = e
	}
	return out
}

// Processor brand string leaves (0x80000002-0x80000004: 48 bytes of ASCII,
// NUL padded, four bytes per register in EAX, EBX, ECX, EDX order).
const (
	leafExtMax     = 0x8000_0000
	leafBrandFirst = 0x8000_0002
	leafBrandLast  = 0x8000_0004
	brandLen       = 48
)

// WithBrand sets the brand string leaves to brand (cut to 47 bytes), which
// KVM_GET_SUPPORTED_CPUID leaves empty; the guest shows it as "model name".
// Leaves it does not support are not added.
func WithBrand(entries []kvm.CPUIDEntry, brand string) []kvm.CPUIDEntry {
	maxExt := uint32(0)
	for _, e := range entries {
		if e.Function == leafExtMax {
			maxExt = e.EAX
		}
	}
	if maxExt < leafBrandLast || brand == "" {
		return entries
	}
	var b [brandLen]byte
	copy(b[:brandLen-1], brand)
	word := func(i int) uint32 {
		return uint32(b[i]) | uint32(b[i+1])<<8 | uint32(b[i+2])<<16 | uint32(b[i+3])<<24
	}
	out := make([]kvm.CPUIDEntry, 0, len(entries)+3)
	for _, e := range entries {
		if e.Function < leafBrandFirst || e.Function > leafBrandLast {
			out = append(out, e)
		}
	}
	for f := uint32(leafBrandFirst); f <= leafBrandLast; f++ {
		o := int(f-leafBrandFirst) * 16
		out = append(out, kvm.CPUIDEntry{Function: f, EAX: word(o), EBX: word(o + 4), ECX: word(o + 8), EDX: word(o + 12)})
	}
	return out
}

// hostBrand is the host CPU's model name from /proc/cpuinfo, or "".
func hostBrand() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
