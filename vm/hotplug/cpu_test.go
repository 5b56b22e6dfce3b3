package hotplug

import (
	"sync"
	"testing"
)

func newTestCPUs(t *testing.T, boot, max int) (*CPUHotplug, *fakeOwner) {
	t.Helper()
	owner := &fakeOwner{}
	c, err := NewCPUHotplug(testCPUBase, boot, max, owner)
	if err != nil {
		t.Fatal(err)
	}
	return c, owner
}

// cpuStatus selects id the way the AML does (a dword write) and reads the
// status byte.
func cpuStatus(c *CPUHotplug, id uint32) byte {
	c.Write(CPUSelectOffset, []byte{byte(id), byte(id >> 8), byte(id >> 16), byte(id >> 24)})
	var b [1]byte
	c.Read(CPUStatusOffset, b[:])
	return b[0]
}

// cpuWriteStatus selects id and writes the status byte, as a WriteAsZeros
// byte field write does: only the bit written is set.
func cpuWriteStatus(c *CPUHotplug, id uint32, bit byte) {
	c.Write(CPUSelectOffset, []byte{byte(id), byte(id >> 8), byte(id >> 16), byte(id >> 24)})
	c.Write(CPUStatusOffset, []byte{bit})
}

// guestCPUScan does what \_SB.CPUS.CSCN does and returns the CPUs it
// notified for insertion (1) and for an eject request (3).
func guestCPUScan(c *CPUHotplug) (inserted, removing []int) {
	for id := 0; id < c.MaxCPUs(); id++ {
		st := cpuStatus(c, uint32(id))
		if st&CPUInserting != 0 {
			inserted = append(inserted, id)
			cpuWriteStatus(c, uint32(id), CPUInserting)
		}
		if st&CPURemoving != 0 {
			removing = append(removing, id)
			cpuWriteStatus(c, uint32(id), CPURemoving)
		}
	}
	return inserted, removing
}

func TestCPUHotplugBootCPUsArePresentAndTheOthersAbsent(t *testing.T) {
	c, _ := newTestCPUs(t, 4, 8)
	for id := 0; id < 8; id++ {
		want := byte(0)
		if id < 4 {
			want = CPUEnabled
		}
		if got := cpuStatus(c, uint32(id)); got != want {
			t.Errorf("CPU %d status %#x, want %#x", id, got, want)
		}
		if c.Present(id) != (id < 4) {
			t.Errorf("CPU %d: Present() = %v", id, c.Present(id))
		}
	}
	if c.PendingEject() {
		t.Error("eject pending at boot")
	}
}

func TestCPUHotplugWithFakeOwnerInsertIsNotifiedOnceAndAcknowledged(t *testing.T) {
	c, owner := newTestCPUs(t, 4, 8)
	if err := c.SetInserting(5); err != nil {
		t.Fatal(err)
	}
	if got := cpuStatus(c, 5); got != CPUEnabled|CPUInserting {
		t.Errorf("status %#x, want enabled and inserting", got)
	}
	ins, rem := guestCPUScan(c)
	if len(ins) != 1 || ins[0] != 5 || len(rem) != 0 {
		t.Errorf("scan notified inserted %v removing %v, want [5] []", ins, rem)
	}
	if got := cpuStatus(c, 5); got != CPUEnabled {
		t.Errorf("status %#x after the acknowledgement, want enabled only", got)
	}
	if ins, _ := guestCPUScan(c); len(ins) != 0 {
		t.Errorf("second scan notified %v again", ins)
	}
	if err := c.SetInserting(5); err != nil || cpuStatus(c, 5) != CPUEnabled {
		t.Errorf("inserting a present CPU: err %v, status %#x; want a no-op", err, cpuStatus(c, 5))
	}
	if len(owner.ejected) != 0 {
		t.Errorf("ejected %v", owner.ejected)
	}
}

