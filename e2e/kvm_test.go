package e2e

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"golang.org/x/sys/unix"
)

// ioctl numbers and capabilities from linux/kvm.h.
const (
	kvmGetAPIVersion    = 0xAE00
	kvmCreateVM         = 0xAE01
	kvmCheckExtension   = 0xAE03
	kvmCreateVCPU       = 0xAE41
	kvmCapMaxVCPUs      = 66
	kvmStableAPIVersion = 12
)

func ioctl(fd int, req, arg uintptr) (uintptr, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, arg)
	if errno != 0 {
		return r, errno
	}
	return r, nil
}

var _ = Describe("the KVM host", func() {
	It("has a /dev/kvm that creates VMs and vCPUs", func() {
		fd, err := unix.Open("/dev/kvm", unix.O_RDWR|unix.O_CLOEXEC, 0)
		Expect(err).NotTo(HaveOccurred(), "open /dev/kvm")
		DeferCleanup(unix.Close, fd)

		v, err := ioctl(fd, kvmGetAPIVersion, 0)
		Expect(err).NotTo(HaveOccurred())
		Expect(v).To(BeEquivalentTo(kvmStableAPIVersion), "KVM_GET_API_VERSION")

		maxVCPUs, err := ioctl(fd, kvmCheckExtension, kvmCapMaxVCPUs)
		Expect(err).NotTo(HaveOccurred())
		Expect(int(maxVCPUs)).To(BeNumerically(">=", 8), "KVM_CAP_MAX_VCPUS")
		GinkgoWriter.Printf("KVM_CAP_MAX_VCPUS=%d\n", maxVCPUs)

		vm, err := ioctl(fd, kvmCreateVM, 0)
		Expect(err).NotTo(HaveOccurred(), "KVM_CREATE_VM")
		DeferCleanup(unix.Close, int(vm))
		for id := range 2 {
			cpu, err := ioctl(int(vm), kvmCreateVCPU, uintptr(id))
			Expect(err).NotTo(HaveOccurred(), "KVM_CREATE_VCPU %d", id)
			DeferCleanup(unix.Close, int(cpu))
		}
		_, err = ioctl(int(vm), kvmCreateVCPU, 0)
		Expect(err).To(MatchError(unix.EEXIST), "a vCPU id cannot be created twice")
	})
})
