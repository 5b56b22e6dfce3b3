package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Special vsock CIDs, which no guest may have.
const (
	vsockCIDHypervisor = 0
	vsockCIDLocal      = 1
	vsockCIDHost       = 2
	vsockCIDAny        = 0xffffffff
)

// ParseVsock reads --vsock cid=N,socket=PATH with Cloud Hypervisor's keys
// (and the device block's id, iommu, pci_segment, pci_device_id).
func ParseVsock(s string) (Vsock, error) {
	var v Vsock
	o := pciOptions(newOptions("vsock").add("cid", integer(&v.CID, 32)).add("socket", str(&v.Socket)), &v.PCIDevice)
	if err := o.parse(s); err != nil {
		return v, err
	}
	if !strings.Contains(","+s, ",cid=") {
		return v, errors.New("--vsock: cid= is required")
	}
	if v.Socket == "" {
		return v, errors.New("--vsock: socket= is required")
	}
	return v, v.Check()
}

// Check applies the device's rules: a guest CID that is not special
// (Cloud Hypervisor's words), a socket path. The support table refuses iommu.
func (v *Vsock) Check() error {
	if v == nil {
		return nil
	}
	switch v.CID {
	case vsockCIDHypervisor, vsockCIDLocal, vsockCIDHost, vsockCIDAny:
		return fmt.Errorf("vsock: %d is a special VSOCK CID", v.CID)
	}
	if v.Socket == "" {
		return errors.New("vsock: socket= is required")
	}
	return nil
}

// Arg is v as the value of --vsock.
func (v Vsock) Arg() string {
	s := fmt.Sprintf("cid=%d,socket=%s", v.CID, quoteOption(v.Socket))
	if v.IOMMU {
		s += ",iommu=on"
	}
	if v.ID != "" {
		s += ",id=" + quoteOption(v.ID)
	}
	if v.PCISegment != 0 {
		s += ",pci_segment=" + strconv.Itoa(int(v.PCISegment))
	}
	return s
}
