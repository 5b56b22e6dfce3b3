package kvm

import "fmt"

// Regs is struct kvm_regs: the general purpose registers.
type Regs struct {
	RAX, RBX, RCX, RDX uint64
	RSI, RDI, RSP, RBP uint64
	R8, R9, R10, R11   uint64
	R12, R13, R14, R15 uint64
	RIP, RFLAGS        uint64
}

// Segment is struct kvm_segment: a segment register's hidden state.
type Segment struct {
	Base     uint64
	Limit    uint32
	Selector uint16
	Type     uint8
	Present  uint8
	DPL      uint8
	DB       uint8
	S        uint8
	L        uint8
	G        uint8
	AVL      uint8
	Unusable uint8
	_        uint8
}

// DTable is struct kvm_dtable: a descriptor table register (GDTR, IDTR).
type DTable struct {
	Base  uint64
	Limit uint16
	_     [3]uint16
}

// Sregs is struct kvm_sregs: segment, control and descriptor table registers.
type Sregs struct {
	CS, DS, ES, FS, GS, SS Segment
	TR, LDT                Segment
	GDT, IDT               DTable
	CR0, CR2, CR3, CR4     uint64
	CR8                    uint64
	EFER                   uint64
	APICBase               uint64
	InterruptBitmap        [4]uint64
}

// FPU is struct kvm_fpu: the x87 and SSE state.
type FPU struct {
	FPR        [8][16]uint8
	FCW        uint16
	FSW        uint16
	FTWX       uint8
	_          uint8
	LastOpcode uint16
	LastIP     uint64
	LastDP     uint64
	XMM        [16][16]uint8
	MXCSR      uint32
	_          uint32
}

// CPUIDEntry is struct kvm_cpuid_entry2: one CPUID leaf (function) and
// subleaf (index) with its output registers.
type CPUIDEntry struct {
	Function uint32
	Index    uint32
	Flags    uint32
	EAX      uint32
	EBX      uint32
	ECX      uint32
	EDX      uint32
	_        [3]uint32
}

// CPUID entry flags (KVM_CPUID_FLAG_* in asm/kvm.h).
const (
	// CPUIDFlagSignificantIndex says the entry depends on ECX (the subleaf).
	CPUIDFlagSignificantIndex = 1 << 0
)

// String shows an entry for logs and test failures.
func (e CPUIDEntry) String() string {
	return fmt.Sprintf("cpuid(%#x,%d) eax=%#x ebx=%#x ecx=%#x edx=%#x", e.Function, e.Index, e.EAX, e.EBX, e.ECX, e.EDX)
}

// MSR is struct kvm_msr_entry: one model specific register and its value.
type MSR struct {
	Index uint32
	_     uint32
	Data  uint64
}

// LAPICState is struct kvm_lapic_state: the local APIC's 1 KiB register page.
type LAPICState struct {
	Regs [1024]byte
}

// irqChip is struct kvm_irqchip: a chip id and its state (a union of at
// most 512 bytes).
type irqChip struct {
	ChipID uint32
	_      uint32
	State  [512]byte
}

// irqChipIOAPIC is the chip id of the in-kernel I/O APIC (KVM_IRQCHIP_IOAPIC).
const irqChipIOAPIC = 2

// IOAPICPins is how many pins KVM's in-kernel I/O APIC has
// (KVM_IOAPIC_NUM_PINS).
const IOAPICPins = 24

// IOAPICState is struct kvm_ioapic_state: the in-kernel I/O APIC's
// registers, its pending-request bits and its redirection table.
type IOAPICState struct {
	BaseAddress uint64
	IOREGSEL    uint32
	ID          uint32
	IRR         uint32
	_           uint32
	Redir       [IOAPICPins]RedirEntry
}

// RedirEntry is one I/O APIC redirection table entry (the 82093AA
// datasheet, section 3.2.4).
type RedirEntry uint64

