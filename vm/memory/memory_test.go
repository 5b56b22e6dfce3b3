package memory

import (
	"errors"
	"testing"
	"unsafe"

	"github.com/vmmdev/vmm/vm/layout"
)

func TestBootRAMSplitsAroundTheHole(t *testing.T) {
	for _, c := range []struct {
		size uint64
		want []Range
	}{
		{1 * layout.GiB, []Range{{0, 1 * layout.GiB}}},
		{layout.LowRAMEnd, []Range{{0, layout.LowRAMEnd}}},
		{4 * layout.GiB, []Range{{0, layout.LowRAMEnd}, {layout.HighRAMStart, 1 * layout.GiB}}},
	} {
		got := BootRAM(c.size)
		if len(got) != len(c.want) {
			t.Fatalf("BootRAM(%#x) = %v, want %v", c.size, got, c.want)
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("BootRAM(%#x) = %v, want %v", c.size, got, c.want)
			}
		}
	}
}

func TestGuestReadsAndWritesInsideRegionsOnly(t *testing.T) {
	g, err := Map([]Range{{0, 1 << 20}, {1 << 21, 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.WriteAt([]byte("hello"), 0x1000); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if err := g.ReadAt(buf, 0x1000); err != nil || string(buf) != "hello" {
		t.Errorf("ReadAt = %q, %v", buf, err)
	}
	if err := g.WriteAt([]byte("xx"), (1<<20)-1); !errors.Is(err, ErrNoRAM) {
		t.Errorf("write across the region end: %v, want ErrNoRAM", err)
	}
	if err := g.WriteAt([]byte("x"), 1<<20); !errors.Is(err, ErrNoRAM) {
		t.Errorf("write into the gap: %v, want ErrNoRAM", err)
	}
	if got := g.Size(); got != 2<<20 {
		t.Errorf("Size = %d", got)
	}
	if _, err := g.Add(Range{1 << 21, 4096}, 5); err == nil {
		t.Error("overlapping Add succeeded")
	}
}

func TestHugeRAMFailsWithAClearError(t *testing.T) {
	_, err := Map([]Range{{0, 1 << 50}})
	if err == nil {
		t.Skip("this host maps 1 PiB; overcommit is unlimited")
	}
	t.Log(err)
}

func TestRegionsAreMappedOnHugePageBoundariesAndUnmapCleanly(t *testing.T) {
	g, err := Map(nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, size := range []uint64{layout.PageSize, 3 * HugePageSize, 128 << 20} {
		start := uint64(i) << 30
		r, err := g.Add(Range{Start: start, Size: size}, uint32(i))
		if err != nil {
			t.Fatal(err)
		}
		host := r.Host()
		if addr := uintptr(unsafe.Pointer(&host[0])); addr%HugePageSize != 0 || uint64(len(host)) != size {
			t.Errorf("region %d: host mapping at %#x, %d bytes; want a 2 MiB boundary and %d bytes", i, addr, len(host), size)
		}
		host[0], host[len(host)-1] = 1, 2 // both ends are mapped and writable
	}
	if err := g.Remove(1 << 30); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if err := g.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
