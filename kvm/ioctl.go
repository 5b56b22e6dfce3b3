// Package kvm is a typed wrapper over the Linux KVM API (/dev/kvm) for x86_64
// hosts: the system, VM and vCPU handles, their ioctls and the vCPU's
// mmapped kvm_run area. It is pure mechanism: no policy, no knowledge of the
// machine being built.
//
// Numbers and layouts come from the kernel's include/uapi/linux/kvm.h and
// arch/x86/include/uapi/asm/kvm.h; see Documentation/virt/kvm/api.rst for
// the semantics of each ioctl.
package kvm

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// kvmio is the ioctl type byte of KVM (KVMIO in kvm.h).
const kvmio = 0xAE

// Linux ioctl request encoding (include/uapi/asm-generic/ioctl.h).
const (
	iocNone  = 0
	iocWrite = 1
	iocRead  = 2
)

func ioc(dir, nr, size uintptr) uintptr {
	return dir<<30 | size<<16 | kvmio<<8 | nr
}

func io(nr uintptr) uintptr         { return ioc(iocNone, nr, 0) }
func iow(nr, size uintptr) uintptr  { return ioc(iocWrite, nr, size) }
func ior(nr, size uintptr) uintptr  { return ioc(iocRead, nr, size) }
func iowr(nr, size uintptr) uintptr { return ioc(iocRead|iocWrite, nr, size) }

// ioctl request numbers, as the _IO* macros in kvm.h compute them.
var (
	ioGetAPIVersion       = io(0x00)
	ioCreateVM            = io(0x01)
	ioGetMSRIndexList     = iowr(0x02, 4)
	ioCheckExtension      = io(0x03)
	ioGetVCPUMmapSize     = io(0x04)
	ioGetSupportedCPUID   = iowr(0x05, 8)
	ioCreateVCPU          = io(0x41)
	ioSetUserMemoryRegion = iow(0x46, unsafe.Sizeof(UserspaceMemoryRegion{}))
	ioSetTSSAddr          = io(0x47)
	ioSetIdentityMapAddr  = iow(0x48, 8)
	ioCreateIRQChip       = io(0x60)
	ioIRQLine             = iow(0x61, unsafe.Sizeof(irqLevel{}))
	ioGetIRQChip          = iowr(0x62, unsafe.Sizeof(irqChip{}))
	ioSetGSIRouting       = iow(0x6a, 8)
	ioIRQFD               = iow(0x76, unsafe.Sizeof(irqfd{}))
	ioCreatePIT2          = iow(0x77, unsafe.Sizeof(pitConfig{}))
	ioIOEventFD           = iow(0x79, unsafe.Sizeof(ioeventfd{}))
	ioRun                 = io(0x80)
	ioGetRegs             = ior(0x81, unsafe.Sizeof(Regs{}))
	ioSetRegs             = iow(0x82, unsafe.Sizeof(Regs{}))
	ioGetSregs            = ior(0x83, unsafe.Sizeof(Sregs{}))
	ioSetSregs            = iow(0x84, unsafe.Sizeof(Sregs{}))
	ioGetMSRs             = iowr(0x88, 8)
	ioSetMSRs             = iow(0x89, 8)
	ioGetFPU              = ior(0x8c, unsafe.Sizeof(FPU{}))
	ioSetFPU              = iow(0x8d, unsafe.Sizeof(FPU{}))
	ioGetLAPIC            = ior(0x8e, unsafe.Sizeof(LAPICState{}))
	ioSetLAPIC            = iow(0x8f, unsafe.Sizeof(LAPICState{}))
	ioSetCPUID2           = iow(0x90, 8)
	ioGetCPUID2           = iowr(0x91, 8)
	ioGetMPState          = ior(0x98, unsafe.Sizeof(MPState(0)))
	ioSetMPState          = iow(0x99, unsafe.Sizeof(MPState(0)))
	ioGetVCPUEvents       = ior(0x9f, unsafe.Sizeof(VCPUEvents{}))
)

// ioctl issues one ioctl and retries it when a signal interrupts it before
// it did anything (EINTR); KVM_RUN is not issued through here.
func ioctl(fd int, req, arg uintptr) (uintptr, error) {
	for {
		r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, arg)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return r, errno
		}
		return r, nil
	}
}

// ioctlPtr is ioctl with a pointer argument.
func ioctlPtr(fd int, req uintptr, arg unsafe.Pointer) (uintptr, error) {
	for {
		r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return r, errno
		}
		return r, nil
	}
}

// Cap is a KVM capability number for KVM_CHECK_EXTENSION.
type Cap int

// Capabilities this project asks about (KVM_CAP_* in kvm.h).
const (
	CapIRQChip            Cap = 0
	CapUserMemory         Cap = 3
	CapSetTSSAddr         Cap = 4
	CapExtCPUID           Cap = 7
	CapNrVCPUs            Cap = 9
	CapNrMemslots         Cap = 10
	CapIRQRouting         Cap = 25
	CapIRQFD              Cap = 32
	CapPIT2               Cap = 33
	CapIOEventFD          Cap = 36
	CapSetIdentityMapAddr Cap = 37
	CapMaxVCPUs           Cap = 66
	CapTSCDeadlineTimer   Cap = 72
	CapMaxVCPUID          Cap = 128
	CapImmediateExit      Cap = 136
)

// String names a capability for messages.
func (c Cap) String() string {
	return kvmName("KVM_CAP", c, map[Cap]string{
		CapIRQChip: "IRQCHIP", CapUserMemory: "USER_MEMORY", CapSetTSSAddr: "SET_TSS_ADDR",
		CapExtCPUID: "EXT_CPUID", CapNrVCPUs: "NR_VCPUS", CapNrMemslots: "NR_MEMSLOTS",
		CapIRQRouting: "IRQ_ROUTING", CapIRQFD: "IRQFD", CapPIT2: "PIT2", CapIOEventFD: "IOEVENTFD",
		CapSetIdentityMapAddr: "SET_IDENTITY_MAP_ADDR", CapMaxVCPUs: "MAX_VCPUS",
		CapTSCDeadlineTimer: "TSC_DEADLINE_TIMER", CapMaxVCPUID: "MAX_VCPU_ID",
		CapImmediateExit: "IMMEDIATE_EXIT",
	})
}

// kvmName is kvm.h's name of v, a constant of the family prefix
// ("KVM_CAP", "KVM_EXIT"), from names; a value names lacks is shown as
// prefix(v).
func kvmName[T ~int | ~uint32](prefix string, v T, names map[T]string) string {
	if n, ok := names[v]; ok {
		return prefix + "_" + n
	}
	return fmt.Sprintf("%s(%d)", prefix, v)
}
