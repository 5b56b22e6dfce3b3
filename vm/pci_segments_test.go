package vm

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/vmmdev/vmm/kvm"
	"github.com/vmmdev/vmm/vm/bus"
	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/layout"
	"github.com/vmmdev/vmm/vm/pci"
)

// pciTestMachine is a machine with its buses and n PCI segments, and no
// KVM.
func pciTestMachine(t *testing.T, n int) *machine {
	t.Helper()
	m := &machine{cfg: config.Default(), log: nopLogger(), pioBus: bus.New("pio", nopLogger()), mmBus: bus.New("mmio", nopLogger())}
	if err := m.addPCI(n); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSeveralPCISegmentsEachWithItsHostBridgeECAMAndWindows(t *testing.T) {
	m := pciTestMachine(t, 3)
	if len(m.pci) != 3 {
		t.Fatalf("%d segments", len(m.pci))
	}
	for s, seg := range m.pci {
		c := seg.Config()
		if c.ID != uint16(s) || c.ConfigIO != (s == 0) {
			t.Errorf("segment %d: id %d, config ports %v", s, c.ID, c.ConfigIO)
		}
		// The host bridge answers at device 0 of each ECAM, through the
		// MMIO bus.
		var id [4]byte
		m.mmio(layout.PCIECAMStart+uint64(s)*layout.PCIECAMSegmentSize, id[:], false)
		if got := binary.LittleEndian.Uint32(id[:]); got != 0x0008_1b36 {
			t.Errorf("segment %d: host bridge ids %#x", s, got)
		}
		if c.Window32.Base != layout.PCIMMIO32Start+uint64(s)*16*layout.MiB || c.Window64.Size != layout.PCIMMIO64SegmentSize {
			t.Errorf("segment %d windows %+v %+v", s, c.Window32, c.Window64)
		}
		if e := m.mcfgEntries()[s]; e.Segment != uint16(s) || e.Base != c.ECAM || e.EndBus != 0 {
			t.Errorf("segment %d MCFG entry %+v", s, e)
		}
	}
	// Segment 0 also answers the legacy ports.
	var w [4]byte
	binary.LittleEndian.PutUint32(w[:], 0x8000_0000)
	m.pio(layout.PCIConfigIOPort, w[:], true)
	m.pio(layout.PCIConfigIOPort+4, w[:], false)
	if got := binary.LittleEndian.Uint32(w[:]); got != 0x0008_1b36 {
		t.Errorf("host bridge through 0xcfc: %#x", got)
	}
	if pci.ECAMSize != layout.PCIECAMSegmentSize {
		t.Errorf("the layout's ECAM per segment (%#x) is not the segment's (%#x)", layout.PCIECAMSegmentSize, pci.ECAMSize)
	}
	if m := (&machine{cfg: config.Default(), log: nopLogger(), pioBus: bus.New("pio", nil), mmBus: bus.New("mmio", nil)}); m.addPCI(layout.PCISegmentsMax+1) == nil {
		t.Errorf("%d segments accepted", layout.PCISegmentsMax+1)
	}
}

func TestDevicePlacementsNameAndNumberTheDevicesInConfigOrder(t *testing.T) {
	cfg := config.Default()
	cfg.Disks = []config.Disk{{Path: "a"}, {Path: "b"}}
	cfg.Net = []config.Net{{}}
	cfg.RNG = &config.RNG{}
	cfg.Vsock = &config.Vsock{CID: 3, Socket: "/v.sock"}
	got, err := devicePlacements(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"disk _disk0 at 0000:00:01.0", "disk _disk1 at 0000:00:02.0", "net _net2 at 0000:00:03.0", "rng __rng at 0000:00:04.0",
		"vsock _vsock3 at 0000:00:05.0"}
	if len(got) != len(want) {
		t.Fatalf("placements %v", got)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("device %d: %s, want %s", i, got[i], want[i])
		}
	}
	again, _ := devicePlacements(&cfg)
	if fmt.Sprint(again) != fmt.Sprint(got) {
		t.Error("placements differ for the same configuration")
	}
	cfg.Vsock.ID = "_disk1"
	if _, err := devicePlacements(&cfg); err == nil {
		t.Error("a vsock id taken by a disk accepted")
	}
	cfg.Vsock.ID, cfg.Vsock.PCISegment = "vs", 1
	if _, err := devicePlacements(&cfg); err == nil {
		t.Error("a vsock on a PCI segment the VM does not have accepted")
	}
	cfg.Vsock = nil
	cfg.Disks = make([]config.Disk, layout.PCIDevicesPerBus)
	if _, err := devicePlacements(&cfg); err == nil {
		t.Error("32 disks placed on one segment")
	}
}

func TestPCIWindowsMustFitTheGuestsPhysicalAddresses(t *testing.T) {
	m := &machine{cfg: config.Default(), log: nopLogger(), pioBus: bus.New("pio", nil), mmBus: bus.New("mmio", nil),
		deps: machineDeps{cpuid: []kvm.CPUIDEntry{{Function: 0x8000_0008, EAX: 36}}}}
	m.cfg.Memory.HotplugSize = 64 * layout.GiB
	if err := m.addPCI(1); err == nil || !strings.Contains(err.Error(), "36-bit physical addresses") {
		t.Errorf("windows past 64 GiB on a 36-bit guest: %v", err)
	}
	m.deps.cpuid[0].EAX = 40
	if err := m.addPCI(1); err != nil {
		t.Errorf("on a 40-bit guest: %v", err)
	}
}

func TestDevicePlacementsTakeTheGivenIDSegmentAndDeviceNumber(t *testing.T) {
	five := uint8(5)
	cfg := config.Default()
	cfg.Platform = &config.Platform{NumPCISegments: 2}
	cfg.Disks = []config.Disk{{Path: "a", PCIDevice: config.PCIDevice{ID: "root", PCIDeviceID: &five}}, {Path: "b"}}
	cfg.Net = []config.Net{{PCIDevice: config.PCIDevice{PCISegment: 1}}}
	got, err := devicePlacements(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := "[disk root at 0000:00:05.0 disk _disk0 at 0000:00:01.0 net _net1 at 0001:00:01.0]"
	if fmt.Sprint(got) != want {
		t.Errorf("placements %v, want %s", got, want)
	}
	for _, tc := range []struct {
		name   string
		change func(*config.VM)
		want   string
	}{
		{"a segment beyond num_pci_segments", func(c *config.VM) { c.Net[0].PCISegment = 2 }, "pci_segment=2: the VM has 2 PCI segments"},
		{"the host bridge's device number", func(c *config.VM) { zero := uint8(0); c.Disks[1].PCIDeviceID = &zero }, "pci_device_id=0: want 1 to 31"},
		{"a device number taken twice", func(c *config.VM) { c.Disks[1].PCIDeviceID = &five }, "pci_device_id=5 is taken on segment 0"},
		{"an id given twice", func(c *config.VM) { c.Disks[1].ID = "root" }, `id "root" is used by another device`},
		{"a queue size that is no power of two", func(c *config.VM) { c.Disks[1].QueueSize = 100 }, "queue_size=100: want a power of two"},
		{"too many queues", func(c *config.VM) { c.Disks[1].NumQueues = 65 }, "num_queues=65: want 1 to 64"},
	} {
		c := cfg
		c.Disks = slices.Clone(cfg.Disks)
		c.Net = slices.Clone(cfg.Net)
		tc.change(&c)
		if _, err := devicePlacements(&c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
