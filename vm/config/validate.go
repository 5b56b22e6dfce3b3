package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// NotUniqueError is a configuration giving two devices (or memory zones, or
// rate limit groups) the same id; Cloud Hypervisor answers it with 409
// Conflict.
type NotUniqueError struct {
	ID string
}

func (e *NotUniqueError) Error() string { return fmt.Sprintf("Identifier %s is not unique", e.ID) }

// Validate checks the configuration as a whole: that every enumerated value
// is one of Cloud Hypervisor's, and the rules of the fields vmm honours or
// records. hostMaxVCPUs is the host's KVM_CAP_MAX_VCPUS, or 0 when unknown.
// Every rule lives here, once. Like Cloud Hypervisor's validation it also
// edits the payload: a firmware boots without a command line or an
// initramfs, which are dropped (see IgnoredWithFirmware). Call it after
// SetDefaults; what vmm does not support is CheckSupported's.
func (c *VM) Validate(hostMaxVCPUs int) error {
	if err := checkEnums("", reflect.ValueOf(c).Elem()); err != nil {
		return err
	}
	switch p := &c.Payload; {
	case p.Firmware != "" && p.Kernel != "":
		return errors.New("payload: a kernel and a firmware: give one of --kernel and --firmware, not both")
	case p.Firmware != "":
		p.Cmdline, p.Initramfs = "", ""
	case p.Kernel == "":
		return errors.New("no kernel: --kernel (or --firmware) is required")
	}
	if err := c.CPUs.validate(hostMaxVCPUs); err != nil {
		return err
	}
	if c.Memory.Size < MinMemory {
		return fmt.Errorf("memory: size=%d is below the minimum of %d MiB", c.Memory.Size, MinMemory/MiB)
	}
	if c.Memory.Size%(4096) != 0 {
		return fmt.Errorf("memory: size=%d is not a multiple of 4 KiB", c.Memory.Size)
	}
	if err := c.Memory.validateHotplug(); err != nil {
		return err
	}
	if err := c.validateBalloon(); err != nil {
		return err
	}
	if err := c.Memory.validate(); err != nil {
		return err
	}
	for i, d := range c.Disks {
		if d.Path == "" {
			return fmt.Errorf("disk %d: path= is required", i)
		}
	}
	for i, n := range c.Net {
		if len(n.FDs) > 1 {
			return fmt.Errorf("net %d: fds: %d tap descriptors: vmm gives a net one queue pair, so one descriptor", i, len(n.FDs))
		}
		for _, fd := range n.FDs {
			if fd < 0 {
				return fmt.Errorf("net %d: fds: %d is not a descriptor (pass taps as SCM_RIGHTS with vm.add-net)", i, fd)
			}
		}
	}
	if err := c.Vsock.Check(); err != nil {
		return err
	}
	if c.Serial.Mode == ModeFile && c.Serial.File == "" {
		return errors.New("serial: file mode needs a path")
	}
	if c.Console.Mode == ModeFile && c.Console.File == "" {
		return errors.New("console: file mode needs a path")
	}
	if p := c.Platform; p != nil && (p.NumPCISegments < 1 || p.NumPCISegments > MaxPCISegments) {
		return fmt.Errorf("platform: Number of PCI segments (%d) not in range of 1 to %d", p.NumPCISegments, MaxPCISegments)
	}
	if err := c.validateLandlock(); err != nil {
		return err
	}
	return c.validateIDs()
}

// validate applies Cloud Hypervisor's rules on huge pages: a size needs
// huge pages, is a power of two, and the RAM is a whole number of them.
func (m Memory) validate() error {
	if m.HugepageSize == 0 {
		return nil
	}
	if !m.Hugepages {
		return errors.New("memory: Huge page size specified but huge pages not enabled")
	}
	if m.HugepageSize&(m.HugepageSize-1) != 0 {
		return fmt.Errorf("memory: Huge page size is not power of 2: %d", m.HugepageSize)
	}
	if m.Size%m.HugepageSize != 0 {
		return errors.New("memory: Memory size is misaligned with default page size or its hugepage size")
	}
	return nil
}

// validate checks the vCPU counts and the topology.
func (c CPUs) validate(hostMaxVCPUs int) error {
	if c.BootVCPUs < 1 {
		return fmt.Errorf("cpus: boot=%d: at least 1 vCPU is needed", c.BootVCPUs)
	}
	if c.MaxVCPUs < c.BootVCPUs {
		return fmt.Errorf("cpus: max=%d is below boot=%d", c.MaxVCPUs, c.BootVCPUs)
	}
	if hostMaxVCPUs > 0 && c.MaxVCPUs > hostMaxVCPUs {
		return fmt.Errorf("cpus: max=%d is above the host's limit of %d vCPUs", c.MaxVCPUs, hostMaxVCPUs)
	}
	if t := c.Topology; t != nil {
		if t.ThreadsPerCore == 0 || t.CoresPerDie == 0 || t.DiesPerPackage == 0 || t.Packages == 0 {
			return errors.New("cpus: topology: No part of the CPU topology can be zero")
		}
		if n := int(t.ThreadsPerCore) * int(t.CoresPerDie) * int(t.DiesPerPackage) * int(t.Packages); n != c.MaxVCPUs {
			return fmt.Errorf("cpus: topology: Product of CPU topology parts does not match maximum vCPU (%d, max=%d)", n, c.MaxVCPUs)
		}
	}
	return nil
}

// validateIDs applies Cloud Hypervisor's rules to the ids of devices,
// memory zones and rate limit groups: unique (a *NotUniqueError), and none
// starting with "__", which Cloud Hypervisor keeps for itself.
func (c *VM) validateIDs() error {
	seen := map[string]bool{}
	var err error
	walkIDs("", reflect.ValueOf(c).Elem(), func(path, id string) bool {
		switch {
		case id == "":
		case strings.HasPrefix(id, "__"):
			err = fmt.Errorf("%s: Identifier %s is not valid (ids starting with __ are reserved)", path, id)
		case seen[id]:
			err = &NotUniqueError{ID: id}
		default:
			seen[id] = true
		}
		return err == nil
	})
	return err
}

// walkIDs calls f with every "id" field of a device, memory zone or rate
// limit group under v, in order, while f returns true.
func walkIDs(path string, v reflect.Value, f func(path, id string) bool) bool {
	switch v.Kind() {
	case reflect.Struct:
		for _, jf := range jsonFields(v.Type()) {
			fv, p := v.FieldByIndex(jf.index), joinPath(path, jf.name)
			if jf.name == "id" && fv.Kind() == reflect.String {
				switch jf.owner {
				case reflect.TypeFor[PCIDevice](), reflect.TypeFor[MemoryZone](), reflect.TypeFor[RateLimitGroup]():
					if !f(p, fv.String()) {
						return false
					}
				}
				continue
			}
			if !walkIDs(p, fv, f) {
				return false
			}
		}
	case reflect.Pointer:
		if !v.IsNil() {
			return walkIDs(path, v.Elem(), f)
		}
	case reflect.Slice:
		for i := range v.Len() {
			if !walkIDs(fmt.Sprintf("%s[%d]", path, i), v.Index(i), f) {
				return false
			}
		}
	}
	return true
}
