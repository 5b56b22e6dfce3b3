package vm

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/hotplug"
)

// testImage writes a raw image of 1 MiB and returns its path.
func testImage(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// createdVMM is a VMM with a VM created (not booted) with one disk.
func createdVMM(t *testing.T) *VMM {
	t.Helper()
	kernel, initramfs := cachedGuest(t)
	v := newTestVMM(t)
	cfg := config.Default()
	cfg.Payload = config.Payload{Kernel: kernel, Initramfs: initramfs, Cmdline: "console=ttyS0"}
	cfg.Serial.Mode = config.ModeNull
	cfg.Console.Mode = config.ModeOff
	cfg.Disks = []config.Disk{{Path: testImage(t, "boot.img")}}
	cfg.RNG = &config.RNG{Src: config.DefaultRNGSource}
	if err := v.Create(cfg); err != nil {
		t.Fatal(err)
	}
	return v
}

// buildStopped builds v's machine as Boot does but runs no vCPU: the
// test plays the guest through the registers.
func buildStopped(t *testing.T, v *VMM) *machine {
	t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	m, err := newMachine(*v.cfg, machineDeps{sys: v.sys, cpuid: v.cpuid, serialOut: io.Discard, log: v.log,
		events: v.events, transport: TransportPCI, firstRun: func() {}})
	if err != nil {
		t.Fatal(err)
	}
	v.m, v.state = m, StateRunning
	t.Cleanup(func() { _ = v.Stop() })
	return m
}

// openFDs counts the process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip(err)
	}
	return len(ents)
}

// guestEject plays the guest's _EJ0 of slot on segment 0.
func guestEject(m *machine, slot int) {
	writeU32LE(m.pciHP, hotplug.PCISegmentOffset, 0)
	writeU32LE(m.pciHP, hotplug.PCIEjectOffset, 1<<slot)
}

func writeU32LE(dev interface{ Write(uint64, []byte) }, off uint64, v uint32) {
	dev.Write(off, []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)})
}

func TestAddDiskBeforeBootOnlyChangesTheConfiguration(t *testing.T) {
	v := createdVMM(t)
	info, err := v.AddDisk(config.Disk{Path: testImage(t, "extra.img"), PCIDevice: config.PCIDevice{ID: "data"}})
	if err != nil || info != nil {
		t.Fatalf("AddDisk before boot: %v, %v; want no reply body and no error", info, err)
	}
	if _, err := v.AddDisk(config.Disk{Path: testImage(t, "dup.img"), PCIDevice: config.PCIDevice{ID: "data"}}); !errors.Is(err, ErrConflict) {
		t.Errorf("duplicate id: %v, want ErrConflict", err)
	}
	if _, err := v.AddDisk(config.Disk{Path: "/nonexistent/disk.img"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("missing image: %v, want ErrInvalid", err)
	}
	if err := v.RemoveDevice("nothing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown id: %v, want ErrNotFound", err)
	}
	if err := v.RemoveDevice(rngID); !errors.Is(err, ErrInvalid) {
		t.Errorf("removing the rng: %v, want ErrInvalid", err)
	}
	got, _ := v.Info()
	if n := len(got.Config.Disks); n != 2 || got.Config.Disks[1].ID != "data" {
		t.Fatalf("disks after the add: %+v", got.Config.Disks)
	}
	if err := v.RemoveDevice("data"); err != nil {
		t.Fatal(err)
	}
	if got, _ = v.Info(); len(got.Config.Disks) != 1 {
		t.Errorf("disks after the removal: %+v", got.Config.Disks)
	}
}

