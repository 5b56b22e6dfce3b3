package memory

import (
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
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

// memory.thp reaches the mapping: the kernel lists MADV_HUGEPAGE as "hg"
// and MADV_NOHUGEPAGE as "nh" among its VmFlags.
func TestMapWithAsksForTransparentHugePagesOrNot(t *testing.T) {
	for _, c := range []struct {
		opts Options
		flag string
	}{{Options{}, "hg"}, {Options{NoTHP: true}, "nh"}} {
		g, err := MapWith([]Range{{0, 4 << 20}}, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		flags, err := vmFlags(uintptr(unsafe.Pointer(&g.Regions()[0].Host()[0])))
		g.Close()
		if err != nil {
			t.Skipf("no /proc/self/smaps: %v", err)
		}
		if !slices.Contains(flags, c.flag) {
			t.Errorf("%+v: VmFlags %v, want %s", c.opts, flags, c.flag)
		}
	}
}

// vmFlags reads the VmFlags of the mapping holding addr.
func vmFlags(addr uintptr) ([]string, error) {
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return nil, err
	}
	inside := false
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			lo, hi, _ := strings.Cut(f[0], "-")
			l, err1 := strconv.ParseUint(lo, 16, 64)
			h, err2 := strconv.ParseUint(hi, 16, 64)
			inside = err1 == nil && err2 == nil && uint64(addr) >= l && uint64(addr) < h
			continue
		}
		if inside && len(f) > 0 && f[0] == "VmFlags:" {
			return f[1:], nil
		}
	}
	return nil, errors.New("no mapping found")
}

// AddSparse maps its region MAP_NORESERVE (VmFlags "nr"); Add does not.
func TestAddSparseMapsWithoutReserve(t *testing.T) {
	g, err := Map(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	dense, err := g.Add(Range{0, 4 << 20}, 0)
	if err != nil {
		t.Fatal(err)
	}
	sparse, err := g.AddSparse(Range{1 << 30, 4 << 20}, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		r    *Region
		want bool
	}{{dense, false}, {sparse, true}} {
		flags, err := vmFlags(uintptr(unsafe.Pointer(&c.r.Host()[0])))
		if err != nil {
			t.Skipf("no /proc/self/smaps: %v", err)
		}
		if slices.Contains(flags, "nr") != c.want {
			t.Errorf("region at %#x: VmFlags %v, want nr %v", c.r.Start, flags, c.want)
		}
	}
}
