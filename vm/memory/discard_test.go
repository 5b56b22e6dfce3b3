package memory

import (
	"bytes"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// resident counts the resident pages of b (mincore).
func resident(t *testing.T, b []byte) int {
	t.Helper()
	vec := make([]byte, (len(b)+4095)/4096)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

func TestDiscardGivesPagesBackAndReadsZeros(t *testing.T) {
	const base, size = 1 << 32, 8 << 20
	g, err := Map([]Range{{base, size}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	all, err := g.Slice(base, size)
	if err != nil {
		t.Fatal(err)
	}
	for i := range all {
		all[i] = 0xaa
	}
	if err := g.Discard(base+2<<20, 4<<20); err != nil {
		t.Fatal(err)
	}
	if n := resident(t, all[2<<20:6<<20]); n != 0 {
		t.Fatalf("%d pages still resident after the discard", n)
	}
	if !bytes.Equal(all[2<<20:6<<20], make([]byte, 4<<20)) {
		t.Fatal("the discarded range does not read zeros")
	}
	if all[2<<20-1] != 0xaa || all[6<<20] != 0xaa {
		t.Fatal("the discard reached beyond its range")
	}
}

func TestDiscardErrors(t *testing.T) {
	g, err := Map([]Range{{0, 4 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, c := range []struct {
		name   string
		gpa, n uint64
	}{
		{"unaligned start", 100, 4096},
		{"unaligned length", 0, 100},
		{"beyond RAM", 2 << 20, 4 << 20},
		{"not RAM", 1 << 32, 4096},
	} {
		if err := g.Discard(c.gpa, c.n); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
	if err := g.Discard(0, 0); err != nil {
		t.Errorf("empty range: %v", err)
	}
}

func TestDiscardSpansAdjacentRegions(t *testing.T) {
	g, err := Map([]Range{{0, 2 << 20}, {2 << 20, 2 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, r := range g.Regions() {
		for i := range r.Host() {
			r.Host()[i] = 1
		}
	}
	if err := g.Discard(1<<20, 2<<20); err != nil {
		t.Fatal(err)
	}
	a, b := g.Regions()[0].Host(), g.Regions()[1].Host()
	if a[1<<20-1] != 1 || a[1<<20] != 0 || b[1<<20-1] != 0 || b[1<<20] != 1 {
		t.Fatal("the discard did not cover exactly its range across both regions")
	}
}