func TestHotAddAndEjectOfADiskFreeEverything(t *testing.T) {
	v := createdVMM(t)
	m := buildStopped(t, v)
	// Warm up: the first add creates lazily allocated things (goroutine
	// pools, the log handler) that are no leak.
	extra := testImage(t, "extra.img")
	cycle := func(i int) {
		info, err := v.AddDisk(config.Disk{Path: extra})
		if err != nil {
			t.Fatalf("cycle %d: AddDisk: %v", i, err)
		}
		// The boot disk is at 1, the rng at 2: the new disk takes 3.
		if info.BDF != "0000:00:03.0" {
			t.Errorf("cycle %d: added at %s, want 0000:00:03.0", i, info.BDF)
		}
		if up, _ := m.pciHP.Pending(0); up != 1<<3 {
			t.Errorf("cycle %d: slots up %#x", i, up)
		}
		if m.ged.Pending()&hotplug.EventPCI == 0 {
			t.Errorf("cycle %d: no PCI event for the guest", i)
		}
		vi, _ := v.Info()
		if n, ok := vi.DeviceTree[virtioPCIIDPrefix+info.ID]; !ok || n.PCIBDF != info.BDF {
			t.Errorf("cycle %d: device_tree has %+v for %s", i, n, info.ID)
		}
		if _, err := v.AddDisk(config.Disk{Path: extra, PCIDevice: config.PCIDevice{ID: info.ID}}); !errors.Is(err, ErrConflict) {
			t.Errorf("cycle %d: a second %s: %v, want ErrConflict", i, info.ID, err)
		}
		if err := v.RemoveDevice(info.ID); err != nil {
			t.Fatalf("cycle %d: RemoveDevice: %v", i, err)
		}
		if _, down := m.pciHP.Pending(0); down != 1<<3 {
			t.Errorf("cycle %d: slots down %#x", i, down)
		}
		// The guest has not ejected it yet: its id and slot stay taken,
		// the configuration has it no more.
		vi, _ = v.Info()
		if _, ok := vi.DeviceTree[info.ID]; !ok || len(vi.Config.Disks) != 1 {
			t.Errorf("cycle %d: before the eject, device_tree %v, disks %d", i, ok, len(vi.Config.Disks))
		}
		if _, err := v.AddDisk(config.Disk{Path: extra, PCIDevice: config.PCIDevice{ID: info.ID}}); !errors.Is(err, ErrConflict) {
			t.Errorf("cycle %d: re-adding %s before the eject: %v, want ErrConflict", i, info.ID, err)
		}
		// vm.info shows the removal pending, not yet read by the guest.
		if p := vi.PendingRemovals; len(p) != 1 || p[0].ID != info.ID || p[0].BDF != info.BDF || p[0].GuestNotified || p[0].Asked.IsZero() {
			t.Errorf("cycle %d: pending removals %+v, want %s at %s not yet notified", i, p, info.ID, info.BDF)
		}
		// The guest's scan reads the request, and does not eject.
		writeU32LE(m.pciHP, hotplug.PCISegmentOffset, 0)
		m.pciHP.Read(hotplug.PCIDownOffset, make([]byte, 4))
		if vi, _ = v.Info(); len(vi.PendingRemovals) != 1 || !vi.PendingRemovals[0].GuestNotified {
			t.Errorf("cycle %d: after the guest's scan, pending removals %+v, want notified", i, vi.PendingRemovals)
		}
		if err := v.RemoveDevice(info.ID); err != nil {
			t.Errorf("cycle %d: asking again: %v", i, err)
		}
		if vi, _ = v.Info(); len(vi.PendingRemovals) != 1 || vi.PendingRemovals[0].GuestNotified {
			t.Errorf("cycle %d: asked again, pending removals %+v, want one not yet notified", i, vi.PendingRemovals)
		}
		guestEject(m, 3)
		vi, _ = v.Info()
		if _, ok := vi.DeviceTree[info.ID]; ok || m.pci[0].Function(3) != nil {
			t.Errorf("cycle %d: the ejected disk is still there", i)
		}
		if len(vi.PendingRemovals) != 0 {
			t.Errorf("cycle %d: pending removals after the eject: %+v", i, vi.PendingRemovals)
		}
	}
	cycle(0)
	fds, goroutines := openFDs(t), runtime.NumGoroutine()
	for i := 1; i <= 10; i++ {
		cycle(i)
	}
	time.Sleep(50 * time.Millisecond)
	if n := openFDs(t); n != fds {
		t.Errorf("%d open descriptors after 10 cycles, %d before", n, fds)
	}
	if n := runtime.NumGoroutine(); n > goroutines {
		t.Errorf("%d goroutines after 10 cycles, %d before", n, goroutines)
	}
}

