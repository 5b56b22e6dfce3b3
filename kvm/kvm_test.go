package kvm

import (
	"errors"
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The expected values were printed by a C program including <linux/kvm.h>
// on an x86_64 host.
func TestStructSizesMatchKernelABI(t *testing.T) {
	for _, c := range []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"kvm_regs", unsafe.Sizeof(Regs{}), 144},
		{"kvm_sregs", unsafe.Sizeof(Sregs{}), 312},
		{"kvm_fpu", unsafe.Sizeof(FPU{}), 416},
		{"kvm_segment", unsafe.Sizeof(Segment{}), 24},
		{"kvm_dtable", unsafe.Sizeof(DTable{}), 16},
		{"kvm_cpuid2", unsafe.Sizeof(cpuidHeader{}), 8},
		{"kvm_cpuid_entry2", unsafe.Sizeof(CPUIDEntry{}), 40},
		{"kvm_msrs", unsafe.Sizeof(msrsHeader{}), 8},
		{"kvm_msr_entry", unsafe.Sizeof(MSR{}), 16},
		{"kvm_lapic_state", unsafe.Sizeof(LAPICState{}), 1024},
		{"kvm_irqchip", unsafe.Sizeof(irqChip{}), 520},
		{"kvm_vcpu_events", unsafe.Sizeof(VCPUEvents{}), 64},
		{"kvm_ioapic_state", unsafe.Sizeof(IOAPICState{}), 216},
		{"kvm_mp_state", unsafe.Sizeof(MPState(0)), 4},
		{"kvm_userspace_memory_region", unsafe.Sizeof(UserspaceMemoryRegion{}), 32},
		{"kvm_pit_config", unsafe.Sizeof(pitConfig{}), 64},
		{"kvm_irq_level", unsafe.Sizeof(irqLevel{}), 8},
		{"kvm_irqfd", unsafe.Sizeof(irqfd{}), 32},
		{"kvm_ioeventfd", unsafe.Sizeof(ioeventfd{}), 64},
		{"kvm_irq_routing_entry", unsafe.Sizeof(irqRoutingEntry{}), 48},
		{"offsetof(kvm_run, exit union)", unsafe.Offsetof(runHeader{}.Exit), 32},
		{"offsetof(kvm_run, exit_reason)", unsafe.Offsetof(runHeader{}.ExitReason), 8},
		{"offsetof(kvm_fpu, mxcsr)", unsafe.Offsetof(FPU{}.MXCSR), 408},
		{"offsetof(kvm_sregs, efer)", unsafe.Offsetof(Sregs{}.EFER), 264},
		{"offsetof(kvm_sregs, apic_base)", unsafe.Offsetof(Sregs{}.APICBase), 272},
		{"offsetof(kvm_run.mmio, len)", unsafe.Offsetof(runMMIO{}.Len), 16},
	} {
		if c.got != c.want {
			t.Errorf("%s: size/offset %d, want %d", c.name, c.got, c.want)
		}
	}
}

func TestIoctlNumbersMatchKernelHeaders(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"KVM_RUN", ioRun, 0xae80},
		{"KVM_GET_REGS", ioGetRegs, 0x8090ae81},
		{"KVM_GET_SREGS", ioGetSregs, 0x8138ae83},
		{"KVM_SET_CPUID2", ioSetCPUID2, 0x4008ae90},
		{"KVM_GET_SUPPORTED_CPUID", ioGetSupportedCPUID, 0xc008ae05},
		{"KVM_SET_MSRS", ioSetMSRs, 0x4008ae89},
		{"KVM_GET_LAPIC", ioGetLAPIC, 0x8400ae8e},
		{"KVM_SET_USER_MEMORY_REGION", ioSetUserMemoryRegion, 0x4020ae46},
		{"KVM_CREATE_PIT2", ioCreatePIT2, 0x4040ae77},
		{"KVM_IRQFD", ioIRQFD, 0x4020ae76},
		{"KVM_IOEVENTFD", ioIOEventFD, 0x4040ae79},
		{"KVM_IRQ_LINE", ioIRQLine, 0x4008ae61},
		{"KVM_SET_IDENTITY_MAP_ADDR", ioSetIdentityMapAddr, 0x4008ae48},
		{"KVM_GET_FPU", ioGetFPU, 0x81a0ae8c},
		{"KVM_GET_MP_STATE", ioGetMPState, 0x8004ae98},
		{"KVM_GET_MSR_INDEX_LIST", ioGetMSRIndexList, 0xc004ae02},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

