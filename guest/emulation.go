package guest

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/vmmdev/vmm/vm"
)

// EmulationFaultMarker starts the line that a failure message gets when the
// failure carries a signature of the emulated KVM host's own faults
// (docs/testing.md). The e2e runner retries such a failure, and only such.
const EmulationFaultMarker = "EMULATION FAULT: "

// EnvKVMHost is set to "emulated" by the KVM host's init (images/kvmhost-init):
// the signatures are looked for only there. On a real KVM the same states
// would be this project's bugs.
const EnvKVMHost = "VMM_KVM_HOST"

// Where the KVM host keeps kvm-amd (images/build-initramfs.sh copies the
// modules to /lib/modules/NAME.ko) and where its kernel says where the
// module's sections were loaded.
const (
	kvmAMDModule   = "/lib/modules/kvm_amd.ko"
	kvmAMDSections = "/sys/module/kvm_amd/sections"
)

// vmrunOpcode is VMRUN's encoding (AMD APM vol. 3: 0F 01 D8).
var vmrunOpcode = []byte{0x0f, 0x01, 0xd8}

// EmulationSignatures recognises, in a vmm's log, the states that only the
// emulated KVM host's faults produce: its nested SVM resuming the guest on
// the KVM host's own context (a vCPU whose CR3 lies outside guest RAM, or
// whose RIP is the KVM host's instruction after VMRUN), or failing the
// entry of a vCPU that was running.
type EmulationSignatures struct {
	// vmrunReturns maps the KVM host's addresses right after a VMRUN
	// instruction in kvm-amd to a name for them.
	vmrunReturns map[uint64]string
}

// LoadEmulationSignatures reads what the signatures need from the KVM host
// this runs in. It returns nil when this is not an emulated KVM host.
func LoadEmulationSignatures() *EmulationSignatures {
	if os.Getenv(EnvKVMHost) != "emulated" {
		return nil
	}
	s := &EmulationSignatures{}
	s.vmrunReturns, _ = vmrunReturns(kvmAMDModule, kvmAMDSections)
	return s
}

// vmrunReturns finds every VMRUN in the executable sections of the kvm-amd
// module file and returns the address after each, where the KVM host's
// kernel loaded that section.
func vmrunReturns(module, sections string) (map[uint64]string, error) {
	f, err := elf.Open(module)
	if err != nil {
		return nil, fmt.Errorf("kvm-amd: %w", err)
	}
	defer f.Close()
	out := map[uint64]string{}
	for _, sec := range f.Sections {
		if sec.Flags&elf.SHF_EXECINSTR == 0 || sec.Type != elf.SHT_PROGBITS {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(sections, sec.Name))
		if err != nil {
			continue // not loaded, or not visible
		}
		base, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(string(raw)), "0x"), 16, 64)
		if err != nil || base == 0 {
			continue
		}
		data, err := sec.Data()
		if err != nil {
			continue
		}
		for off := 0; ; {
			i := bytes.Index(data[off:], vmrunOpcode)
			if i < 0 {
				break
			}
			at := uint64(off + i + len(vmrunOpcode))
			out[base+at] = fmt.Sprintf("kvm_amd %s+%#x", sec.Name, at)
			off += i + 1
		}
	}
	return out, nil
}

var (
	dumpVCPURe    = regexp.MustCompile(`msg="state dump" vcpu=(\d+) state=.*?\brip=(0x[0-9a-f]+)`)
	failEntryRe   = regexp.MustCompile(`vCPU (\d+): KVM_EXIT_FAIL_ENTRY: .* after (\d+) exits`)
	dumpCR3Re     = regexp.MustCompile(`\bcr3=(0x[0-9a-f]+) ` + regexp.QuoteMeta(vm.CR3OutsideRAM))
	dumpVCPUIDsRe = regexp.MustCompile(`msg="state dump" vcpu=(\d+) `)
)

// Match returns what in vmmLog is a signature of the emulation's faults,
// or "" when nothing is. A nil receiver matches nothing.
func (s *EmulationSignatures) Match(vmmLog string) string {
	if s == nil {
		return ""
	}
	for _, line := range strings.Split(vmmLog, "\n") {
		if m := failEntryRe.FindStringSubmatch(line); m != nil && m[2] != "0" {
			return fmt.Sprintf("vCPU %s's VM entry failed after it had run (%s exits): KVM_EXIT_FAIL_ENTRY", m[1], m[2])
		}
		if !strings.Contains(line, `msg="state dump" vcpu=`) {
			continue
		}
		id := ""
		if m := dumpVCPUIDsRe.FindStringSubmatch(line); m != nil {
			id = m[1]
		}
		if m := dumpCR3Re.FindStringSubmatch(line); m != nil {
			return fmt.Sprintf("vCPU %s runs with CR3 %s, outside guest RAM (the KVM host's context)", id, m[1])
		}
		if m := dumpVCPURe.FindStringSubmatch(line); m != nil {
			rip, err := strconv.ParseUint(strings.TrimPrefix(m[2], "0x"), 16, 64)
			if where, ok := s.vmrunReturns[rip]; err == nil && ok {
				return fmt.Sprintf("vCPU %s's RIP %s is the KVM host's return from VMRUN (%s)", id, m[2], where)
			}
		}
	}
	return ""
}

// emulationNote is the line a failure message gets when the vmm's log
// shows an emulation fault, or "".
func (m *Machine) emulationNote() string {
	if why := m.EmulationFault(); why != "" {
		return "\n" + EmulationFaultMarker + why
	}
	return ""
}

// EmulationFault returns the signature of the emulated KVM host's faults
// that the vmm's log shows (see EmulationSignatures), or "".
func (m *Machine) EmulationFault() string {
	return m.emu.Match(m.stderr.String())
}

// Diagnose is for a failure seen from outside the Machine (a spec's or a
// script's own check): in the emulated KVM host, it looks for an
// emulation fault's signature in the vmm's log and, when there is none and
// the vmm still runs, takes a state dump and looks again. It returns the
// signature, or "".
func (m *Machine) Diagnose() string {
	if m.emu == nil {
		return ""
	}
	if why := m.EmulationFault(); why != "" || m.exited() {
		return why
	}
	m.StateDump()
	return m.EmulationFault()
}
