package vm

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vmmdev/vmm/kvm"
	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/layout"
)

// testMachineDeps are machine dependencies on this host's KVM, or a skip.
func testMachineDeps(t *testing.T) machineDeps {
	t.Helper()
	sys, err := kvm.Open(kvm.DevicePath)
	if err != nil {
		t.Skipf("no KVM: %v", err)
	}
	t.Cleanup(func() { sys.Close() })
	cpuid, err := sys.SupportedCPUID()
	if err != nil {
		t.Skip(err)
	}
	return machineDeps{sys: sys, cpuid: cpuid, serialOut: os.Stderr, log: nopLogger(),
		events: make(chan machineEvent, 4), firstRun: func() {}}
}

// virtioMagic is what a virtio-mmio register block's MagicValue reads: "virt".
const virtioMagic = 0x74726976

func TestMachinePlacesVirtioDevicesInOrderAndWritesTheTapBack(t *testing.T) {
	for _, transport := range []VirtioTransport{TransportPCI, TransportMMIO} {
		t.Run(string(transport), func(t *testing.T) { testMachinePlacesVirtioDevices(t, transport) })
	}
}

func testMachinePlacesVirtioDevices(t *testing.T, transport VirtioTransport) {
	kernel, _ := cachedGuest(t)
	deps := testMachineDeps(t)
	deps.transport = transport
	disk := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Payload.Kernel = kernel
	cfg.Disks = []config.Disk{{Path: disk}, {Path: disk, Readonly: true}}
	cfg.RNG = &config.RNG{Src: config.DefaultRNGSource}
	cfg.Vsock = &config.Vsock{CID: 3, Socket: filepath.Join(t.TempDir(), "v.sock")}
	withNet := true
	if f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0); err != nil {
		t.Logf("no net device: %v", err)
		withNet = false
	} else {
		f.Close()
		cfg.Net = []config.Net{{}}
	}
	caller := cfg.Net

	m, err := newMachine(cfg, deps)
	if err != nil {
		if withNet && strings.Contains(err.Error(), "net") {
			t.Skipf("no tap here: %v", err)
		}
		t.Fatal(err)
	}
	kinds := []string{"virtio-blk", "virtio-blk", "virtio-net", "virtio-rng", "virtio-vsock"}
	ids := []string{"_disk0", "_disk1", "_net2", "__rng", "_vsock3"}
	pciIDs := []uint32{0x1042_1af4, 0x1042_1af4, 0x1041_1af4, 0x1044_1af4, 0x1053_1af4}
	if !withNet {
		kinds = slices.Delete(kinds, 2, 3)
		ids = []string{"_disk0", "_disk1", "__rng", "_vsock2"}
		pciIDs = slices.Delete(pciIDs, 2, 3)
	}
	if len(m.virtio) != len(kinds) {
		t.Fatalf("%d virtio devices, want %d", len(m.virtio), len(kinds))
	}
	for i, vd := range m.virtio {
		if got := vd.t.Device().Kind(); got != kinds[i] || vd.p.id != ids[i] {
			t.Errorf("device %d is %s %s, want %s %s", i, got, vd.p.id, kinds[i], ids[i])
		}
		var id [4]byte
		if transport == TransportMMIO {
			base := layout.VirtioMMIOStart + uint64(i)*layout.VirtioMMIOStride
			if vd.mmio.Base() != base || vd.mmio.GSI() != uint32(layout.VirtioIRQStart+i) {
				t.Errorf("device %d at %#x GSI %d, want %#x GSI %d", i, vd.mmio.Base(), vd.mmio.GSI(), base, layout.VirtioIRQStart+i)
			}
			m.mmio(base, id[:], false)
			if got := binary.LittleEndian.Uint32(id[:]); got != virtioMagic {
				t.Errorf("device %d: MagicValue %#x through the MMIO bus, want %#x", i, got, virtioMagic)
			}
			continue
		}
		// On PCI: device i+1 of segment 0, its ids through the ECAM.
		if bdf := vd.pci.Function().BDF().String(); bdf != fmt.Sprintf("0000:00:%02x.0", i+1) {
			t.Errorf("device %d at %s", i, bdf)
		}
		m.mmio(layout.PCIECAMStart+uint64(i+1)<<15, id[:], false)
		if got := binary.LittleEndian.Uint32(id[:]); got != pciIDs[i] {
			t.Errorf("device %d: PCI ids %#x through the ECAM, want %#x", i, got, pciIDs[i])
		}
	}
	checkDeviceTree(t, m, transport)
	if withNet {
		n := m.cfg.Net[0]
		if n.Tap == "" || !strings.HasPrefix(n.MAC, "52:54:00:") {
			t.Errorf("net written back as %+v, want the tap's name and a generated MAC", n)
		}
		if !reflect.DeepEqual(caller[0], config.Net{}) {
			t.Errorf("the caller's config changed: %+v", caller[0])
		}
	}
	m.close()

	// A reboot builds the next machine from the written-back config: the
	// same tap, open again now that the old machine closed it.
	if withNet {
		cfg.Net = m.cfg.Net
		m2, err := newMachine(cfg, deps)
		if err != nil {
			t.Fatalf("rebuild with tap %s: %v", cfg.Net[0].Tap, err)
		}
		if !reflect.DeepEqual(m2.cfg.Net[0], cfg.Net[0]) {
			t.Errorf("net after the rebuild %+v, want %+v", m2.cfg.Net[0], cfg.Net[0])
		}
		m2.close()
	}
}

