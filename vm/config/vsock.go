package config

import (
	"errors"
	"fmt"
	"strconv"
)

// Vsock is the virtio-vsock device, Cloud Hypervisor's VsockConfig: the
// guest's CID and the unix socket of its hybrid vsock (host programs
// connect to Socket and write "CONNECT <port>\n"; a guest connection to
// the host's port P reaches a program listening on Socket_P).
type Vsock struct {
	CID        uint64 `json:"cid"`
	Socket     string `json:"socket"`
	IOMMU      bool   `json:"iommu,omitempty"`
	ID         string `json:"id,omitempty"`
	PCISegment uint16 `json:"pci_segment,omitempty"`
}

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
	v := Vsock{Socket: o["socket"], ID: o["id"]}
	cid, ok := o["cid"]
	if !ok {
		return v, errors.New("--vsock: cid= is required")
	}
	if v.CID, err = strconv.ParseUint(cid, 10, 32); err != nil {
		return v, fmt.Errorf("--vsock: cid=%q is not a number up to %d", cid, uint32(vsockCIDAny))
	}
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
// (Cloud Hypervisor's words), a socket path, no IOMMU (vmm has none).
func (v *Vsock) Check() error {
	if v == nil {
		return nil
	}
	switch v.CID {
	case vsockCIDHypervisor, vsockCIDLocal, vsockCIDHost, vsockCIDAny:
		return fmt.Errorf("vsock: %d is a special VSOCK CID", v.CID)
	}
	if v.CID > vsockCIDAny {
		return fmt.Errorf("vsock: cid=%d is above %d", v.CID, uint32(vsockCIDAny))
	}
	if v.Socket == "" {
		return errors.New("vsock: socket= is required")
	}
	if v.IOMMU {
		return errors.New("vsock: iommu=on: vmm has no virtual IOMMU")
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
