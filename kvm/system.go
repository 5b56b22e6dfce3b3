package kvm

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// APIVersion is the only KVM API version there has ever been (KVM_API_VERSION).
const APIVersion = 12

// DevicePath is where the KVM device usually lives.
const DevicePath = "/dev/kvm"

// System is an open /dev/kvm: the handle for system ioctls and for creating VMs.
type System struct {
	handle
}

// handle is an open KVM file descriptor that answers KVM_CHECK_EXTENSION:
// the system's or a VM's.
type handle struct {
	fd int
}

// Open opens the KVM device at path (usually DevicePath) and checks its API
// version.
func Open(path string) (*System, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	s := &System{handle{fd: fd}}
	v, err := s.APIVersion()
	if err != nil {
		s.Close()
		return nil, err
	}
	if v != APIVersion {
		s.Close()
		return nil, fmt.Errorf("%s: KVM API version %d, want %d", path, v, APIVersion)
	}
	return s, nil
}

// APIVersion returns KVM_GET_API_VERSION, which Open checks is APIVersion.
func (s *System) APIVersion() (int, error) {
	v, err := ioctl(s.fd, ioGetAPIVersion, 0)
	if err != nil {
		return 0, fmt.Errorf("KVM_GET_API_VERSION: %w", err)
	}
	return int(v), nil
}

// Close closes the fd. A VM stays valid after the system is closed, and the
// kernel frees a VM once every vCPU fd and mapping of it is gone too.
func (h *handle) Close() error {
	if h.fd < 0 {
		return nil
	}
	err := unix.Close(h.fd)
	h.fd = -1
	return err
}

// CheckExtension returns KVM_CHECK_EXTENSION for c: 0 when the capability is
// absent, otherwise a capability-specific value. Some capabilities
// (KVM_CAP_NR_MEMSLOTS, KVM_CAP_MAX_VCPUS) answer per VM on a VM's fd.
func (h *handle) CheckExtension(c Cap) (int, error) {
	r, err := ioctl(h.fd, ioCheckExtension, uintptr(c))
	if err != nil {
		return 0, fmt.Errorf("KVM_CHECK_EXTENSION(%v): %w", c, err)
	}
	return int(r), nil
}

// VCPUMmapSize is the size of the kvm_run area each vCPU fd maps.
func (s *System) VCPUMmapSize() (int, error) {
	r, err := ioctl(s.fd, ioGetVCPUMmapSize, 0)
	if err != nil {
		return 0, fmt.Errorf("KVM_GET_VCPU_MMAP_SIZE: %w", err)
	}
	return int(r), nil
}

// maxCPUIDEntries bounds the buffer offered to the CPUID ioctls.
const maxCPUIDEntries = 4096

// SupportedCPUID returns KVM_GET_SUPPORTED_CPUID: every leaf the host and
// KVM can offer a guest, with KVM's own paravirtual leaves (0x40000000...).
func (s *System) SupportedCPUID() ([]CPUIDEntry, error) {
	entries, err := getCPUID(s.fd, ioGetSupportedCPUID)
	if err != nil {
		return nil, fmt.Errorf("KVM_GET_SUPPORTED_CPUID: %w", err)
	}
	return entries, nil
}

// getCPUID reads a struct kvm_cpuid2 with the ioctl req on fd, offering a
// larger buffer each time KVM says it is too small (E2BIG).
func getCPUID(fd int, req uintptr) ([]CPUIDEntry, error) {
	for n := 128; n <= maxCPUIDEntries; n *= 2 {
		buf := newCPUIDBuffer(n)
		_, err := ioctlPtr(fd, req, unsafe.Pointer(&buf[0]))
		if errors.Is(err, unix.E2BIG) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return cpuidEntries(buf), nil
	}
	return nil, fmt.Errorf("more than %d entries", maxCPUIDEntries)
}

// MSRIndexList returns KVM_GET_MSR_INDEX_LIST: the MSRs KVM saves and
// restores for a guest.
func (s *System) MSRIndexList() ([]uint32, error) {
	for n := 256; n <= 65536; n *= 2 {
		buf := make([]uint32, 1+n)
		buf[0] = uint32(n)
		_, err := ioctlPtr(s.fd, ioGetMSRIndexList, unsafe.Pointer(&buf[0]))
		if errors.Is(err, unix.E2BIG) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("KVM_GET_MSR_INDEX_LIST: %w", err)
		}
		return append([]uint32(nil), buf[1:1+buf[0]]...), nil
	}
	return nil, errors.New("KVM_GET_MSR_INDEX_LIST: list too long")
}

// CreateVM creates a VM with the default machine type.
func (s *System) CreateVM() (*VM, error) {
	size, err := s.VCPUMmapSize()
	if err != nil {
		return nil, err
	}
	// KVM_CREATE_VM can fail with EINTR while it waits for memory; ioctl
	// retries it.
	fd, err := ioctl(s.fd, ioCreateVM, 0)
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_VM: %w", err)
	}
	unix.CloseOnExec(int(fd))
	return &VM{handle: handle{fd: int(fd)}, runSize: size}, nil
}

// cpuidHeader is the head of struct kvm_cpuid2.
type cpuidHeader struct {
	NEnt uint32
	_    uint32
}

// newCPUIDBuffer allocates a struct kvm_cpuid2 with room for n entries, as
// 8-byte aligned words.
func newCPUIDBuffer(n int) []uint64 {
	words := (int(unsafe.Sizeof(cpuidHeader{})) + n*int(unsafe.Sizeof(CPUIDEntry{})) + 7) / 8
	buf := make([]uint64, words)
	(*cpuidHeader)(unsafe.Pointer(&buf[0])).NEnt = uint32(n)
	return buf
}

// cpuidEntries copies the entries out of a struct kvm_cpuid2 buffer.
func cpuidEntries(buf []uint64) []CPUIDEntry {
	h := (*cpuidHeader)(unsafe.Pointer(&buf[0]))
	first := (*CPUIDEntry)(unsafe.Add(unsafe.Pointer(&buf[0]), unsafe.Sizeof(cpuidHeader{})))
	return append([]CPUIDEntry(nil), unsafe.Slice(first, h.NEnt)...)
}

// cpuidBufferFrom builds a struct kvm_cpuid2 holding entries.
func cpuidBufferFrom(entries []CPUIDEntry) []uint64 {
	buf := newCPUIDBuffer(len(entries))
	first := (*CPUIDEntry)(unsafe.Add(unsafe.Pointer(&buf[0]), unsafe.Sizeof(cpuidHeader{})))
	copy(unsafe.Slice(first, len(entries)), entries)
	return buf
}