// TestCPUHotplugWithFakeOwnerEjectAfterTheScanAcknowledgedTheRemoval is the
// race Cloud Hypervisor once lost: the scan clears the removing bit before
// the guest's _EJ0 runs, and the eject must still happen.
func TestCPUHotplugWithFakeOwnerEjectAfterTheScanAcknowledgedTheRemoval(t *testing.T) {
	c, owner := newTestCPUs(t, 4, 8)
	if err := c.SetRemoving(3); err != nil {
		t.Fatal(err)
	}
	if !c.PendingEject() {
		t.Error("no eject pending after SetRemoving")
	}
	if _, rem := guestCPUScan(c); len(rem) != 1 || rem[0] != 3 {
		t.Fatalf("scan asked to eject %v, want [3]", rem)
	}
	if got := cpuStatus(c, 3); got != CPUEnabled {
		t.Fatalf("status %#x after the acknowledgement, want enabled only", got)
	}
	if !c.PendingEject() {
		t.Error("the acknowledgement ended the pending eject")
	}
	cpuWriteStatus(c, 3, CPUEject) // _EJ0
	if len(owner.ejected) != 1 || owner.ejected[0] != 3 {
		t.Fatalf("owner ejected %v, want [3]", owner.ejected)
	}
	if got := cpuStatus(c, 3); got != 0 {
		t.Errorf("_STA right after _EJ0 would see status %#x, want 0", got)
	}
	if c.Present(3) || c.PendingEject() {
		t.Errorf("present %v pending %v after the eject", c.Present(3), c.PendingEject())
	}
	// The CPU can come back.
	if err := c.SetInserting(3); err != nil {
		t.Fatal(err)
	}
	if ins, _ := guestCPUScan(c); len(ins) != 1 || ins[0] != 3 {
		t.Errorf("re-insert notified %v", ins)
	}
}

func TestCPUHotplugWithFakeOwnerEjectOfAnAbsentCPUIsIgnored(t *testing.T) {
	c, owner := newTestCPUs(t, 4, 8)
	cpuWriteStatus(c, 6, CPUEject)
	cpuWriteStatus(c, 100, CPUEject)
	if len(owner.ejected) != 0 {
		t.Errorf("ejected %v", owner.ejected)
	}
}

// TestCPUHotplugWithFakeOwnerEjectNotAskedForIsRefusedAndReannounced: the
// guest's own eject of a CPU nobody asked to remove, and any eject of CPU 0
// (even one asked for), are refused as Cloud Hypervisor refuses them; the
// CPU stays present and the guest's next scan is told to insert it again.
func TestCPUHotplugWithFakeOwnerEjectNotAskedForIsRefusedAndReannounced(t *testing.T) {
	c, owner := newTestCPUs(t, 4, 8)
	cpuWriteStatus(c, 2, CPUEject)
	if err := c.SetRemoving(0); err != nil {
		t.Fatal(err)
	}
	cpuWriteStatus(c, 0, CPUEject)
	if len(owner.ejected) != 0 {
		t.Errorf("ejected %v, want none", owner.ejected)
	}
	if len(owner.ignored) != 2 || owner.ignored[0] != 2 || owner.ignored[1] != 0 {
		t.Errorf("owner told of ignored ejects %v, want [2 0]", owner.ignored)
	}
	if !c.Present(2) || !c.Present(0) || c.PresentCount() != 4 || c.PendingEject() {
		t.Errorf("present 0:%v 2:%v count %d pending %v, want 4 present, none pending",
			c.Present(0), c.Present(2), c.PresentCount(), c.PendingEject())
	}
	if ins, rem := guestCPUScan(c); len(ins) != 2 || ins[0] != 0 || ins[1] != 2 || len(rem) != 0 {
		t.Errorf("next scan inserted %v removed %v, want [0 2] and none", ins, rem)
	}
}

// TestCPUHotplugWithFakeOwnerEjectAfterCancelRemovesIsRefused: a removal
// the owner withdrew is no longer asked for.
func TestCPUHotplugWithFakeOwnerEjectAfterCancelRemovesIsRefused(t *testing.T) {
	c, owner := newTestCPUs(t, 4, 8)
	if err := c.SetRemoving(3); err != nil {
		t.Fatal(err)
	}
	c.CancelRemoves()
	cpuWriteStatus(c, 3, CPUEject)
	if len(owner.ejected) != 0 || len(owner.ignored) != 1 || !c.Present(3) {
		t.Errorf("ejected %v ignored %v present %v", owner.ejected, owner.ignored, c.Present(3))
	}
}

