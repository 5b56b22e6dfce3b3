package e2e

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"golang.org/x/sys/unix"

	"github.com/vmmdev/vmm/kvm"
)

var _ = Describe("the KVM host", func() {
	It("has a /dev/kvm that creates VMs and vCPUs", func() {
		sys, err := kvm.Open(kvm.DevicePath)
		Expect(err).NotTo(HaveOccurred(), "open /dev/kvm")
		DeferCleanup(sys.Close)

		v, err := sys.APIVersion()
		Expect(err).NotTo(HaveOccurred())
		Expect(v).To(BeEquivalentTo(kvm.APIVersion), "KVM_GET_API_VERSION")

		maxVCPUs, err := sys.CheckExtension(kvm.CapMaxVCPUs)
		Expect(err).NotTo(HaveOccurred())
		Expect(maxVCPUs).To(BeNumerically(">=", 8), "KVM_CAP_MAX_VCPUS")
		GinkgoWriter.Printf("KVM_CAP_MAX_VCPUS=%d\n", maxVCPUs)

		vm, err := sys.CreateVM()
		Expect(err).NotTo(HaveOccurred(), "KVM_CREATE_VM")
		DeferCleanup(vm.Close)
		for id := range 2 {
			cpu, err := vm.CreateVCPU(id)
			Expect(err).NotTo(HaveOccurred(), "KVM_CREATE_VCPU %d", id)
			DeferCleanup(cpu.Close)
		}
		_, err = vm.CreateVCPU(0)
		Expect(err).To(MatchError(unix.EEXIST), "a vCPU id cannot be created twice")
	})
})
