package config

import (
	"errors"
	"fmt"
	"strconv"
)

// Special vsock CIDs, which no guest may have.
const (
	vsockCIDHypervisor = 0
	vsockCIDLocal      = 1
	vsockCIDHost       = 2
	vsockCIDAny        = 0xffffffff
)

// ParseVsock reads --vsock cid=N,socket=PATH[,iommu=on|off][,id=ID][,pci_segment=N].
func ParseVsock(s string) (Vsock, error) {
	o, err := options("vsock", s, "cid", "socket", "iommu", "id", "pci_segment")
	if err != nil {
		return Vsock{}, err
	}
	v := Vsock{Socket: o["socket"]}
	v.ID = o["id"]
	cid, ok := o["cid"]
	if !ok {
		return v, errors.New("--vsock: cid= is required")
	}
	n, err := strconv.ParseUint(cid, 10, 32)
	if err != nil {
		return v, fmt.Errorf("--vsock: cid=%q is not a number up to %d", cid, uint32(vsockCIDAny))
	}
	v.CID = uint32(n)
	if v.Socket == "" {
		return v, errors.New("--vsock: socket= is required")
	}
	if x, ok := o["iommu"]; ok {
		if v.IOMMU, err = parseBool(x); err != nil {
			return v, fmt.Errorf("--vsock: iommu: %w", err)
		}
	}
	if x, ok := o["pci_segment"]; ok {
		seg, err := strconv.ParseUint(x, 10, 16)
		if err != nil {
			return v, fmt.Errorf("--vsock: pci_segment=%q is not a number", x)
		}
		v.PCISegment = uint16(seg)
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
	s := fmt.Sprintf("cid=%d,socket=%s", v.CID, v.Socket)
	if v.IOMMU {
		s += ",iommu=on"
	}
	if v.ID != "" {
		s += ",id=" + v.ID
	}
	if v.PCISegment != 0 {
		s += ",pci_segment=" + strconv.Itoa(int(v.PCISegment))
	}
	return s
}