func TestCPUHotplugRefusesConflictingRequests(t *testing.T) {
	c, _ := newTestCPUs(t, 4, 8)
	if err := c.SetRemoving(6); err == nil {
		t.Error("removing an absent CPU succeeded")
	}
	for _, id := range []int{-1, 8} {
		if c.SetInserting(id) == nil || c.SetRemoving(id) == nil || c.Present(id) {
			t.Errorf("CPU %d out of range accepted", id)
		}
	}
	if err := c.SetRemoving(1); err != nil {
		t.Fatal(err)
	}
	if err := c.SetRemoving(1); err != nil {
		t.Errorf("asking again: %v", err)
	}
	if err := c.SetInserting(1); err == nil {
		t.Error("inserting a CPU whose removal is pending succeeded")
	}
	for _, bad := range [][2]int{{-1, 4}, {5, 4}, {0, 0}, {1, 256}} {
		if _, err := NewCPUHotplug(0, bad[0], bad[1], &fakeOwner{}); err == nil {
			t.Errorf("NewCPUHotplug(boot=%d, max=%d) succeeded", bad[0], bad[1])
		}
	}
	if _, err := NewCPUHotplug(0, 1, 1, nil); err == nil {
		t.Error("NewCPUHotplug without an owner succeeded")
	}
}

func TestCPUHotplugRegistersTakeAnyAccessSize(t *testing.T) {
	c, _ := newTestCPUs(t, 4, 255)
	// Byte-wise selector writes of 0x12b, beyond the last CPU.
	c.Write(CPUSelectOffset, []byte{0x2b})
	c.Write(CPUSelectOffset+1, []byte{0x01})
	if got := readU32(c, CPUSelectOffset); got != 0x12b {
		t.Errorf("selector %#x, want 0x12b", got)
	}
	var st [1]byte
	c.Read(CPUStatusOffset, st[:])
	c.Write(CPUStatusOffset, []byte{CPUEject | CPUInserting})
	if st[0] != 0 {
		t.Errorf("status of CPU 0x12b (of 255) %#x", st[0])
	}
	// A word write selecting CPU 254, then an 8-byte read of the block.
	c.Write(CPUSelectOffset, []byte{0xfe, 0})
	if err := c.SetInserting(254); err != nil {
		t.Fatal(err)
	}
	var q [8]byte
	c.Read(0, q[:])
	if q != [8]byte{0xfe, 0, 0, 0, CPUEnabled | CPUInserting, 0, 0, 0} {
		t.Errorf("8-byte read % x", q)
	}
	// An 8-byte write selecting CPU 0 and acknowledging nothing.
	c.Write(0, []byte{0, 0, 0, 0, 0, 0, 0, 0})
	if cpuStatus(c, 254) != CPUEnabled|CPUInserting {
		t.Error("a write of zeros acknowledged something")
	}
	var b [2]byte
	c.Read(CPUBlockSize, b[:]) // past the block
	if b != [2]byte{} {
		t.Errorf("read past the block: % x", b)
	}
}

// callbackEjector calls back into the controller from EjectCPU, as an
// owner checking its state would; a lock held across the call would
// deadlock.
type callbackEjector struct {
	c       *CPUHotplug
	present []bool
}

func (f *callbackEjector) EjectCPU(id int) { f.present = append(f.present, f.c.Present(id)) }
func (f *callbackEjector) EjectRefused(id int, _ uint32) {
	f.present = append(f.present, f.c.Present(id))
}
func (f *callbackEjector) EjectIgnored(id int) { f.present = append(f.present, f.c.Present(id)) }

func TestCPUHotplugWithFakeOwnerEjectCallbackMayCallBack(t *testing.T) {
	owner := &callbackEjector{}
	c, err := NewCPUHotplug(testCPUBase, 2, 2, owner)
	if err != nil {
		t.Fatal(err)
	}
	owner.c = c
	if err := c.SetRemoving(1); err != nil {
		t.Fatal(err)
	}
	cpuWriteStatus(c, 1, CPUEject)
	cpuWriteStatus(c, 0, CPUEject)
	if len(owner.present) != 2 || owner.present[0] || !owner.present[1] {
		t.Errorf("owner saw present=%v during EjectCPU and EjectIgnored, want [false true]", owner.present)
	}
}

func TestCPUHotplugWithFakeOwnerIsSafeForConcurrentUse(t *testing.T) {
	c, _ := newTestCPUs(t, 1, 16)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				id := 1 + (i+g)%15
				_ = c.SetInserting(id)
				guestCPUScan(c)
				_ = c.SetRemoving(id)
				_ = c.PendingEject()
			}
		}()
	}
	wg.Wait()
}

func TestCPUHotplugStartsWithTheBootCPUsPresentAndNothingPending(t *testing.T) {
	c, _ := newTestCPUs(t, 3, 4)
	for id, want := range []bool{true, true, true, false} {
		if c.Present(id) != want {
			t.Errorf("CPU %d present %v with 3 boot CPUs", id, c.Present(id))
		}
		if st := cpuStatus(c, uint32(id)); st&(CPUInserting|CPURemoving) != 0 {
			t.Errorf("CPU %d status %#x: an event pending at boot", id, st)
		}
	}
	if c.PendingEject() {
		t.Error("eject pending at boot")
	}
}