func TestARemovalTheGuestNeverCompletesBlocksNoOtherOperation(t *testing.T) {
	v := createdVMM(t)
	m := buildStopped(t, v)
	extra := testImage(t, "extra.img")
	a, err := v.AddDisk(config.Disk{Path: extra, PCIDevice: config.PCIDevice{ID: "stuck"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.RemoveDevice("stuck"); err != nil {
		t.Fatal(err)
	}
	// The guest never ejects: every other operation goes on.
	done := make(chan error, 1)
	go func() {
		b, err := v.AddDisk(config.Disk{Path: extra})
		if err == nil && b.BDF == a.BDF {
			err = errors.New("the new disk took the slot still held")
		}
		if err == nil {
			err = v.RemoveDevice(b.ID)
		}
		if err == nil {
			one := int64(1)
			err = v.Resize(t.Context(), ResizeRequest{DesiredVCPUs: &one})
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("operations beside a pending removal: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("operations beside a pending removal did not return")
	}
	info, _ := v.Info()
	if len(info.PendingRemovals) != 2 || info.PendingRemovals[0].ID != "stuck" {
		t.Errorf("pending removals %+v, want stuck first, then the second disk", info.PendingRemovals)
	}
	guestEject(m, 3)
	if info, _ = v.Info(); len(info.PendingRemovals) != 1 {
		t.Errorf("pending removals after one eject: %+v", info.PendingRemovals)
	}
}

func TestAddNetKeepsADuplicateOfThePassedTapAndClosesItOnRemoval(t *testing.T) {
	v := createdVMM(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	base := openFDs(t)
	// Before boot the net only joins the configuration, on a duplicate.
	if _, err := v.AddNet(config.Net{FDs: []int{int(r.Fd())}, PCIDevice: config.PCIDevice{ID: "fdnet"}}); err != nil {
		t.Fatal(err)
	}
	info, _ := v.Info()
	if len(info.Config.Net) != 1 || len(info.Config.Net[0].FDs) != 1 || info.Config.Net[0].FDs[0] == int(r.Fd()) {
		t.Fatalf("nets %+v, want one on a duplicate of fd %d", info.Config.Net, r.Fd())
	}
	if n := openFDs(t); n != base+1 {
		t.Errorf("%d descriptors open, want %d (the duplicate)", n, base+1)
	}
	if err := v.RemoveDevice("fdnet"); err != nil {
		t.Fatal(err)
	}
	if n := openFDs(t); n != base {
		t.Errorf("%d descriptors open after the removal, want %d", n, base)
	}
	// On a running machine a descriptor that is no tap is refused, and
	// nothing stays open.
	buildStopped(t, v)
	base = openFDs(t)
	if _, err := v.AddNet(config.Net{FDs: []int{int(r.Fd())}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("a pipe as a tap: %v, want ErrInvalid", err)
	}
	if _, err := v.AddNet(config.Net{FDs: []int{int(r.Fd()), int(w.Fd())}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("two descriptors: %v, want ErrInvalid", err)
	}
	if n := openFDs(t); n != base {
		t.Errorf("%d descriptors open after refused adds, want %d", n, base)
	}
	if info, _ = v.Info(); len(info.Config.Net) != 0 {
		t.Errorf("refused adds left nets %+v", info.Config.Net)
	}
}

func TestGuestEjectOfABootDiskDropsItFromTheConfiguration(t *testing.T) {
	v := createdVMM(t)
	m := buildStopped(t, v)
	if _, err := v.AddDisk(config.Disk{Path: testImage(t, "extra.img"), PCIDevice: config.PCIDevice{ID: "data"}}); err != nil {
		t.Fatal(err)
	}
	guestEject(m, 1) // the boot disk, _disk0, nobody asked
	vi, _ := v.Info()
	if len(vi.Config.Disks) != 1 || vi.Config.Disks[0].ID != "data" || *vi.Config.Disks[0].PCIDeviceID != 3 {
		t.Errorf("disks after the guest's eject: %+v", vi.Config.Disks)
	}
	// Slot 1 is free again; the next disk takes it.
	info, err := v.AddDisk(config.Disk{Path: testImage(t, "more.img")})
	if err != nil || info.BDF != "0000:00:01.0" {
		t.Errorf("next add: %+v, %v; want slot 1", info, err)
	}
	if info != nil && info.ID == "_disk0" || info != nil && info.ID == "data" {
		t.Errorf("the new disk reuses id %s", info.ID)
	}
}
