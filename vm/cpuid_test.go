package vm

import (
	"strings"
	"testing"

	"github.com/vmmdev/vmm/kvm"
)

func find(t *testing.T, es []kvm.CPUIDEntry, fn, index uint32) kvm.CPUIDEntry {
	t.Helper()
	for _, e := range es {
		if e.Function == fn && e.Index == index {
			return e
		}
	}
	t.Fatalf("no leaf %#x.%d", fn, index)
	return kvm.CPUIDEntry{}
}

func supportedForTest(amd bool) []kvm.CPUIDEntry {
	vendor := uint32(0x756e6547) // "Genu"
	if amd {
		vendor = vendorAMDEBX
	}
	return []kvm.CPUIDEntry{
		{Function: 0, EAX: 0x1f, EBX: vendor},
		{Function: 1, EAX: 0x800f12, EBX: 0x0000_0800, ECX: 0x7ed8320b, EDX: 0x178bfbff},
		{Function: 4, Index: 0, EAX: 0x121}, // L1d
		{Function: 4, Index: 1, EAX: 0x163}, // L3
		{Function: 0xb, Index: 0, EDX: 99},  // KVM's placeholder
		{Function: 0xb, Index: 1, EDX: 99},
		{Function: 0xb, Index: 2, EDX: 99},
		{Function: 0x4000_0000, EAX: 0x4000_0001, EBX: 0x4b4d564b},
		{Function: 0x8000_0008, EAX: 0x3030, ECX: 0xffff},
		{Function: 0x8000_001e, EAX: 77},
	}
}

func TestCPUIDForGivesEachVCPUItsAPICIDAndTheTopology(t *testing.T) {
	for _, c := range []struct {
		id, max   int
		wantShift uint32
	}{{0, 1, 0}, {3, 4, 2}, {4, 8, 3}, {5, 6, 3}} {
		es := CPUIDFor(supportedForTest(true), c.id, flatTopology(c.max), true)
		l1 := find(t, es, 1, 0)
		if got := l1.EBX >> 24; got != uint32(c.id) {
			t.Errorf("id %d: leaf 1 APIC id %d", c.id, got)
		}
		if l1.EBX&0xffff != 0x0800 {
			t.Errorf("id %d: leaf 1 EBX low bits changed: %#x", c.id, l1.EBX)
		}
		if l1.ECX&leaf1ECXHypervisor == 0 || l1.ECX&leaf1ECXTSCDeadline == 0 {
			t.Errorf("id %d: leaf 1 ECX %#x lacks hypervisor or TSC deadline", c.id, l1.ECX)
		}
		smt, core, none := find(t, es, 0xb, 0), find(t, es, 0xb, 1), find(t, es, 0xb, 2)
		if smt.EDX != uint32(c.id) || core.EDX != uint32(c.id) || none.EDX != uint32(c.id) {
			t.Errorf("id %d: x2APIC ids %d %d %d", c.id, smt.EDX, core.EDX, none.EDX)
		}
		if smt.EBX != 1 || smt.ECX>>8&0xff != topoLevelSMT || core.EAX != c.wantShift ||
			core.EBX != uint32(c.max) || core.ECX>>8&0xff != topoLevelCore || none.ECX>>8&0xff != 0 {
			t.Errorf("id %d max %d: topology %v / %v / %v", c.id, c.max, smt, core, none)
		}
		if e := find(t, es, 0x8000_0008, 0); e.ECX&0xff != uint32(c.max-1) || e.ECX>>12&0xf != c.wantShift {
			t.Errorf("id %d: leaf 0x80000008 ECX %#x", c.id, e.ECX)
		}
		if e := find(t, es, 0x8000_001e, 0); e.EAX != uint32(c.id) {
			t.Errorf("id %d: extended APIC id %d", c.id, e.EAX)
		}
		if e := find(t, es, 0x4000_0000, 0); e.EBX != 0x4b4d564b {
			t.Error("KVM signature leaf lost")
		}
	}
}

func TestCPUIDForLeavesIntelAddressSizesAloneAndSetsCacheSharing(t *testing.T) {
	es := CPUIDFor(supportedForTest(false), 2, flatTopology(4), false)
	if e := find(t, es, 0x8000_0008, 0); e.ECX != 0xffff {
		t.Errorf("Intel leaf 0x80000008 ECX changed to %#x", e.ECX)
	}
	if e := find(t, es, 1, 0); e.ECX&leaf1ECXTSCDeadline != 0 {
		t.Error("TSC deadline set without the capability")
	}
	l1d, l3 := find(t, es, 4, 0), find(t, es, 4, 1)
	if l1d.EAX>>26 != 3 || l1d.EAX>>14&0xfff != 0 || l3.EAX>>14&0xfff != 3 || l1d.EAX&0x3fff != 0x121 {
		t.Errorf("leaf 4: L1d %#x L3 %#x", l1d.EAX, l3.EAX)
	}
}

func TestWithBrandFillsTheBrandStringLeaves(t *testing.T) {
	es := []kvm.CPUIDEntry{{Function: 0x8000_0000, EAX: 0x8000_0008}, {Function: 0x8000_0002}}
	es = WithBrand(es, "AMD EPYC 7B13 64-Core Processor")
	var b []byte
	for f := uint32(0x8000_0002); f <= 0x8000_0004; f++ {
		e := find(t, es, f, 0)
		for _, r := range []uint32{e.EAX, e.EBX, e.ECX, e.EDX} {
			b = append(b, byte(r), byte(r>>8), byte(r>>16), byte(r>>24))
		}
	}
	if got := strings.TrimRight(string(b), "\x00"); got != "AMD EPYC 7B13 64-Core Processor" {
		t.Errorf("brand %q", got)
	}
	if n := len(WithBrand([]kvm.CPUIDEntry{{Function: 0x8000_0000, EAX: 0x8000_0001}}, "x")); n != 1 {
		t.Errorf("brand leaves added beyond the max extended leaf: %d entries", n)
	}
}

func TestWithoutNestedClearsVMXAndSVMOnly(t *testing.T) {
	in := []kvm.CPUIDEntry{
		{Function: leafFeatures, ECX: 0xffff_ffff, EDX: 0xffff_ffff},
		{Function: leafAMDFeatures, ECX: 0xffff_ffff},
		{Function: 0x7, EBX: 0xffff_ffff},
	}
	out := WithoutNested(in)
	if out[0].ECX != 0xffff_ffff&^(1<<5) || out[0].EDX != 0xffff_ffff {
		t.Errorf("leaf 1: ECX %#x EDX %#x, want only VMX (bit 5) cleared", out[0].ECX, out[0].EDX)
	}
	if out[1].ECX != 0xffff_ffff&^(1<<2) {
		t.Errorf("leaf 0x80000001: ECX %#x, want only SVM (bit 2) cleared", out[1].ECX)
	}
	if out[2] != in[2] || in[0].ECX != 0xffff_ffff || in[1].ECX != 0xffff_ffff {
		t.Errorf("other leaves or the input changed: %+v from %+v", out, in)
	}
}
