package memory

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// smapsOf reads the smaps fields of the mapping holding addr: its header
// line's path (the last field) under "Path", then each "Key: value" line.
func smapsOf(t *testing.T, addr uintptr) map[string]string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	var out map[string]string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if lo, hi, ok := strings.Cut(f[0], "-"); ok && !strings.HasSuffix(f[0], ":") {
			l, err1 := strconv.ParseUint(lo, 16, 64)
			h, err2 := strconv.ParseUint(hi, 16, 64)
			if out != nil {
				return out
			}
			if err1 == nil && err2 == nil && uint64(addr) >= l && uint64(addr) < h {
				out = map[string]string{"Path": strings.Join(f[5:], " ")}
			}
			continue
		}
		if out != nil {
			k, v, _ := strings.Cut(line, ":")
			out[k] = strings.TrimSpace(v)
		}
	}
	if out == nil {
		t.Fatalf("no mapping at %#x", addr)
	}
	return out
}

// TestBackingOptionsReachTheMapping checks each memory option, on the boot
// region and on a region hot-added later, in the kernel's own view of the
// mapping: a memfd MAP_SHARED ("sh", /memfd:), MADV_MERGEABLE ("mg"),
// every page resident at once (Rss), transparent huge pages asked for or
// not ("hg", "nh").
func TestBackingOptionsReachTheMapping(t *testing.T) {
	const size = 8 << 20
	for _, c := range []struct {
		name  string
		opts  Options
		flags []string // VmFlags the mapping must have
		not   []string // and must not
		memfd bool
		rss   bool // Rss is the whole region
	}{
		{"default", Options{}, []string{"hg"}, []string{"sh", "mg"}, false, false},
		{"shared", Options{Shared: true}, []string{"sh", "hg"}, nil, true, false},
		{"prefault", Options{Prefault: true}, nil, []string{"sh"}, false, true},
		{"shared and prefault", Options{Shared: true, Prefault: true}, []string{"sh"}, nil, true, true},
		{"mergeable", Options{Mergeable: true}, []string{"mg"}, nil, false, false},
		{"no THP", Options{NoTHP: true}, []string{"nh"}, []string{"hg"}, false, false},
	} {
		g, err := MapWith([]Range{{0, size}}, c.opts)
		if err != nil {
			if c.opts.Mergeable && strings.Contains(err.Error(), "KSM") {
				t.Logf("%s: %v", c.name, err)
				continue
			}
			t.Fatalf("%s: %v", c.name, err)
		}
		added, err := g.Add(Range{Start: 1 << 30, Size: size}, 1)
		if err != nil {
			t.Fatalf("%s: hot add: %v", c.name, err)
		}
		for _, r := range []*Region{g.Regions()[0], added} {
			host := r.Host()
			m := smapsOf(t, uintptr(unsafe.Pointer(&host[0])))
			flags := strings.Fields(m["VmFlags"])
			for _, f := range c.flags {
				if !slices.Contains(flags, f) {
					t.Errorf("%s, region at %#x: VmFlags %v lack %s", c.name, r.Start, flags, f)
				}
			}
			for _, f := range c.not {
				if slices.Contains(flags, f) {
					t.Errorf("%s, region at %#x: VmFlags %v have %s", c.name, r.Start, flags, f)
				}
			}
			if got := strings.Contains(m["Path"], "memfd:"+memfdName); got != c.memfd {
				t.Errorf("%s, region at %#x: mapping of %q, memfd %v", c.name, r.Start, m["Path"], c.memfd)
			}
			if c.rss && m["Rss"] != strconv.Itoa(size>>10)+" kB" {
				t.Errorf("%s, region at %#x: Rss %s, want all %d kB resident", c.name, r.Start, m["Rss"], size>>10)
			}
			host[0], host[len(host)-1] = 1, 2
		}
		if err := g.Close(); err != nil {
			t.Errorf("%s: Close: %v", c.name, err)
		}
	}
}

func TestHugePagesNeedThePagesReserved(t *testing.T) {
	_, err := MapWith([]Range{{0, 1 << 30}}, Options{Hugepages: true, HugepageSize: 1 << 30})
	if err == nil {
		t.Skip("this host has a free 1 GiB huge page")
	}
	for _, want := range []string{"1048576kB", "free_hugepages", "nr_hugepages"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if _, err := MapWith([]Range{{0, 3 << 20}}, Options{Hugepages: true, HugepageSize: 2 << 20}); err == nil ||
		!strings.Contains(err.Error(), "not a multiple of the 2048kB huge page") {
		t.Errorf("3 MiB in 2 MiB pages: %v", err)
	}
	if _, err := MapWith([]Range{{0, 4 << 20}}, Options{Hugepages: true, HugepageSize: 3 << 20}); err == nil ||
		!strings.Contains(err.Error(), "not power of 2") {
		t.Errorf("3 MiB pages: %v", err)
	}
}

func TestMemfdFlagsCarryTheHugePageSize(t *testing.T) {
	if f := memfdFlags(Options{Hugepages: true, HugepageSize: 2 << 20}, 2<<20); f>>26 != 21 {
		t.Errorf("2 MiB: flags %#x, want 21 in bits 26-31", f)
	}
	if f := memfdFlags(Options{Shared: true}, 0); f>>26 != 0 {
		t.Errorf("shared: flags %#x", f)
	}
}

// TestHugePagesWhenTheHostHasThem maps 2 MiB huge pages where the host has
// some free (echo N > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages).
func TestHugePagesWhenTheHostHasThem(t *testing.T) {
	if err := checkHugePages(2<<20, 4<<20); err != nil {
		t.Skipf("no free 2 MiB huge pages: %v", err)
	}
	g, err := MapWith([]Range{{0, 4 << 20}}, Options{Hugepages: true, HugepageSize: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	host := g.Regions()[0].Host()
	host[0] = 1
	if m := smapsOf(t, uintptr(unsafe.Pointer(&host[0]))); !strings.Contains(m["VmFlags"], "ht") {
		t.Errorf("VmFlags %q lack ht (hugetlb)", m["VmFlags"])
	}
}
