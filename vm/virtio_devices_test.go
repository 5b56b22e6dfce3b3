package vm

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
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
	kernel, _ := cachedGuest(t)
	deps := testMachineDeps(t)
	disk := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Payload.Kernel = kernel
	cfg.Disks = []config.Disk{{Path: disk}, {Path: disk, Readonly: true}}
	cfg.RNG = &config.RNG{Src: config.DefaultRNGSource}
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
	want := 3
	if withNet {
		want = 4
	}
	if len(m.virtio) != want {
		t.Fatalf("%d virtio devices, want %d", len(m.virtio), want)
	}
	for i, vd := range m.virtio {
		base := layout.VirtioMMIOStart + uint64(i)*layout.VirtioMMIOStride
		if vd.t.Base() != base || vd.t.GSI() != uint32(layout.VirtioIRQStart+i) {
			t.Errorf("device %d at %#x GSI %d, want %#x GSI %d", i, vd.t.Base(), vd.t.GSI(), base, layout.VirtioIRQStart+i)
		}
		var magic [4]byte
		m.mmio(base, magic[:], false)
		if got := binary.LittleEndian.Uint32(magic[:]); got != virtioMagic {
			t.Errorf("device %d: MagicValue %#x through the MMIO bus, want %#x", i, got, virtioMagic)
		}
	}
	kinds := []string{"virtio-blk", "virtio-blk", "virtio-net", "virtio-rng"}
	if !withNet {
		kinds = []string{"virtio-blk", "virtio-blk", "virtio-rng"}
	}
	for i, k := range kinds {
		if got := m.virtio[i].t.Device().Kind(); got != k {
			t.Errorf("device %d is %s, want %s", i, got, k)
		}
	}
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
