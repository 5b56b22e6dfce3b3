package boot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/vmmdev/vmm/vm/boot/boottest"
	"github.com/vmmdev/vmm/vm/memory"
)

func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
func u32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

// Where the test image lives: 16 MiB, as Linux links its x86_64 kernel.
const (
	testKernelAt = 0x100_0000
	testEntry    = testKernelAt + 0x850
)

// testNotes are notes as a vmlinux has them: others before the PVH one.
func testNotes(entryDesc []byte) []byte {
	var n []byte
	n = append(n, boottest.Note("Xen", 6, []byte("linux\x00"), 4)...)         // XEN_ELFNOTE_GUEST_OS
	n = append(n, boottest.Note("GNU", 3, bytes.Repeat([]byte{7}, 20), 4)...) // NT_GNU_BUILD_ID
	n = append(n, boottest.Note("Linux", 0x101, []byte("6.1\x00"), 4)...)
	return append(n, boottest.Note("Xen", xenElfnotePhys32Entry, entryDesc, 4)...)
}

// testELF is a vmlinux in miniature: text, data with a bss, a PT_NOTE with
// the PVH entry as 8 bytes (what Linux writes on x86_64), and a
// PT_GNU_STACK with no bytes.
func testELF() []byte {
	text := bytes.Repeat([]byte{0x90}, 0x1000)
	return boottest.ELF(
		boottest.Segment{Type: ptLoad, Paddr: testKernelAt, Data: text, Align: 0x200000},
		boottest.Segment{Type: ptLoad, Paddr: testKernelAt + 0x20_0000, Data: bytes.Repeat([]byte{0xdd}, 0x800), MemSize: 0x3000, Align: 0x200000},
		boottest.Segment{Type: ptNote, Paddr: testKernelAt + 0x900, Data: testNotes(u64(testEntry)), Align: 4},
		boottest.Segment{Type: 0x6474e551}, // PT_GNU_STACK
	)
}

func TestParseELFReadsSegmentsAndThePVHEntry(t *testing.T) {
	e, err := ParseELF(FromBytes(testELF()))
	if err != nil {
		t.Fatal(err)
	}
	if e.PVHEntry != testEntry {
		t.Errorf("PVH entry %#x, want %#x", e.PVHEntry, testEntry)
	}
	if len(e.Segments) != 2 {
		t.Fatalf("segments %+v", e.Segments)
	}
	s0, s1 := e.Segments[0], e.Segments[1]
	if s0.Paddr != testKernelAt || s0.Data.Size() != 0x1000 || s0.MemSize != 0x1000 || firstByte(s0.Data) != 0x90 {
		t.Errorf("segment 0: at %#x, %d bytes, memsz %#x", s0.Paddr, s0.Data.Size(), s0.MemSize)
	}
	if s1.Paddr != testKernelAt+0x20_0000 || s1.Data.Size() != 0x800 || s1.MemSize != 0x3000 || s1.End() != testKernelAt+0x20_3000 {
		t.Errorf("segment 1: at %#x, %d bytes, memsz %#x", s1.Paddr, s1.Data.Size(), s1.MemSize)
	}
}

func TestParseELFReadsThePVHNoteInEveryForm(t *testing.T) {
	text := boottest.Segment{Type: ptLoad, Paddr: testKernelAt, Data: make([]byte, 0x1000)}
	for _, c := range []struct {
		name  string
		notes []boottest.Segment
	}{
		{"4-byte descriptor", []boottest.Segment{{Type: ptNote, Data: boottest.Note("Xen", 18, u32(testEntry), 4), Align: 4}}},
		{"8-byte descriptor", []boottest.Segment{{Type: ptNote, Data: boottest.Note("Xen", 18, u64(testEntry), 4), Align: 4}}},
		{"8-byte aligned notes", []boottest.Segment{{Type: ptNote, Data: append(boottest.Note("GNU", 3, make([]byte, 20), 8),
			boottest.Note("Xen", 18, u64(testEntry), 8)...), Align: 8}}},
		{"second PT_NOTE", []boottest.Segment{
			{Type: ptNote, Data: boottest.Note("GNU", 3, make([]byte, 20), 4), Align: 4},
			{Type: ptNote, Data: testNotes(u32(testEntry)), Align: 4}}},
		{"the first of two", []boottest.Segment{{Type: ptNote, Data: append(boottest.Note("Xen", 18, u32(testEntry), 4),
			boottest.Note("Xen", 18, u32(testKernelAt), 4)...), Align: 4}}},
	} {
		e, err := ParseELF(FromBytes(boottest.ELF(append([]boottest.Segment{text}, c.notes...)...)))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if e.PVHEntry != testEntry {
			t.Errorf("%s: PVH entry %#x, want %#x", c.name, e.PVHEntry, testEntry)
		}
	}
}

