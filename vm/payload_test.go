package vm

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/vmmdev/vmm/vm/boot"
	"github.com/vmmdev/vmm/vm/boot/boottest"
	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/layout"
	"github.com/vmmdev/vmm/vm/memory"
)

// The kernel and initramfs go from their files straight into guest memory:
// checking and loading a 24 MiB vmlinux with a 16 MiB initramfs allocates
// next to nothing on the heap (the headers), so a large payload never
// grows the VMM's heap, nor its RSS after boot.
func TestPayloadIsReadIntoGuestMemoryNotTheHeap(t *testing.T) {
	dir := t.TempDir()
	text := bytes.Repeat([]byte{0x90}, 24<<20)
	kernel := boottest.ELF(boottest.Segment{Type: boottest.PTLoad, Paddr: 16 << 20, Data: text}, boottest.PVHNote(16<<20))
	initrd := bytes.Repeat([]byte{0x42}, 16<<20)
	cfg := config.Default()
	cfg.Payload.Kernel, cfg.Payload.Initramfs = filepath.Join(dir, "vmlinux"), filepath.Join(dir, "initrd")
	cfg.Memory.Size = 128 << 20
	for path, b := range map[string][]byte{cfg.Payload.Kernel: kernel, cfg.Payload.Initramfs: initrd} {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	kernel, text, initrd = nil, nil, nil
	mem, err := memory.Map(memory.BootRAM(cfg.Memory.Size))
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	p, closeFiles, err := openPayload(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = boot.Load(mem, p)
	closeFiles()
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("checking and loading 40 MiB of payload allocated %d KiB on the heap, want under 1 MiB", got>>10)
	}
	b := make([]byte, 4)
	if err := mem.ReadAt(b, 16<<20); err != nil || !bytes.Equal(b, []byte{0x90, 0x90, 0x90, 0x90}) {
		t.Errorf("kernel text at 16 MiB: %x, %v", b, err)
	}
	top := make([]byte, layout.PageSize)
	if err := mem.ReadAt(top, cfg.Memory.Size-layout.PageSize); err != nil || top[len(top)-1] != 0x42 {
		t.Errorf("initramfs at the top of low RAM: last byte %#x, %v", top[len(top)-1], err)
	}
}

// BenchmarkPayloadOpenAndLoad checks and loads the harness's cached
// Debian vmlinux (about 60 MiB of segments) and initramfs into guest
// memory, as each boot does: start-up time spent on the payload.
func BenchmarkPayloadOpenAndLoad(b *testing.B) {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", ".cache", "guest")
	cfg := config.Default()
	cfg.Payload.Kernel, cfg.Payload.Initramfs = filepath.Join(dir, "vmlinux"), filepath.Join(dir, "initramfs.cpio.gz")
	cfg.Memory.Size = 512 << 20
	if _, err := os.Stat(cfg.Payload.Kernel); err != nil {
		b.Skipf("no cached guest vmlinux (make images): %v", err)
	}
	mem, err := memory.Map(memory.BootRAM(cfg.Memory.Size))
	if err != nil {
		b.Fatal(err)
	}
	defer mem.Close()
	b.ReportAllocs()
	for b.Loop() {
		p, closeFiles, err := openPayload(cfg)
		if err != nil {
			b.Fatal(err)
		}
		_, err = boot.Load(mem, p)
		closeFiles()
		if err != nil {
			b.Fatal(err)
		}
	}
}