func TestCPUIDBufferRoundTripsEntries(t *testing.T) {
	in := []CPUIDEntry{{Function: 1, EAX: 2, EBX: 3}, {Function: 0xb, Index: 1, Flags: CPUIDFlagSignificantIndex, EDX: 7}}
	out := cpuidEntries(cpuidBufferFrom(in))
	if len(out) != len(in) {
		t.Fatalf("got %d entries, want %d", len(out), len(in))
	}
	for i := range in {
		if out[i] != in[i] {
			t.Errorf("entry %d: got %v, want %v", i, out[i], in[i])
		}
	}
}

func TestLAPICRegisterAccessIsLittleEndian(t *testing.T) {
	var l LAPICState
	l.SetReg32(LAPICRegLVT0, 0x700)
	if l.Regs[LAPICRegLVT0+1] != 7 || l.Reg32(LAPICRegLVT0) != 0x700 {
		t.Fatalf("LVT0 bytes %x", l.Regs[LAPICRegLVT0:LAPICRegLVT0+4])
	}
}

// openOrSkip opens /dev/kvm, or skips the test where there is none. The
// development machine's PVM KVM answers system and VM ioctls but cannot run
// a stock guest, so these tests stop short of KVM_RUN.
func openOrSkip(t *testing.T) *System {
	t.Helper()
	if _, err := os.Stat(DevicePath); err != nil {
		t.Skipf("no %s: %v", DevicePath, err)
	}
	s, err := Open(DevicePath)
	if err != nil {
		t.Skipf("cannot open KVM: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSystemReportsCapabilitiesAndCPUID(t *testing.T) {
	s := openOrSkip(t)
	if n, err := s.CheckExtension(CapUserMemory); err != nil || n == 0 {
		t.Errorf("KVM_CAP_USER_MEMORY = %d, %v", n, err)
	}
	entries, err := s.SupportedCPUID()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 || entries[0].Function != 0 {
		t.Errorf("supported CPUID starts with %v", entries[:1])
	}
}

func TestVMCreatesVCPUWithRegisters(t *testing.T) {
	s := openOrSkip(t)
	vm, err := s.CreateVM()
	if err != nil {
		t.Skipf("KVM_CREATE_VM: %v", err)
	}
	defer vm.Close()
	if err := vm.CreateIRQChip(); err != nil {
		t.Fatal(err)
	}
	io, err := vm.IOAPIC()
	if err != nil {
		t.Fatal(err)
	}
	if io.BaseAddress != 0xfec00000 || !io.Redir[4].Masked() {
		t.Errorf("a new I/O APIC at %#x with pin 4 %#x, want 0xfec00000 and masked", io.BaseAddress, uint64(io.Redir[4]))
	}
	c, err := vm.CreateVCPU(0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := vm.CreateVCPU(0); err == nil {
		t.Error("creating vCPU 0 twice succeeded")
	}
	r, err := c.Regs()
	if err != nil {
		t.Fatal(err)
	}
	r.RAX = 0x1234
	if err := c.SetRegs(r); err != nil {
		t.Fatal(err)
	}
	if r2, _ := c.Regs(); r2.RAX != 0x1234 {
		t.Errorf("RAX = %#x after SetRegs", r2.RAX)
	}
	if _, err := c.LAPIC(); err != nil {
		t.Error(err)
	}
	if ev, err := c.Events(); err != nil || ev.Interrupt.Injected != 0 || ev.Exception.Pending != 0 {
		t.Errorf("a new vCPU's events %+v, %v: want none pending", ev, err)
	}
	c.SetImmediateExit(true)
	if err := c.Run(); !errors.Is(err, ErrInterrupted) {
		t.Errorf("Run with immediate_exit = %v, want ErrInterrupted", err)
	}
}

func TestRedirEntryFieldsFollowThe82093AALayout(t *testing.T) {
	// Vector 0x24, lowest priority, level, remote IRR, masked, dest 0xff.
	e := RedirEntry(0xff<<56 | 1<<16 | 1<<15 | 1<<14 | 1<<8 | 0x24)
	if e.Vector() != 0x24 || e.DeliveryMode() != 1 || !e.Level() || !e.RemoteIRR() || !e.Masked() || e.Dest() != 0xff {
		t.Fatalf("%#x: vector %#x mode %d level %v remote %v masked %v dest %#x",
			uint64(e), e.Vector(), e.DeliveryMode(), e.Level(), e.RemoteIRR(), e.Masked(), e.Dest())
	}
	if e := RedirEntry(0x31); e.Level() || e.Masked() || e.RemoteIRR() {
		t.Fatalf("%#x: an edge, unmasked entry reads as level %v masked %v remote %v", uint64(e), e.Level(), e.Masked(), e.RemoteIRR())
	}
}

func TestMemoryRegionCoversTheWholeHostMapping(t *testing.T) {
	host := make([]byte, 8192)
	r := MemoryRegion(3, 0x10_0000, host)
	want := UserspaceMemoryRegion{Slot: 3, GuestPhysAddr: 0x10_0000, MemorySize: 8192, UserspaceAddr: uint64(uintptr(unsafe.Pointer(&host[0])))}
	if r != want {
		t.Errorf("MemoryRegion = %+v, want %+v", r, want)
	}
}

func TestIRQRouteEntriesAsKVMReadsThem(t *testing.T) {
	for _, c := range []struct {
		name string
		r    IRQRoute
		want irqRoutingEntry
	}{
		{"IOAPIC pin", IRQRoute{GSI: 5, Chip: IRQChipIOAPIC, Pin: 5},
			irqRoutingEntry{GSI: 5, Type: irqRoutingIRQChip, U: [8]uint32{IRQChipIOAPIC, 5}}},
		{"MSI with a high address", IRQRoute{GSI: 30, Chip: 9, Pin: 9, MSI: &MSIMessage{Address: 0x1_fee0_1000, Data: 0x4041}},
			irqRoutingEntry{GSI: 30, Type: irqRoutingMSI, U: [8]uint32{0xfee0_1000, 1, 0x4041}}},
	} {
		if got := c.r.entry(); got != c.want {
			t.Errorf("%s: entry %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestSetGSIRoutingTakesMSIRoutesBesideTheIOAPICs(t *testing.T) {
	s := openOrSkip(t)
	vm, err := s.CreateVM()
	if err != nil {
		t.Skipf("KVM_CREATE_VM: %v", err)
	}
	defer vm.Close()
	if err := vm.CreateIRQChip(); err != nil {
		t.Skipf("KVM_CREATE_IRQCHIP: %v", err)
	}
	routes := []IRQRoute{
		{GSI: 4, Chip: IRQChipIOAPIC, Pin: 4},
		{GSI: 24, MSI: &MSIMessage{Address: 0xfee0_0000, Data: 0x41}},
		{GSI: 25, MSI: &MSIMessage{Address: 0xfee0_1000, Data: 0x42}},
	}
	if err := vm.SetGSIRouting(routes); err != nil {
		t.Fatal(err)
	}
	// An irqfd on an MSI GSI, and again after the route moved.
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := vm.IRQFD(fd, 25); err != nil {
		t.Fatal(err)
	}
	routes[2].MSI.Data = 0x43
	if err := vm.SetGSIRouting(routes); err != nil {
		t.Fatal(err)
	}
	if err := vm.RemoveIRQFD(fd, 25); err != nil {
		t.Fatal(err)
	}
}