func TestMachineRefusesAMissingDiskAsAConfigurationError(t *testing.T) {
	kernel, _ := cachedGuest(t)
	deps := testMachineDeps(t)
	cfg := config.Default()
	cfg.Payload.Kernel = kernel
	cfg.RNG = &config.RNG{Src: config.DefaultRNGSource}
	cfg.Disks = []config.Disk{{Path: filepath.Join(t.TempDir(), "nope.img")}}
	_, err := newMachine(cfg, deps)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "nope.img") {
		t.Errorf("newMachine: %v, want ErrInvalid naming the disk", err)
	}
}

// checkDeviceTree checks vm.info's device_tree for the first disk: on PCI
// the device's node under its transport's, which has the address and the
// BAR, as Cloud Hypervisor encodes them; on virtio-mmio its register block
// and line.
func checkDeviceTree(t *testing.T, m *machine, transport VirtioTransport) {
	t.Helper()
	tree := m.deviceTree()
	var want map[string]any
	var got []byte
	var err error
	if transport == TransportMMIO {
		got, err = json.Marshal(tree["_disk0"])
		want = map[string]any{"id": "_disk0", "children": []any{}, "resources": []any{
			map[string]any{"MmioAddressRange": map[string]any{"base": float64(layout.VirtioMMIOStart), "size": float64(0x200)}},
			map[string]any{"LegacyIrq": float64(layout.VirtioIRQStart)},
		}}
	} else {
		if d := tree["_disk0"]; d.Parent != "_virtio-pci-_disk0" || d.PCIBDF != "" || len(d.Resources) != 0 {
			t.Errorf("_disk0's node %+v", d)
		}
		got, err = json.Marshal(tree["_virtio-pci-_disk0"])
		want = map[string]any{"id": "_virtio-pci-_disk0", "children": []any{"_disk0"}, "pci_bdf": "0000:00:01.0",
			"resources": []any{map[string]any{"PciBar": map[string]any{
				"index": float64(0), "base": float64(layout.PCIMMIO64Start(m.cfg.Memory.Size, 0)), "size": float64(0x8000),
				"type_": "Mmio64", "prefetchable": false}}}}
	}
	if err != nil {
		t.Fatal(err)
	}
	var gotv map[string]any
	if err := json.Unmarshal(got, &gotv); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotv, want) {
		t.Errorf("device_tree node %s, want %v", got, want)
	}
}
