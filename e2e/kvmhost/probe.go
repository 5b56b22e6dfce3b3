package kvmhost

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/vmmdev/vmm/kvm"
)

// The probe guest: real-mode code at guest address probeEntry writes
// probeByte to port probePort.
const (
	probeRAM   = 0x10000
	probeEntry = 0x1000
	probePort  = 0x10
	probeByte  = 0x42
	// probeRuns bounds the KVM_RUNs a signal may cut short.
	probeRuns = 100
)

// probeCode is mov al, probeByte; out probePort, al; hlt.
var probeCode = []byte{0xb0, probeByte, 0xe6, probePort, 0xf4}

// Usable reports whether dev is a KVM that runs an ordinary guest: it
// creates a VM with one vCPU, runs three real-mode instructions and expects
// their port write. Hypervisors that expose /dev/kvm but cannot run stock
// guests (such as a paravirtual "PVM" KVM) fail here.
func Usable(dev string) error {
	sys, err := kvm.Open(dev)
	if err != nil {
		return err
	}
	defer sys.Close()
	vm, err := sys.CreateVM()
	if err != nil {
		return err
	}
	defer vm.Close()

	mem, err := unix.Mmap(-1, 0, probeRAM, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("mmap guest memory: %w", err)
	}
	defer unix.Munmap(mem)
	copy(mem[probeEntry:], probeCode)
	if err := vm.SetUserMemoryRegion(kvm.MemoryRegion(0, 0, mem)); err != nil {
		return err
	}
	cpu, err := vm.CreateVCPU(0)
	if err != nil {
		return err
	}
	defer cpu.Close()

	// Real mode with CS at 0, from probeEntry.
	sregs, err := cpu.Sregs()
	if err != nil {
		return err
	}
	sregs.CS.Base, sregs.CS.Selector = 0, 0
	if err := cpu.SetSregs(sregs); err != nil {
		return err
	}
	if err := cpu.SetRegs(kvm.Regs{RIP: probeEntry, RFLAGS: 0x2}); err != nil {
		return err
	}
	for range probeRuns {
		if err = cpu.Run(); !errors.Is(err, kvm.ErrInterrupted) {
			break
		}
	}
	if err != nil && !errors.Is(err, kvm.ErrInterrupted) {
		return err
	}
	reason := cpu.ExitReason()
	io, ok := cpu.IO()
	if reason != kvm.ExitIO || !ok || io.Port != probePort || len(io.Data) == 0 || io.Data[0] != probeByte {
		return fmt.Errorf("a real-mode probe guest did not run: exit reason %v, port %#x", reason, io.Port)
	}
	return nil
}