// Vector is the interrupt vector the pin delivers.
func (e RedirEntry) Vector() uint8 { return uint8(e) }

// DeliveryMode is the delivery mode field (0 fixed, 1 lowest priority, ...).
func (e RedirEntry) DeliveryMode() uint8 { return uint8(e>>8) & 7 }

// Level reports a level-triggered pin (else edge).
func (e RedirEntry) Level() bool { return e>>15&1 != 0 }

// RemoteIRR reports a level interrupt delivered and not yet acknowledged.
func (e RedirEntry) RemoteIRR() bool { return e>>14&1 != 0 }

// Masked reports a masked pin.
func (e RedirEntry) Masked() bool { return e>>16&1 != 0 }

// Dest is the destination field (an APIC id, or a logical set).
func (e RedirEntry) Dest() uint8 { return uint8(e >> 56) }

// VCPUEvents is struct kvm_vcpu_events: the exception, interrupt and NMI a
// vCPU has pending or is injecting, and whether it is in an interrupt
// shadow (after STI or MOV SS), which holds interrupts back.
type VCPUEvents struct {
	Exception struct {
		Injected, Nr, HasErrorCode, Pending uint8
		ErrorCode                           uint32
	}
	Interrupt struct {
		Injected, Nr, Soft, Shadow uint8
	}
	NMI struct {
		Injected, Pending, Masked, _ uint8
	}
	SIPIVector uint32
	Flags      uint32
	SMI        struct {
		SMM, Pending, SMMInsideNMI, LatchedInit uint8
	}
	TripleFaultPending  uint8
	_                   [26]uint8
	ExceptionHasPayload uint8
	ExceptionPayload    uint64
}

// MPState is a vCPU's multiprocessing state (struct kvm_mp_state).
type MPState uint32

// Multiprocessing states (KVM_MP_STATE_* in kvm.h).
const (
	MPStateRunnable      MPState = 0
	MPStateUninitialized MPState = 1
	MPStateInitReceived  MPState = 2
	MPStateHalted        MPState = 3
	MPStateSIPIReceived  MPState = 4
)

// UserspaceMemoryRegion is struct kvm_userspace_memory_region: a memslot.
type UserspaceMemoryRegion struct {
	Slot          uint32
	Flags         uint32
	GuestPhysAddr uint64
	MemorySize    uint64
	UserspaceAddr uint64
}

// Memory region flags (KVM_MEM_* in kvm.h).
const (
	MemLogDirtyPages = 1 << 0
	MemReadonly      = 1 << 1
)

// irqLevel is struct kvm_irq_level.
type irqLevel struct {
	IRQ   uint32
	Level uint32
}

// irqfd is struct kvm_irqfd.
type irqfd struct {
	FD         uint32
	GSI        uint32
	Flags      uint32
	ResampleFD uint32
	_          [16]uint8
}

// irqfdFlagDeassign is KVM_IRQFD_FLAG_DEASSIGN.
const irqfdFlagDeassign = 1 << 0

// ioeventfd is struct kvm_ioeventfd.
type ioeventfd struct {
	Datamatch uint64
	Addr      uint64
	Len       uint32
	FD        int32
	Flags     uint32
	_         [36]uint8
}

// ioeventfd flags (KVM_IOEVENTFD_FLAG_* in kvm.h).
const (
	ioeventfdFlagDatamatch = 1 << 0
	ioeventfdFlagPIO       = 1 << 1
	ioeventfdFlagDeassign  = 1 << 2
)

// pitConfig is struct kvm_pit_config.
type pitConfig struct {
	Flags uint32
	_     [15]uint32
}

// PITSpeakerDummy is KVM_PIT_SPEAKER_DUMMY: KVM also emulates port 0x61.
const PITSpeakerDummy = 1

// ExitReason is kvm_run.exit_reason (KVM_EXIT_* in kvm.h).
type ExitReason uint32