func TestParseELFRejectsWhatItCannotBoot(t *testing.T) {
	good := testELF()
	edit := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return b
	}
	le := binary.LittleEndian
	ph := func(i int) int { return elf64HeaderSize + i*elf64PhdrSize }
	text := boottest.Segment{Type: ptLoad, Paddr: testKernelAt, Data: make([]byte, 0x1000)}
	for _, c := range []struct {
		name string
		data []byte
		want error
		says string
	}{
		{"empty", nil, ErrBadELF, "no ELF magic"},
		{"header cut", good[:40], ErrBadELF, "shorter than an ELF64 header"},
		{"program headers cut", good[:ph(2)+10], ErrBadELF, "program headers at file offset 0x40 end past"},
		{"segment bytes cut", good[:len(good)-100], ErrBadELF, "segment 2's"},
		{"32-bit", edit(func(b []byte) { b[4] = elfClass32 }), ErrBadELF, "32-bit ELF"},
		{"class 7", edit(func(b []byte) { b[4] = 7 }), ErrBadELF, "unknown ELF class 7"},
		{"big endian", edit(func(b []byte) { b[5] = 2 }), ErrBadELF, "not little-endian"},
		{"version 2", edit(func(b []byte) { b[6] = 2 }), ErrBadELF, "unknown ELF version"},
		{"relocatable", edit(func(b []byte) { le.PutUint16(b[16:], 1) }), ErrBadELF, "ELF type 1"},
		{"aarch64", edit(func(b []byte) { le.PutUint16(b[18:], 183) }), ErrBadELF, "machine 183"},
		{"no program headers", edit(func(b []byte) { le.PutUint16(b[56:], 0) }), ErrBadELF, "no program headers"},
		{"PN_XNUM", edit(func(b []byte) { le.PutUint16(b[56:], 0xffff) }), ErrBadELF, "PN_XNUM"},
		{"odd phentsize", edit(func(b []byte) { le.PutUint16(b[54:], 64) }), ErrBadELF, "program header size 64"},
		{"phoff past the end", edit(func(b []byte) { le.PutUint64(b[32:], 1<<62) }), ErrBadELF, "end past the file"},
		{"segment offset past the end", edit(func(b []byte) { le.PutUint64(b[ph(0)+8:], ^uint64(0)) }), ErrBadELF, "segment 0's"},
		{"filesz past the end", edit(func(b []byte) { le.PutUint64(b[ph(0)+32:], ^uint64(0)-10) }), ErrBadELF, "segment 0's"},
		{"filesz over memsz", edit(func(b []byte) { le.PutUint64(b[ph(1)+40:], 0x10) }), ErrBadELF, "only 16 in memory"},
		{"wrapping segment", edit(func(b []byte) { le.PutUint64(b[ph(1)+24:], ^uint64(0)-0x100) }), ErrBadELF, "wraps around"},
		{"no PT_LOAD", boottest.ELF(boottest.Segment{Type: ptNote, Data: testNotes(u64(testEntry)), Align: 4}), ErrBadELF, "no PT_LOAD"},
		{"no PVH note", boottest.ELF(text, boottest.Segment{Type: ptNote, Data: boottest.Note("Xen", 6, []byte("linux\x00"), 4), Align: 4}), ErrNoPVH, "CONFIG_PVH"},
		{"no PT_NOTE", boottest.ELF(text), ErrNoPVH, "XEN_ELFNOTE_PHYS32_ENTRY"},
		{"type 18 of another owner", boottest.ELF(text, boottest.Segment{Type: ptNote, Data: boottest.Note("Xenon", 18, u32(testEntry), 4), Align: 4}), ErrNoPVH, ""},
		{"a 2-byte entry", boottest.ELF(text, boottest.Segment{Type: ptNote, Data: boottest.Note("Xen", 18, []byte{1, 2}, 4), Align: 4}), ErrBadELF, "descriptor has 2 bytes"},
		{"a note past its segment", boottest.ELF(text, boottest.Segment{Type: ptNote, Data: boottest.Note("Xen", 18, u64(testEntry), 4)[:20], Align: 4}), ErrBadELF, "runs past its segment"},
		{"a cut note header", boottest.ELF(text, boottest.Segment{Type: ptNote, Data: []byte{4, 0, 0, 0, 8}, Align: 4}), ErrBadELF, "note header at 0x0 is truncated"},
		{"a huge namesz", boottest.ELF(text, boottest.Segment{Type: ptNote, Data: append(u32(0xffffffff), make([]byte, 16)...), Align: 4}), ErrBadELF, "runs past"},
		{"entry above 4 GiB", boottest.ELF(text, boottest.Segment{Type: ptNote, Data: boottest.Note("Xen", 18, u64(1<<32|testEntry), 4), Align: 4}), ErrBadELF, "above 4 GiB"},
		{"entry outside the segments", boottest.ELF(text, boottest.Segment{Type: ptNote, Data: boottest.Note("Xen", 18, u32(0x2000), 4), Align: 4}), ErrBadELF, "not in the file bytes"},
		{"entry in the bss", boottest.ELF(boottest.Segment{Type: ptLoad, Paddr: testKernelAt, Data: make([]byte, 0x10), MemSize: 0x1000},
			boottest.Segment{Type: ptNote, Data: boottest.Note("Xen", 18, u32(testEntry), 4), Align: 4}), ErrBadELF, "not in the file bytes"},
	} {
		_, err := ParseELF(FromBytes(c.data))
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: err = %v, want %v saying %q", c.name, err, c.want, c.says)
		}
	}
}

