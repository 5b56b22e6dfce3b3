package kvmhost

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctl numbers from linux/kvm.h (_IO/_IOR/_IOW on type 0xAE).
const (
	kvmGetAPIVersion       = 0xAE00
	kvmCreateVM            = 0xAE01
	kvmGetVCPUMmapSize     = 0xAE04
	kvmCreateVCPU          = 0xAE41
	kvmSetUserMemoryRegion = 0x4020AE46
	kvmRun                 = 0xAE80
	kvmGetSregs            = 0x8138AE83
	kvmSetSregs            = 0x4138AE84
	kvmSetRegs             = 0x4090AE82

	kvmExitIO = 2

	probePort = 0x10
	probeByte = 0x42
)

// probeCode is real-mode code at guest address 0x1000:
// mov al, 0x42; out 0x10, al; hlt.
var probeCode = []byte{0xb0, probeByte, 0xe6, probePort, 0xf4}

// Usable reports whether dev is a KVM that runs an ordinary guest: it
// creates a VM with one vCPU, runs three real-mode instructions and expects
// their port write. Hypervisors that expose /dev/kvm but cannot run stock
// guests (such as a paravirtual "PVM" KVM) fail here.
func Usable(dev string) error {
	fd, err := unix.Open(dev, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	defer unix.Close(fd)
	if v, err := ioctl(fd, kvmGetAPIVersion, 0); err != nil || v != 12 {
		return fmt.Errorf("KVM_GET_API_VERSION = %d (%v), want 12", v, err)
	}
	vm, err := ioctl(fd, kvmCreateVM, 0)
	if err != nil {
		return fmt.Errorf("KVM_CREATE_VM: %w", err)
	}
	defer unix.Close(int(vm))

	mem, err := unix.Mmap(-1, 0, 0x10000, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("mmap guest memory: %w", err)
	}
	defer unix.Munmap(mem)
	copy(mem[0x1000:], probeCode)
	region := struct {
		slot, flags             uint32
		guestPhys, size, userVA uint64
	}{0, 0, 0, uint64(len(mem)), uint64(uintptr(unsafe.Pointer(&mem[0])))}
	if _, err := ioctl(int(vm), kvmSetUserMemoryRegion, uintptr(unsafe.Pointer(&region))); err != nil {
		return fmt.Errorf("KVM_SET_USER_MEMORY_REGION: %w", err)
	}
	cpu, err := ioctl(int(vm), kvmCreateVCPU, 0)
	if err != nil {
		return fmt.Errorf("KVM_CREATE_VCPU: %w", err)
	}
	defer unix.Close(int(cpu))
	size, err := ioctl(fd, kvmGetVCPUMmapSize, 0)
	if err != nil {
		return fmt.Errorf("KVM_GET_VCPU_MMAP_SIZE: %w", err)
	}
	run, err := unix.Mmap(int(cpu), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap kvm_run: %w", err)
	}
	defer unix.Munmap(run)

	// struct kvm_sregs begins with the cs segment: base (u64), limit
	// (u32), selector (u16).
	var sregs [312]byte
	if _, err := ioctl(int(cpu), kvmGetSregs, uintptr(unsafe.Pointer(&sregs[0]))); err != nil {
		return fmt.Errorf("KVM_GET_SREGS: %w", err)
	}
	clear(sregs[0:8])
	clear(sregs[12:14])
	if _, err := ioctl(int(cpu), kvmSetSregs, uintptr(unsafe.Pointer(&sregs[0]))); err != nil {
		return fmt.Errorf("KVM_SET_SREGS: %w", err)
	}
	// struct kvm_regs: 16 general registers, then rip and rflags.
	var regs [18]uint64
	regs[16], regs[17] = 0x1000, 0x2
	if _, err := ioctl(int(cpu), kvmSetRegs, uintptr(unsafe.Pointer(&regs[0]))); err != nil {
		return fmt.Errorf("KVM_SET_REGS: %w", err)
	}
	for range 100 {
		_, err := ioctl(int(cpu), kvmRun, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("KVM_RUN: %w", err)
		}
		break
	}
	// struct kvm_run: exit_reason at 8; io at 32: direction, size (u8),
	// port (u16), count (u32), data_offset (u64).
	reason := *(*uint32)(unsafe.Pointer(&run[8]))
	port := *(*uint16)(unsafe.Pointer(&run[34]))
	off := *(*uint64)(unsafe.Pointer(&run[40]))
	if reason != kvmExitIO || port != probePort || off >= uint64(len(run)) || run[off] != probeByte {
		return fmt.Errorf("a real-mode probe guest did not run: exit reason %d, port %#x", reason, port)
	}
	return nil
}

func ioctl(fd int, req, arg uintptr) (uintptr, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, arg)
	if errno != 0 {
		return r, errno
	}
	return r, nil
}