// Exit reasons a vCPU loop on x86 may see.
const (
	ExitUnknown       ExitReason = 0
	ExitException     ExitReason = 1
	ExitIO            ExitReason = 2
	ExitHypercall     ExitReason = 3
	ExitDebug         ExitReason = 4
	ExitHLT           ExitReason = 5
	ExitMMIO          ExitReason = 6
	ExitIRQWindowOpen ExitReason = 7
	ExitShutdown      ExitReason = 8
	ExitFailEntry     ExitReason = 9
	ExitIntr          ExitReason = 10
	ExitSetTPR        ExitReason = 11
	ExitTPRAccess     ExitReason = 12
	ExitNMI           ExitReason = 16
	ExitInternalError ExitReason = 17
	ExitSystemEvent   ExitReason = 24
	ExitIOAPICEOI     ExitReason = 26
	ExitX86RDMSR      ExitReason = 29
	ExitX86WRMSR      ExitReason = 30
	ExitX86BusLock    ExitReason = 33
	ExitNotify        ExitReason = 37
)

// String names an exit reason for logs.
func (r ExitReason) String() string {
	return kvmName("KVM_EXIT", r, map[ExitReason]string{
		ExitUnknown: "UNKNOWN", ExitException: "EXCEPTION", ExitIO: "IO",
		ExitHypercall: "HYPERCALL", ExitDebug: "DEBUG", ExitHLT: "HLT",
		ExitMMIO: "MMIO", ExitIRQWindowOpen: "IRQ_WINDOW_OPEN",
		ExitShutdown: "SHUTDOWN", ExitFailEntry: "FAIL_ENTRY", ExitIntr: "INTR",
		ExitSetTPR: "SET_TPR", ExitTPRAccess: "TPR_ACCESS", ExitNMI: "NMI",
		ExitInternalError: "INTERNAL_ERROR", ExitSystemEvent: "SYSTEM_EVENT",
		ExitIOAPICEOI: "IOAPIC_EOI", ExitX86RDMSR: "X86_RDMSR",
		ExitX86WRMSR: "X86_WRMSR", ExitX86BusLock: "X86_BUS_LOCK", ExitNotify: "NOTIFY",
	})
}

// System event types in a KVM_EXIT_SYSTEM_EVENT (KVM_SYSTEM_EVENT_*).
const (
	SystemEventShutdown = 1
	SystemEventReset    = 2
	SystemEventCrash    = 3
)

// I/O directions in a KVM_EXIT_IO.
const (
	IODirectionIn  = 0
	IODirectionOut = 1
)

// runHeader is the fixed head of struct kvm_run up to and including the
// exit union, whose largest member on x86 fits in 256 bytes.
type runHeader struct {
	RequestInterruptWindow     uint8
	ImmediateExit              uint8
	_                          [6]uint8
	ExitReason                 uint32
	ReadyForInterruptInjection uint8
	IFFlag                     uint8
	Flags                      uint16
	CR8                        uint64
	APICBase                   uint64
	Exit                       [256]byte
}

// runIO is the KVM_EXIT_IO member of the exit union.
type runIO struct {
	Direction  uint8
	Size       uint8
	Port       uint16
	Count      uint32
	DataOffset uint64
}

// runMMIO is the KVM_EXIT_MMIO member of the exit union.
type runMMIO struct {
	PhysAddr uint64
	Data     [8]byte
	Len      uint32
	IsWrite  uint8
	_        [3]uint8
}

// runFailEntry is the KVM_EXIT_FAIL_ENTRY member.
type runFailEntry struct {
	HardwareEntryFailureReason uint64
	CPU                        uint32
}

// runInternal is the KVM_EXIT_INTERNAL_ERROR member.
type runInternal struct {
	Suberror uint32
	NData    uint32
	Data     [16]uint64
}

// runSystemEvent is the KVM_EXIT_SYSTEM_EVENT member.
type runSystemEvent struct {
	Type  uint32
	NData uint32
	Data  [16]uint64
}