func TestParseImageTellsTheKindFromTheBytes(t *testing.T) {
	for _, c := range []struct {
		name string
		data []byte
		kind string
		err  error
	}{
		{"ELF", testELF(), "PVH ELF", nil},
		{"bzImage", fakeBzImage(100), "bzImage", nil},
		{"ELF without PVH", boottest.ELF(boottest.Segment{Type: ptLoad, Paddr: testKernelAt, Data: make([]byte, 16)}), "", ErrNoPVH},
		{"old bzImage", func() []byte {
			b := fakeBzImage(100)
			binary.LittleEndian.PutUint16(b[hdrVersion:], 0x0204)
			return b
		}(), "", ErrNotBzImage},
		{"garbage", bytes.Repeat([]byte("not a kernel "), 1000), "", ErrUnknownImage},
		{"empty", nil, "", ErrUnknownImage},
		{"three bytes of ELF magic", []byte("\x7fEL"), "", ErrUnknownImage},
	} {
		img, err := ParseImage(FromBytes(c.data))
		if !errors.Is(err, c.err) || (err == nil) != (c.err == nil) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.err)
			continue
		}
		if err == nil && img.Kind() != c.kind {
			t.Errorf("%s: kind %q, want %q", c.name, img.Kind(), c.kind)
		}
	}
	if _, err := ParseImage(FromBytes(nil)); !strings.Contains(err.Error(), "not a bzImage") {
		t.Errorf("the unknown image's message %q no longer says \"not a bzImage\", which users and tests look for", err)
	}
}

// cachedImage reads a file the harness caches under .cache/guest, or skips.
func cachedImage(t *testing.T, name string) []byte {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	data, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", ".cache", "guest", name))
	if err != nil {
		t.Skipf("no cached guest %s (make images): %v", name, err)
	}
	return data
}

// images/build.sh extracts the vmlinux from Debian's bzImage; parse it
// when it is there (VMM_GUEST_VMLINUX names another).
func TestParseELFAcceptsDebiansVmlinux(t *testing.T) {
	var data []byte
	if path := os.Getenv("VMM_GUEST_VMLINUX"); path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			t.Fatal(err)
		}
	} else {
		data = cachedImage(t, "vmlinux")
	}
	e, err := ParseELF(FromBytes(data))
	if err != nil {
		t.Fatal(err)
	}
	if e.PVHEntry < testKernelAt {
		t.Errorf("PVH entry %#x below the kernel's 16 MiB", e.PVHEntry)
	}
	p := Payload{Image: Image{ELF: e}, Initramfs: FromBytes(make([]byte, 2<<20)), Cmdline: "console=ttyS0", RAM: memory.BootRAM(1 << 30)}
	g, err := memory.Map(p.RAM)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	entry, err := Load(g, p)
	if err != nil {
		t.Fatalf("1 GiB does not hold it: %v", err)
	}
	code := make([]byte, 16)
	_ = g.ReadAt(code, uint64(e.PVHEntry))
	t.Logf("%v entry at %#x, code there %x", entry.Protocol, entry.Addr, code)
	for _, s := range e.Segments {
		t.Logf("segment at %#x-%#x (%d bytes in the file)", s.Paddr, s.End(), s.Data.Size())
	}
	t.Logf("PVH entry %#x", e.PVHEntry)
}

// FuzzParseELF: the ELF parser never panics, and what it accepts holds
// together (its segments inside the input, the entry in one of them).
// Seeds: the test image, cut and with its header fields and notes broken.
func FuzzParseELF(f *testing.F) {
	good := testELF()
	f.Add(good)
	f.Add(good[:elf64HeaderSize+elf64PhdrSize])
	f.Add(boottest.ELF(boottest.Segment{Type: ptLoad, Paddr: testKernelAt, Data: make([]byte, 0x100)},
		boottest.Segment{Type: ptNote, Data: boottest.Note("Xen", 18, u32(testKernelAt), 8), Align: 8}))
	f.Add(boottest.ELF(boottest.Segment{Type: ptNote, Data: []byte{0xff, 0xff, 0xff, 0xff, 4, 0, 0, 0, 18, 0, 0, 0}, Align: 4}))
	f.Add(fakeBzImage(64))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseELF(FromBytes(data))
		_, _ = ParseImage(FromBytes(data))
		if err != nil {
			if !errors.Is(err, ErrBadELF) && !errors.Is(err, ErrNoPVH) {
				t.Fatalf("error of no known kind: %v", err)
			}
			return
		}
		if len(e.Segments) == 0 || !e.loaded(uint64(e.PVHEntry)) {
			t.Fatalf("accepted %d segments with the entry %#x outside them", len(e.Segments), e.PVHEntry)
		}
		for _, s := range e.Segments {
			if uint64(s.Data.Size()) > s.MemSize || s.End() < s.Paddr {
				t.Fatalf("segment at %#x: %d bytes in the file, %d in memory", s.Paddr, s.Data.Size(), s.MemSize)
			}
		}
	})
}
