package vm

import (
	"errors"
	"slices"
	"testing"

	"github.com/vmmdev/vmm/kvm"
	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/hotplug"
	"github.com/vmmdev/vmm/vm/memory"
)

// fakeMemslots is a fake of the VM's memslots: it records the slots set
// and fails to create one when refuse is set.
type fakeMemslots struct {
	refuse error
	live   map[uint32]bool
}

func (f *fakeMemslots) SetUserMemoryRegion(r kvm.UserspaceMemoryRegion) error {
	if r.MemorySize == 0 {
		delete(f.live, r.Slot)
		return nil
	}
	if f.refuse != nil {
		return f.refuse
	}
	if f.live == nil {
		f.live = map[uint32]bool{}
	}
	f.live[r.Slot] = true
	return nil
}

// newTestGED is a GED with CPU and memory events whose interrupt runs irq.
func newTestGED(t *testing.T, irq func() error) *hotplug.GED {
	t.Helper()
	g, err := hotplug.NewGED(hotplug.GEDConfig{Base: 0x1000, GSI: 5, Events: hotplug.EventCPU | hotplug.EventMemory}, hotplug.IRQFunc(irq))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// hotAddRAMSetup maps 256 MiB of boot RAM and a memory controller.
func hotAddRAMSetup(t *testing.T) (*memory.Guest, *hotplug.MemoryHotplug) {
	t.Helper()
	mem, err := memory.Map(memory.BootRAM(256 * config.MiB))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	hp, err := hotplug.NewMemoryHotplug(0x2000, 4)
	if err != nil {
		t.Fatal(err)
	}
	return mem, hp
}

func nopLog(string, ...any) {}

func TestHotAddRAMWithFakeMemslotsLeavesNothingWhenKVMRefusesTheMemslot(t *testing.T) {
	mem, hp := hotAddRAMSetup(t)
	size, regions := mem.Size(), len(mem.Regions())
	slots := &fakeMemslots{refuse: errors.New("refused")}
	ged := newTestGED(t, func() error { return nil })
	if err := hotAddRAM(mem, slots, hp, ged, 256*config.MiB, 128*config.MiB, nopLog); err == nil {
		t.Fatal("hot add succeeded with the memslot refused")
	}
	if mem.Size() != size || len(mem.Regions()) != regions || hp.Used() != 0 || ged.Pending() != 0 {
		t.Errorf("after the failure: RAM %d (was %d), regions %d (was %d), slots used %d, GED pending %#x",
			mem.Size(), size, len(mem.Regions()), regions, hp.Used(), ged.Pending())
	}
}

func TestHotAddRAMWithFakeIRQUndoesEverythingWhenTheGEDFails(t *testing.T) {
	mem, hp := hotAddRAMSetup(t)
	size := mem.Size()
	slots := &fakeMemslots{}
	ged := newTestGED(t, func() error { return errors.New("KVM_IRQ_LINE failed") })
	if err := hotAddRAM(mem, slots, hp, ged, 256*config.MiB, 128*config.MiB, nopLog); err == nil {
		t.Fatal("hot add succeeded with the GED failing")
	}
	if mem.Size() != size || hp.Used() != 0 || len(slots.live) != 0 {
		t.Errorf("after the failure: RAM %d (was %d), slots used %d, memslots %v", mem.Size(), size, hp.Used(), slots.live)
	}
	// The next hot add takes the same place and works.
	ged2 := newTestGED(t, func() error { return nil })
	if err := hotAddRAM(mem, slots, hp, ged2, 256*config.MiB, 128*config.MiB, nopLog); err != nil {
		t.Fatal(err)
	}
	if mem.Size() != size+128*config.MiB || hp.Used() != 1 || len(slots.live) != 1 {
		t.Errorf("after the next hot add: RAM %d, slots used %d, memslots %v", mem.Size(), hp.Used(), slots.live)
	}
}

func TestHotAddRAMWithFakeIRQKeepsRAMTheGuestTookBeforeTheSignalFailed(t *testing.T) {
	mem, hp := hotAddRAMSetup(t)
	size := mem.Size()
	ged := newTestGED(t, func() error {
		// The guest's scan (for an earlier event) acknowledges slot 0.
		hp.Write(hotplug.MemorySelectOffset, []byte{0, 0, 0, 0})
		hp.Write(hotplug.MemoryStatusOffset, []byte{hotplug.MemoryInserting})
		return errors.New("KVM_IRQ_LINE failed")
	})
	if err := hotAddRAM(mem, &fakeMemslots{}, hp, ged, 256*config.MiB, 128*config.MiB, nopLog); err != nil {
		t.Fatalf("the guest has the RAM, yet: %v", err)
	}
	if mem.Size() != size+128*config.MiB || hp.Used() != 1 {
		t.Errorf("RAM %d, slots used %d: the RAM the guest has must stay", mem.Size(), hp.Used())
	}
}

// fakeVCPUs is a fake of the cpuManager for resizeVCPUs: it records the
// vCPUs created, plugged and parked, and fails to create failCreate.
type fakeVCPUs struct {
	made       map[int]bool
	plugged    map[int]bool
	failCreate int
}

func newFakeVCPUs(boot int) *fakeVCPUs {
	f := &fakeVCPUs{made: map[int]bool{}, plugged: map[int]bool{}, failCreate: -1}
	for id := range boot {
		f.made[id], f.plugged[id] = true, true
	}
	return f
}

func (f *fakeVCPUs) exists(id int) bool { return f.made[id] }
func (f *fakeVCPUs) create(id int, _ bool) error {
	if id == f.failCreate {
		return errors.New("KVM_CREATE_VCPU: out of memory")
	}
	f.made[id] = true
	return nil
}
func (f *fakeVCPUs) plug(ids ...int) error {
	for _, id := range ids {
		f.plugged[id] = true
	}
	return nil
}
func (f *fakeVCPUs) park(id int) error { f.plugged[id] = false; return nil }

// pluggedIDs lists the plugged vCPUs.
func (f *fakeVCPUs) pluggedIDs() []int {
	var ids []int
	for id, p := range f.plugged {
		if p {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

func newTestCPUHotplug(t *testing.T, boot, max int) *hotplug.CPUHotplug {
	t.Helper()
	hp, err := hotplug.NewCPUHotplug(0x3000, boot, max, nopCPUOwner{})
	if err != nil {
		t.Fatal(err)
	}
	return hp
}

func TestResizeVCPUsWithFakeVCPUsTakesBackTheAddedOnesWhenACreateFails(t *testing.T) {
	cpus, hp := newFakeVCPUs(1), newTestCPUHotplug(t, 1, 4)
	cpus.failCreate = 3
	ged := newTestGED(t, func() error { return nil })
	if _, err := resizeVCPUs(cpus, hp, ged, 4, 4); err == nil {
		t.Fatal("grow succeeded with vCPU 3 failing")
	}
	if hp.PresentCount() != 1 || !slices.Equal(cpus.pluggedIDs(), []int{0}) || ged.Pending() != 0 {
		t.Errorf("present %d, plugged %v, GED pending %#x; want 1, [0], nothing signalled", hp.PresentCount(), cpus.pluggedIDs(), ged.Pending())
	}
	// Once KVM can create it, the same grow works.
	cpus.failCreate = -1
	if _, err := resizeVCPUs(cpus, hp, ged, 4, 4); err != nil {
		t.Fatal(err)
	}
	if hp.PresentCount() != 4 || len(cpus.pluggedIDs()) != 4 || ged.Pending() != hotplug.EventCPU {
		t.Errorf("present %d, plugged %v, GED pending %#x", hp.PresentCount(), cpus.pluggedIDs(), ged.Pending())
	}
}

func TestResizeVCPUsWithFakeIRQTakesBackAGrowWhenTheGEDFails(t *testing.T) {
	cpus, hp := newFakeVCPUs(2), newTestCPUHotplug(t, 2, 4)
	ged := newTestGED(t, func() error { return errors.New("KVM_IRQ_LINE failed") })
	if _, err := resizeVCPUs(cpus, hp, ged, 4, 4); err == nil {
		t.Fatal("grow succeeded with the GED failing")
	}
	if hp.PresentCount() != 2 || !slices.Equal(cpus.pluggedIDs(), []int{0, 1}) {
		t.Errorf("present %d, plugged %v; want 2, [0 1]", hp.PresentCount(), cpus.pluggedIDs())
	}
}

func TestResizeVCPUsWithFakeIRQWithdrawsAShrinkWhenTheGEDFails(t *testing.T) {
	cpus, hp := newFakeVCPUs(4), newTestCPUHotplug(t, 4, 4)
	ged := newTestGED(t, func() error { return errors.New("KVM_IRQ_LINE failed") })
	removing, err := resizeVCPUs(cpus, hp, ged, 4, 2)
	if err == nil || removing {
		t.Fatalf("shrink: removing %v, err %v; want a failure with nothing pending", removing, err)
	}
	if hp.PendingEject() || hp.PresentCount() != 4 {
		t.Errorf("pending %v, present %d; want nothing pending, 4 present", hp.PendingEject(), hp.PresentCount())
	}
}

func TestResizeVCPUsWithFakeVCPUsShrinkLeavesRemovalsPending(t *testing.T) {
	cpus, hp := newFakeVCPUs(4), newTestCPUHotplug(t, 4, 4)
	ged := newTestGED(t, func() error { return nil })
	removing, err := resizeVCPUs(cpus, hp, ged, 4, 2)
	if err != nil || !removing || !hp.PendingEject() || ged.Pending() != hotplug.EventCPU {
		t.Errorf("removing %v err %v pending %v GED %#x", removing, err, hp.PendingEject(), ged.Pending())
	}
}
