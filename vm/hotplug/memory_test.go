package hotplug

import (
	"errors"
	"testing"
)

// memSelect selects slot i as the AML does.
func memSelect(m *MemoryHotplug, i uint32) {
	m.Write(MemorySelectOffset, []byte{byte(i), byte(i >> 8), byte(i >> 16), byte(i >> 24)})
}

// memStatus selects slot i and reads its status byte.
func memStatus(m *MemoryHotplug, i uint32) byte {
	memSelect(m, i)
	var b [1]byte
	m.Read(MemoryStatusOffset, b[:])
	return b[0]
}

// guestMemoryRange selects slot i and reads base and length as the AML
// does: dword halves, low first.
func guestMemoryRange(m *MemoryHotplug, i uint32) (base, length uint64) {
	memSelect(m, i)
	base = uint64(readU32(m, MemoryBaseOffset)) | uint64(readU32(m, MemoryBaseOffset+4))<<32
	length = uint64(readU32(m, MemoryLengthOffset)) | uint64(readU32(m, MemoryLengthOffset+4))<<32
	return base, length
}

// guestMemoryScan does what \_SB.MHPC.MSCN does and returns the slots it
// notified: it follows MNXT, acknowledging each slot it names.
func guestMemoryScan(m *MemoryHotplug) []int {
	var notified []int
	for i := readU32(m, MemoryNextOffset); int(i) < m.Slots(); i = readU32(m, MemoryNextOffset) {
		notified = append(notified, int(i))
		memSelect(m, i)
		m.Write(MemoryStatusOffset, []byte{MemoryInserting})
		if len(notified) > m.Slots() {
			panic("MNXT names a slot again after its acknowledgement")
		}
	}
	return notified
}

func TestMemoryHotplugAddSlotIsScannedWithItsRange(t *testing.T) {
	m, err := NewMemoryHotplug(testMemBase, 64)
	if err != nil {
		t.Fatal(err)
	}
	const base, size = 0x1_4000_0000, 0x800_0000
	for want := 0; want < 2; want++ {
		i, err := m.AddSlot(base+uint64(want)*size, size)
		if err != nil || i != want {
			t.Fatalf("AddSlot: slot %d err %v, want slot %d", i, err, want)
		}
	}
	if got := memStatus(m, 1); got != MemoryEnabled|MemoryInserting {
		t.Errorf("status %#x, want enabled and inserting", got)
	}
	if got := guestMemoryScan(m); len(got) != 2 || got[0] != 0 || got[1] != 1 {
		t.Errorf("scan notified %v, want [0 1]", got)
	}
	if got := memStatus(m, 1); got != MemoryEnabled {
		t.Errorf("status %#x after the acknowledgement, want enabled", got)
	}
	if got := guestMemoryScan(m); len(got) != 0 {
		t.Errorf("second scan notified %v", got)
	}
	if b, l := guestMemoryRange(m, 1); b != base+size || l != size {
		t.Errorf("slot 1 range %#x+%#x", b, l)
	}
	// A qword read gets the whole base.
	var q [8]byte
	m.Read(MemoryBaseOffset, q[:])
	if q != [8]byte{0, 0, 0, 0x48, 1, 0, 0, 0} {
		t.Errorf("qword base read % x", q)
	}
	if b, l := guestMemoryRange(m, 2); b != 0 || l != 0 || memStatus(m, 2) != 0 {
		t.Errorf("empty slot reads %#x+%#x status %#x", b, l, memStatus(m, 2))
	}
	if m.Used() != 2 {
		t.Errorf("%d slots used", m.Used())
	}
}

func TestMemoryHotplugAddSlotFailsWhenFull(t *testing.T) {
	m, err := NewMemoryHotplug(testMemBase, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := m.AddSlot(uint64(i+1)<<32, 1<<27); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.AddSlot(3<<32, 1<<27); !errors.Is(err, ErrNoFreeSlot) {
		t.Errorf("got %v, want ErrNoFreeSlot", err)
	}
}

func TestMemoryHotplugRefusesBadInput(t *testing.T) {
	m, err := NewMemoryHotplug(testMemBase, 4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.AddSlot(1<<32, 0); err == nil {
		t.Error("empty range accepted")
	}
	if _, err := m.AddSlot(1<<63|1<<62, 1<<63); err == nil {
		t.Error("wrapping range accepted")
	}
	for _, n := range []int{0, -1, MaxMemorySlots + 1} {
		if _, err := NewMemoryHotplug(0, n); err == nil {
			t.Errorf("%d slots accepted", n)
		}
	}
	// Writes to read-only registers and out-of-range slots change nothing.
	if _, err := m.AddSlot(1<<32, 1<<27); err != nil {
		t.Fatal(err)
	}
	memSelect(m, 0)
	m.Write(MemoryBaseOffset, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	m.Write(MemoryStatusOffset, []byte{MemoryEnabled})
	if b, l := guestMemoryRange(m, 0); b != 1<<32 || l != 1<<27 || memStatus(m, 0) != MemoryEnabled|MemoryInserting {
		t.Errorf("slot 0 changed by writes: %#x+%#x status %#x", b, l, memStatus(m, 0))
	}
	memSelect(m, 9)
	m.Write(MemoryStatusOffset, []byte{MemoryInserting})
	if memStatus(m, 9) != 0 {
		t.Error("slot 9 of 4 has a status")
	}
}

func TestMemoryNextNamesTheLowestUnacknowledgedSlotThenTheSlotCount(t *testing.T) {
	m, err := NewMemoryHotplug(testMemBase, 64)
	if err != nil {
		t.Fatal(err)
	}
	if got := readU32(m, MemoryNextOffset); got != 64 {
		t.Fatalf("MNXT with nothing pending = %d, want the slot count 64", got)
	}
	for i := range 3 {
		if _, err := m.AddSlot(0x1_4000_0000+uint64(i)<<27, 1<<27); err != nil {
			t.Fatal(err)
		}
	}
	memSelect(m, 1)
	m.Write(MemoryStatusOffset, []byte{MemoryInserting})
	if got := readU32(m, MemoryNextOffset); got != 0 {
		t.Errorf("MNXT = %d, want 0 (slot 1 acknowledged out of order)", got)
	}
	if got := guestMemoryScan(m); len(got) != 2 || got[0] != 0 || got[1] != 2 {
		t.Errorf("scan notified %v, want [0 2]", got)
	}
	if got := readU32(m, MemoryNextOffset); got != 64 {
		t.Errorf("MNXT after the scan = %d, want 64", got)
	}
}
