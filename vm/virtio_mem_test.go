package vm

import (
	"errors"
	"strings"
	"testing"

	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/layout"
)

func TestPlanResizeThroughVirtioMem(t *testing.T) {
	cfg := config.VM{CPUs: config.CPUs{BootVCPUs: 1, MaxVCPUs: 1}, Memory: config.Memory{
		Size: config.GiB, HotplugMethod: config.HotplugVirtioMem, HotplugSize: 8 * config.GiB, HotpluggedSize: config.GiB}}
	running := ramState{running: true, current: 2 * config.GiB}
	i := func(n int64) *int64 { return &n }
	for _, tc := range []struct {
		name    string
		cfg     func(*config.VM)
		ram     int64
		plugged uint64
		set     bool
		invalid string
	}{
		{"grow", nil, 4 * config.GiB, 3 * config.GiB, true, ""},
		{"shrink", nil, config.GiB + 512*config.MiB, 512 * config.MiB, true, ""},
		{"shrink to the boot RAM", nil, config.GiB, 0, true, ""},
		{"the same size again", nil, 2 * config.GiB, config.GiB, false, ""},
		{"one block", nil, config.GiB + 2*config.MiB, 2 * config.MiB, true, ""},
		{"the whole space", nil, 9 * config.GiB, 8 * config.GiB, true, ""},
		{"below the boot RAM", nil, config.GiB - 2*config.MiB, 0, false, "below boot size"},
		{"not in blocks", nil, config.GiB + config.MiB, 0, false, "not a multiple of the virtio-mem block size (2 MiB)"},
		{"beyond the space", nil, 9*config.GiB + 2*config.MiB, 0, false, textNoHotplugSpace},
		{"no space", func(c *config.VM) { c.Memory.HotplugSize, c.Memory.HotpluggedSize = 64*config.MiB, 0 }, 2 * config.GiB, 0, false, "no hot plug space"},
		{"zero", nil, 0, 0, false, "desired_ram=0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			if tc.cfg != nil {
				tc.cfg(&c)
			}
			p, err := planResize(c, running, ResizeRequest{DesiredRAM: i(tc.ram)})
			if tc.invalid != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.invalid) {
					t.Fatalf("err = %v, want ErrInvalid saying %q", err, tc.invalid)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.setPlugged != tc.set || (tc.set && p.plugged != tc.plugged) || p.ram != 0 || p.addRAM != 0 {
				t.Errorf("plan %+v, want plugged %d (set %v) and memory.size unchanged", p, tc.plugged, tc.set)
			}
		})
	}
}

func TestVirtioMemIsPlacedLastWithCloudHypervisorsID(t *testing.T) {
	cfg := config.Default()
	cfg.Disks = []config.Disk{{Path: "/a"}}
	cfg.RNG = &config.RNG{Src: config.DefaultRNGSource}
	cfg.Memory.HotplugMethod, cfg.Memory.HotplugSize = config.HotplugVirtioMem, config.GiB
	places, err := devicePlacements(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	last := places[len(places)-1]
	if last.kind != kindMem || last.id != "_mem1" || last.device != 3 {
		t.Errorf("last placement %s (device %d), want virtio-mem _mem1 at device 3", last, last.device)
	}
	cfg.Memory.HotplugSize = 64 * config.MiB // no whole block: no device
	if places, _ = devicePlacements(&cfg); places[len(places)-1].kind == kindMem {
		t.Error("a virtio-mem device without a whole 128 MiB block of space")
	}
}

// A machine with virtio-mem maps the hot plug space as one sparse region
// with its own memslot, has no ACPI memory controller, starts the device
// at hotplugged_size and counts only plugged memory as the guest's.
func TestMachineMapsTheVirtioMemRegion(t *testing.T) {
	kernel, _ := cachedGuest(t)
	for _, transport := range []VirtioTransport{TransportPCI, TransportMMIO} {
		t.Run(string(transport), func(t *testing.T) {
			deps := testMachineDeps(t)
			deps.transport = transport
			cfg := config.Default()
			cfg.Payload.Kernel = kernel
			cfg.Memory = config.Memory{Size: 512 * config.MiB, HotplugMethod: config.HotplugVirtioMem,
				HotplugSize: 2*config.GiB + 64*config.MiB, HotpluggedSize: 256 * config.MiB}
			m, err := newMachine(cfg, deps)
			if err != nil {
				t.Fatal(err)
			}
			defer m.close()
			if m.vmem == nil || m.memHP != nil {
				t.Fatalf("virtio-mem %v, ACPI memory controller %v; want the device and no controller", m.vmem, m.memHP)
			}
			addr, size := m.vmem.Region()
			if addr != layout.HotplugRAMStart(cfg.Memory.Size) || size != 2*config.GiB {
				t.Errorf("region %#x+%#x, want the hot plug space's whole blocks", addr, size)
			}
			regions := m.mem.Regions()
			if r := regions[len(regions)-1]; r.Start != addr || r.Size != size {
				t.Errorf("last RAM region %#x+%#x, want the device's", r.Start, r.Size)
			}
			if got := m.vmem.Requested(); got != 256*config.MiB {
				t.Errorf("requested %d, want hotplugged_size", got)
			}
			if got := m.ramSize(); got != cfg.Memory.Size {
				t.Errorf("ramSize %d before the driver plugged anything, want the boot RAM %d", got, cfg.Memory.Size)
			}
			vd := m.virtio[len(m.virtio)-1]
			if vd.p.id != "_mem0" || vd.t.Device().Kind() != "virtio-mem" {
				t.Errorf("last virtio device %s %s", vd.t.Device().Kind(), vd.p.id)
			}
		})
	}
}
