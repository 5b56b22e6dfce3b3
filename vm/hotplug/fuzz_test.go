package hotplug

import (
	"encoding/binary"
	"testing"
)

// fuzzCPUOwner is a fake CPUOwner for FuzzHotplugRegisters: it checks that
// every eject the controller lets through was asked for, and never CPU 0.
type fuzzCPUOwner struct {
	t     *testing.T
	asked map[int]bool // removals asked and not ended
}

func (o *fuzzCPUOwner) EjectCPU(id int) {
	if id == 0 || !o.asked[id] {
		o.t.Fatalf("CPU %d ejected; asked: %v", id, o.asked)
	}
	delete(o.asked, id)
}
func (o *fuzzCPUOwner) EjectRefused(id int, _ uint32) { delete(o.asked, id) }
func (o *fuzzCPUOwner) EjectIgnored(id int) {
	if o.asked[id] && id != 0 {
		o.t.Fatalf("the eject of CPU %d, asked for, was refused", id)
	}
}

type nopPCIOwner struct{}

func (nopPCIOwner) EjectPCI(int, int) {}

// FuzzHotplugRegisters plays a guest writing and reading anything, at any
// offset and size, in the CPU, memory and PCI hot plug blocks and the GED,
// interleaved with the owner's requests, as a hostile guest could. Nothing
// panics; CPU 0 stays present; only CPUs the owner asked to remove are
// ejected; the counts stay within bounds; reads past a block are zero.
//
//	go test -run='^$' -fuzz=FuzzHotplugRegisters -fuzztime=10s ./vm/hotplug
func FuzzHotplugRegisters(f *testing.F) {
	f.Add(uint8(1), uint8(4), []byte{0, 0, 1, 4, 3, 0, 0, 0, 1, 4, 1, 8})
	f.Add(uint8(2), uint8(8), []byte{4, 1, 0, 0, 4, 3, 1, 4, 1, 8, 5, 0, 0, 0})
	f.Add(uint8(4), uint8(4), []byte{1, 0x18, 1, 2, 2, 8, 4, 1, 0, 0, 0, 0, 3, 0, 1, 0xff})
	f.Fuzz(func(t *testing.T, boot, max uint8, ops []byte) {
		maxCPUs := 1 + int(max)%32
		bootCPUs := 1 + int(boot)%maxCPUs
		owner := &fuzzCPUOwner{t: t, asked: map[int]bool{}}
		cpus, err := NewCPUHotplug(0, bootCPUs, maxCPUs, owner)
		if err != nil {
			t.Fatal(err)
		}
		mem, err := NewMemoryHotplug(0, 1+int(boot)%MaxMemorySlots)
		if err != nil {
			t.Fatal(err)
		}
		pci, err := NewPCIHotplug(0, 1+int(max)%MaxPCISegments, nopPCIOwner{})
		if err != nil {
			t.Fatal(err)
		}
		ged, err := NewGED(GEDConfig{Events: EventCPU | EventMemory | EventPCI | EventPowerButton}, IRQFunc(func() error { return nil }))
		if err != nil {
			t.Fatal(err)
		}
		type block interface {
			Read(uint64, []byte)
			Write(uint64, []byte)
		}
		blocks := []struct {
			b    block
			size uint64
		}{{cpus, CPUBlockSize}, {mem, MemoryBlockSize}, {pci, PCIBlockSize}, {ged, GEDSize}}
		inserted := map[int]bool{}
		for len(ops) >= 4 {
			op, off, size, arg := ops[0], uint64(ops[1]), 1<<(ops[2]%4), ops[3]
			ops = ops[4:]
			var val [8]byte
			n := copy(val[:size], ops)
			ops = ops[n:]
			switch op % 8 {
			case 0, 1, 2, 3: // the guest: a register access
				bl := blocks[op%4]
				if arg&1 == 0 {
					bl.b.Write(off, val[:size])
					break
				}
				bl.b.Read(off, val[:size])
				if off >= bl.size && binary.LittleEndian.Uint64(val[:]) != 0 {
					t.Fatalf("block %d: read % x at %#x, past its %#x bytes", op%4, val[:size], off, bl.size)
				}
			case 4: // the owner: add or remove a CPU
				id := int(arg) % maxCPUs
				if off&1 == 0 {
					if !cpus.Present(id) && cpus.SetInserting(id) == nil {
						inserted[id] = true
					}
				} else if cpus.SetRemoving(id) == nil {
					owner.asked[id] = true
				}
			case 5:
				for _, id := range cpus.CancelRemoves() {
					delete(owner.asked, id)
				}
				// The owner takes back only a CPU it inserted.
				if id := int(arg) % maxCPUs; inserted[id] {
					cpus.CancelInsert(id)
					delete(inserted, id)
				}
			case 6: // the owner: RAM and PCI slots
				if off&1 == 0 {
					if i, err := mem.AddSlot(uint64(arg)<<27, 1<<27); err == nil && arg&2 != 0 {
						mem.CancelInsert(i)
					}
				} else {
					_ = pci.SetInserting(int(arg)%pci.Segments(), int(off>>1)%32)
					_ = pci.SetRemoving(int(arg)%pci.Segments(), int(off>>2)%32)
				}
			case 7:
				_ = ged.Trigger(1 << (arg % 4))
			}
			if !cpus.Present(0) {
				t.Fatal("CPU 0 is no longer present")
			}
			if c := cpus.PresentCount(); c < 1 || c > maxCPUs {
				t.Fatalf("%d CPUs present of %d", c, maxCPUs)
			}
			if u := mem.Used(); u > mem.Slots() {
				t.Fatalf("%d memory slots used of %d", u, mem.Slots())
			}
		}
	})
}
