package layout

import "testing"

func TestHotplugRAMStartIsAlignedAndAtOrAbove4GiB(t *testing.T) {
	for _, c := range []struct {
		boot, want uint64
	}{
		{1 * GiB, 4 * GiB},
		{LowRAMEnd, 4 * GiB},
		{4 * GiB, 5 * GiB},
		{LowRAMEnd + 1*MiB, 4*GiB + 128*MiB},
		{LowRAMEnd + 129*MiB, 4*GiB + 256*MiB},
	} {
		if got := HotplugRAMStart(c.boot); got != c.want {
			t.Errorf("HotplugRAMStart(%#x) = %#x, want %#x", c.boot, got, c.want)
		}
	}
}

func TestDeviceWindowHoldsItsBlocksBelowTheIOAPIC(t *testing.T) {
	end := uint64(VirtioMMIOStart + VirtioMMIOMax*VirtioMMIOStride)
	if end > DeviceWindowEnd || DeviceWindowEnd > IOAPICStart || DeviceWindowStart < LowRAMEnd {
		t.Errorf("device window %#x..%#x (virtio to %#x) collides", DeviceWindowStart, DeviceWindowEnd, end)
	}
	blocks := []uint64{GEDStart, CPUHotplugStart, MemoryHotplugStart, VirtioMMIOStart}
	for i := 1; i < len(blocks); i++ {
		if blocks[i] < blocks[i-1]+PageSize {
			t.Errorf("block %d at %#x overlaps the one before", i, blocks[i])
		}
	}
	if IdentityMapStart < LAPICStart+LAPICSize || TSSStart+3*PageSize > 1<<32 {
		t.Error("KVM's private pages collide")
	}
}

func TestBootGDTAndIDTDoNotOverlap(t *testing.T) {
	// The GDT (null, null, code, data, TSS) is 5 descriptors of 8 bytes;
	// the IDT is one empty 8-byte gate.
	if GDTStart+5*8 > IDTStart || IDTStart+8 > ZeroPageStart {
		t.Errorf("GDT at %#x, IDT at %#x collide", GDTStart, IDTStart)
	}
}

func TestPVHStructuresStayInTheZeroPagesPage(t *testing.T) {
	// Sizes from xen/include/public/arch-x86/hvm/start_info.h: struct
	// hvm_start_info is 56 bytes, hvm_modlist_entry 32, hvm_memmap_table_entry 24.
	if PVHStartInfoStart+56 > PVHModlistStart || PVHModlistStart+32 > PVHMemmapStart {
		t.Errorf("start info %#x, module list %#x, memory map %#x overlap", PVHStartInfoStart, PVHModlistStart, PVHMemmapStart)
	}
	end := PVHMemmapStart + PVHMemmapMax*24
	if end > ZeroPageStart+PageSize || ZeroPageStart+PageSize > BootStackTop || PVHStartInfoStart < IDTStart+8 {
		t.Errorf("PVH structures %#x..%#x leave the zero page's page", PVHStartInfoStart, end)
	}
}

func TestPCIAreasStayOutOfRAMAndTheOtherDevices(t *testing.T) {
	mmio32End := uint64(PCIMMIO32Start + PCISegmentsMax*PCIMMIO32SegmentSize)
	if PCIMMIO32Start < LowRAMEnd || mmio32End > DeviceWindowStart {
		t.Errorf("32-bit BAR windows %#x..%#x leave the hole below the device window", PCIMMIO32Start, mmio32End)
	}
	virtioEnd := uint64(VirtioMMIOStart + VirtioMMIOMax*VirtioMMIOStride)
	if PCIECAMStart < virtioEnd || PCIECAMStart+PCIECAMSize > DeviceWindowEnd {
		t.Errorf("ECAM %#x+%#x collides with the device window's blocks", PCIECAMStart, PCIECAMSize)
	}
	if PCIECAMSegmentSize != PCIDevicesPerBus*8*4*KiB || PCIECAMStart%PCIECAMSegmentSize != 0 {
		t.Errorf("ECAM segment of %#x bytes at %#x: want bus 0's 32 devices x 8 functions x 4 KiB, aligned", PCIECAMSegmentSize, PCIECAMStart)
	}
	if PCIMMIO32SegmentSize != 16*MiB {
		t.Errorf("32-bit window per segment %#x, want 16 MiB", PCIMMIO32SegmentSize)
	}
	for _, c := range []struct{ boot, hotplug, want uint64 }{
		{512 * MiB, 0, 4 * GiB},
		{1 * GiB, 8 * GiB, 12 * GiB},
		{4 * GiB, 128 * MiB, 6 * GiB},
	} {
		if got := PCIMMIO64Start(c.boot, c.hotplug); got != c.want {
			t.Errorf("PCIMMIO64Start(%#x, %#x) = %#x, want %#x", c.boot, c.hotplug, got, c.want)
		}
	}
	if MSIGSIStart < IOAPICPins || MSIGSIEnd > 4096 {
		t.Errorf("MSI GSIs %d..%d overlap the IOAPIC's or exceed KVM's routes", MSIGSIStart, MSIGSIEnd)
	}
}
