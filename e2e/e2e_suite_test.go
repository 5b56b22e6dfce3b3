// Package e2e holds the end-to-end suites: Ginkgo specs that boot real Linux
// guests with the real vmm binary on a real /dev/kvm, and check them from
// inside the guest. `make test` runs them through the kvmhost harness, in an
// emulated KVM host when this machine has no usable /dev/kvm.
package e2e

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "vmm end-to-end")
}
