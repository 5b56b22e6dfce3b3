package vm

import (
	"math/bits"
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

	leafAMDFeatures = 0x8000_0001

	leaf1ECXVMX         = 1 << 5
	leaf1ECXTSCDeadline = 1 << 24
	leaf1ECXHypervisor  = 1 << 31
	leaf1EDXHTT         = 1 << 28

	// Topology level types in leaf 0xB/0x1F ECX[15:8].
	topoLevelInvalid = 0
	topoLevelSMT     = 1
	topoLevelCore    = 2

	// leafAMDFeaturesECXSVM is SVM in leaf 0x80000001 ECX.
	leafAMDFeaturesECXSVM = 1 << 2

	// vendorAMDEBX is "Auth" of "AuthenticAMD" in leaf 0 EBX.
	vendorAMDEBX = 0x6874_7541
)

// apicIDBits is how many low APIC id bits number the vCPUs of a VM with
// maxVCPUs: one package of maxVCPUs cores of one thread each.
func apicIDBits(maxVCPUs int) uint32 {
	if maxVCPUs <= 1 {
		return 0
	}
	return uint32(bits.Len(uint(maxVCPUs - 1)))
}

// CPUIDFor derives vCPU id's CPUID from what KVM supports
// (KVM_GET_SUPPORTED_CPUID) for a VM of at most maxVCPUs vCPUs: the APIC id
// is the vCPU id, the topology is one package of maxVCPUs single-thread
// cores, the hypervisor bit is set, and KVM's paravirtual leaves
// (0x40000000...) stay so the guest finds kvm-clock. tscDeadline reports
// KVM_CAP_TSC_DEADLINE_TIMER, which KVM does not put in the supported leaves.
func CPUIDFor(supported []kvm.CPUIDEntry, id, maxVCPUs int, tscDeadline bool) []kvm.CPUIDEntry {
	out := make([]kvm.CPUIDEntry, 0, len(supported)+2)
	apicID := uint32(id)
	shift := apicIDBits(maxVCPUs)
	perPackage := uint32(1) << shift
	amd := false
	for _, e := range supported {
		if e.Function == leafVendor {
			amd = e.EBX == vendorAMDEBX
		}
	}
	for _, e := range supported {
		switch e.Function {
		case leafFeatures:
			e.EBX = e.EBX&0x0000_ffff | apicID<<24 | min(perPackage, 0xff)<<16
			e.ECX |= leaf1ECXHypervisor
			if tscDeadline {
				e.ECX |= leaf1ECXTSCDeadline
			}
			if maxVCPUs > 1 {
				e.EDX |= leaf1EDXHTT
			}
		case leafCacheParams:
			if e.EAX&0x1f == 0 { // no more caches
				break
			}
			level := e.EAX >> 5 & 7
			sharing := uint32(0) // L1 and L2 belong to one core
			if level >= 3 {
				sharing = perPackage - 1
			}
			e.EAX = e.EAX&0x0000_3fff | min(sharing, 0xfff)<<14 | min(perPackage-1, 0x3f)<<26
		case leafTopology, leafTopologyV2:
			e = topologyLeaf(e, apicID, shift, maxVCPUs)
		case leafAMDAddrSize:
			if amd {
				e.ECX = e.ECX&^0xf0ff | shift<<12 | uint32(maxVCPUs-1)&0xff
			}
		case leafAMDTopoExt:
			e.EAX = apicID
			e.EBX = apicID & 0xff // core id; one thread per core
			e.ECX = 0             // node 0, one node
		}
		out = append(out, e)
	}
	return out
}

// topologyLeaf fills one subleaf of the extended topology leaf 0xB or 0x1F:
// level 0 is SMT (one thread), level 1 is the core level (all vCPUs of the
// package), higher levels are invalid.
func topologyLeaf(e kvm.CPUIDEntry, apicID, shift uint32, maxVCPUs int) kvm.CPUIDEntry {
	e.Flags |= kvm.CPUIDFlagSignificantIndex
	e.EDX = apicID
	switch e.Index {
	case 0:
		e.EAX, e.EBX, e.ECX = 0, 1, topoLevelSMT<<8
	case 1:
		e.EAX, e.EBX, e.ECX = shift, uint32(maxVCPUs), topoLevelCore<<8|1
	default:
		e.EAX, e.EBX, e.ECX = 0, 0, topoLevelInvalid<<8|e.Index&0xff
	}
	return e
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