func TestCPUHotplugWithFakeOwnerCancelRemovesEndsEveryPendingEject(t *testing.T) {
	c, owner := newTestCPUs(t, 4, 4)
	for _, id := range []int{3, 1} {
		if err := c.SetRemoving(id); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.CancelRemoves(); len(got) != 2 || got[0] != 1 || got[1] != 3 {
		t.Errorf("CancelRemoves() = %v, want [1 3]", got)
	}
	if c.PendingEject() || c.PresentCount() != 4 || cpuStatus(c, 3) != CPUEnabled {
		t.Errorf("after CancelRemoves: pending %v present %d status %#x", c.PendingEject(), c.PresentCount(), cpuStatus(c, 3))
	}
	if _, rem := guestCPUScan(c); len(rem) != 0 {
		t.Errorf("scan still asked to eject %v", rem)
	}
	if got := c.CancelRemoves(); len(got) != 0 {
		t.Errorf("second CancelRemoves() = %v", got)
	}
	if len(owner.ejected) != 0 {
		t.Errorf("ejected %v", owner.ejected)
	}
}

// cpuOST does what the AML's COST does for a CPU's _OST(event, status):
// select, write the event, write the status, each a dword.
func cpuOST(c *CPUHotplug, id, event, status uint32) {
	le := func(v uint32) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)} }
	c.Write(CPUSelectOffset, le(id))
	c.Write(CPUOSTEventOffset, le(event))
	c.Write(CPUOSTStatusOffset, le(status))
}

func TestCPUHotplugWithFakeOwnerOSTFailureWithdrawsThePendingRemoval(t *testing.T) {
	for _, tc := range []struct {
		name        string
		event, code uint32
		refused     bool
	}{
		{"eject request refused: eject not supported (sysfs enabled=0)", OSTEjectRequest, 0x80, true},
		{"eject request refused: device busy", OSTEjectRequest, 0x82, true},
		{"eject request failed: non-specific failure", OSTEjectRequest, 0x01, true},
		{"eject in progress is not an answer", OSTEjectRequest, OSTEjectInProgress, false},
		{"eject succeeded", OSTEjectRequest, OSTSuccess, false},
		{"an OSPM eject that failed", OSTOSPMEject, 0x82, true},
		{"a device check report is ignored", 0x01, 0x01, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, owner := newTestCPUs(t, 4, 8)
			if err := c.SetRemoving(3); err != nil {
				t.Fatal(err)
			}
			guestCPUScan(c)
			cpuOST(c, 3, tc.event, tc.code)
			if tc.refused {
				if c.PendingEject() || !c.Present(3) || len(owner.refused) != 1 || owner.refused[0] != 3 || owner.codes[0] != tc.code {
					t.Errorf("pending %v present %v refused %v codes %#x", c.PendingEject(), c.Present(3), owner.refused, owner.codes)
				}
				return
			}
			if !c.PendingEject() || len(owner.refused) != 0 {
				t.Errorf("pending %v refused %v", c.PendingEject(), owner.refused)
			}
		})
	}
}

func TestCPUHotplugWithFakeOwnerOSTFailureWithNothingPendingChangesNothing(t *testing.T) {
	c, owner := newTestCPUs(t, 4, 8)
	cpuOST(c, 2, OSTOSPMEject, 0x82)   // the guest's own eject of CPU 2 failed
	cpuOST(c, 200, OSTEjectRequest, 1) // out of range
	if c.PresentCount() != 4 || c.PendingEject() || len(owner.refused) != 0 {
		t.Errorf("present %d pending %v refused %v", c.PresentCount(), c.PendingEject(), owner.refused)
	}
}

func TestSharedSkeletonMatchesBothRegisterLayouts(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want uint64
	}{
		{"CPUSelectOffset", CPUSelectOffset, selectorOffset},
		{"MemorySelectOffset", MemorySelectOffset, selectorOffset},
		{"CPUEnabled", CPUEnabled, statusEnabled},
		{"MemoryEnabled", MemoryEnabled, statusEnabled},
		{"CPUInserting", CPUInserting, statusInserting},
		{"MemoryInserting", MemoryInserting, statusInserting},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %#x, the skeleton's %#x", tc.name, tc.got, tc.want)
		}
	}
}
