package boot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Errors of ParseELF.
var (
	// ErrBadELF means the file starts like an ELF image but is truncated,
	// corrupt, or not a 64-bit x86-64 executable this loader can boot.
	ErrBadELF = errors.New("not a bootable ELF image")
	// ErrNoPVH means a well-formed ELF image has no PVH entry point: no Xen
	// ELF note XEN_ELFNOTE_PHYS32_ENTRY in a PT_NOTE segment.
	ErrNoPVH = errors.New("no PVH entry point")
)

// ELF header and program header fields (the System V gABI, "ELF Header"
// and "Program Header"; Linux's include/uapi/linux/elf.h).
const (
	elfMagic      = "\x7fELF"
	elfClass32    = 1
	elfClass64    = 2
	elfData2LSB   = 1
	elfVersion    = 1
	elfTypeExec   = 2 // ET_EXEC
	elfTypeDyn    = 3 // ET_DYN
	elfMachineX64 = 62
	// elf64HeaderSize and elf64PhdrSize are sizeof(Elf64_Ehdr) and
	// sizeof(Elf64_Phdr).
	elf64HeaderSize = 64
	elf64PhdrSize   = 56
	// elfPNXNum (PN_XNUM) in e_phnum means the count is elsewhere.
	elfPNXNum = 0xffff
	ptLoad    = 1
	ptNote    = 4
)

// The PVH entry note (Xen's xen/include/public/elfnote.h): owner "Xen",
// type XEN_ELFNOTE_PHYS32_ENTRY, its descriptor the 32-bit entry point's
// physical address (Linux writes it as 8 bytes on x86_64, see its
// arch/x86/platform/pvh/head.S).
const (
	xenNoteName           = "Xen"
	xenElfnotePhys32Entry = 18
)

// ELF is a parsed ELF64 x86-64 image with a PVH entry point: a vmlinux
// built with CONFIG_PVH=y, or a firmware that boots the same way.
type ELF struct {
	// Segments are the PT_LOAD segments that occupy memory, in file order.
	Segments []Segment
	// PVHEntry is the guest physical address where the boot vCPU starts in
	// 32-bit protected mode (the XEN_ELFNOTE_PHYS32_ENTRY note).
	PVHEntry uint32
}

// Segment is one PT_LOAD segment, loaded at its physical address.
type Segment struct {
	// Index is the segment's program header's index, as readelf -l counts
	// them; messages name segments by it.
	Index int
	// Paddr is the segment's guest physical address (p_paddr).
	Paddr uint64
	// Data is the segment's bytes in the file (p_filesz of them), read as
	// the segment is loaded.
	Data *io.SectionReader
	// MemSize is the segment's size in memory (p_memsz); the bytes after
	// Data are zero.
	MemSize uint64
}

// End is the guest physical address just past the segment.
func (s Segment) End() uint64 { return s.Paddr + s.MemSize }

// elfHeader is what the loader reads from Elf64_Ehdr.
type elfHeader struct {
	phoff     uint64
	phentsize uint16
	phnum     uint16
}

// elfPhdr is what the loader reads from an Elf64_Phdr.
type elfPhdr struct {
	typ                   uint32
	offset, paddr         uint64
	filesz, memsz, palign uint64
}

// ParseELF checks that src is an ELF64 x86-64 executable with a PVH entry
// note and reads its loadable segments. It reads the headers and notes;
// the segments' Data are parts of src, read as they are loaded. It never
// panics: anything out of bounds is an error wrapping ErrBadELF.
func ParseELF(src *io.SectionReader) (*ELF, error) {
	head, err := readHead(src, elf64HeaderSize)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadELF, err)
	}
	fileSize := uint64(src.Size())
	h, err := parseELFHeader(head, fileSize)
	if err != nil {
		return nil, err
	}
	phdrs, err := readAt(src, int64(h.phoff), int64(h.phnum)*elf64PhdrSize)
	if err != nil {
		return nil, fmt.Errorf("%w: program headers: %w", ErrBadELF, err)
	}
	e := &ELF{}
	entry, found := uint64(0), false
	for i := range int(h.phnum) {
		ph := readPhdr(phdrs[i*elf64PhdrSize:])
		if ph.typ != ptLoad && ph.typ != ptNote {
			continue
		}
		if ph.offset > fileSize || ph.filesz > fileSize-ph.offset {
			return nil, fmt.Errorf("%w: truncated: segment %d's %d bytes at file offset %#x end past the file's %d bytes",
				ErrBadELF, i, ph.filesz, ph.offset, fileSize)
		}
		switch ph.typ {
		case ptLoad:
			if ph.filesz > ph.memsz {
				return nil, fmt.Errorf("%w: segment %d has %d bytes in the file but only %d in memory", ErrBadELF, i, ph.filesz, ph.memsz)
			}
			if ph.paddr > ^uint64(0)-ph.memsz {
				return nil, fmt.Errorf("%w: segment %d at %#x of %#x bytes wraps around the address space", ErrBadELF, i, ph.paddr, ph.memsz)
			}
			if ph.memsz > 0 {
				data := io.NewSectionReader(src, int64(ph.offset), int64(ph.filesz))
				e.Segments = append(e.Segments, Segment{Index: i, Paddr: ph.paddr, Data: data, MemSize: ph.memsz})
			}
		case ptNote:
			if found {
				continue
			}
			body, err := readAt(src, int64(ph.offset), int64(ph.filesz))
			if err != nil {
				return nil, fmt.Errorf("%w: segment %d: %w", ErrBadELF, i, err)
			}
			if entry, found, err = findPVHEntry(body, ph.palign); err != nil {
				return nil, fmt.Errorf("%w: segment %d: %w", ErrBadELF, i, err)
			}
		}
	}
	if len(e.Segments) == 0 {
		return nil, fmt.Errorf("%w: no PT_LOAD segment to load", ErrBadELF)
	}
	if !found {
		return nil, fmt.Errorf("%w: no Xen ELF note XEN_ELFNOTE_PHYS32_ENTRY (%d) in a PT_NOTE segment (a Linux kernel needs CONFIG_PVH=y)",
			ErrNoPVH, xenElfnotePhys32Entry)
	}
	if entry >= 1<<32 {
		return nil, fmt.Errorf("%w: the PVH entry %#x is above 4 GiB, out of reach in 32-bit mode", ErrBadELF, entry)
	}
	e.PVHEntry = uint32(entry)
	if !e.loaded(entry) {
		return nil, fmt.Errorf("%w: the PVH entry %#x is not in the file bytes of any PT_LOAD segment", ErrBadELF, entry)
	}
	return e, nil
}

// loaded reports whether addr is in the file bytes of a segment.
func (e *ELF) loaded(addr uint64) bool {
	for _, s := range e.Segments {
		if addr >= s.Paddr && addr-s.Paddr < sizeOf(s.Data) {
			return true
		}
	}
	return false
}

// parseELFHeader checks the ELF header, the first bytes of a file of
// fileSize bytes, and that the program header table lies in the file.
func parseELFHeader(data []byte, fileSize uint64) (elfHeader, error) {
	var h elfHeader
	if len(data) < len(elfMagic) || string(data[:len(elfMagic)]) != elfMagic {
		return h, fmt.Errorf("%w: no ELF magic", ErrBadELF)
	}
	if len(data) < elf64HeaderSize {
		return h, fmt.Errorf("%w: truncated: %d bytes is shorter than an ELF64 header", ErrBadELF, len(data))
	}
	le := binary.LittleEndian
	switch {
	case data[4] == elfClass32:
		return h, fmt.Errorf("%w: a 32-bit ELF (ELFCLASS32); only 64-bit x86-64 images boot", ErrBadELF)
	case data[4] != elfClass64:
		return h, fmt.Errorf("%w: unknown ELF class %d", ErrBadELF, data[4])
	case data[5] != elfData2LSB:
		return h, fmt.Errorf("%w: not little-endian (EI_DATA %d)", ErrBadELF, data[5])
	case data[6] != elfVersion || le.Uint32(data[20:]) != elfVersion:
		return h, fmt.Errorf("%w: unknown ELF version %d", ErrBadELF, data[6])
	}
	if t := le.Uint16(data[16:]); t != elfTypeExec && t != elfTypeDyn {
		return h, fmt.Errorf("%w: ELF type %d is not an executable (ET_EXEC or ET_DYN)", ErrBadELF, t)
	}
	if m := le.Uint16(data[18:]); m != elfMachineX64 {
		return h, fmt.Errorf("%w: machine %d is not x86-64 (EM_X86_64, %d)", ErrBadELF, m, elfMachineX64)
	}
	h.phoff = le.Uint64(data[32:])
	h.phentsize = le.Uint16(data[54:])
	h.phnum = le.Uint16(data[56:])
	switch {
	case h.phnum == 0:
		return h, fmt.Errorf("%w: no program headers", ErrBadELF)
	case h.phnum == elfPNXNum:
		return h, fmt.Errorf("%w: more program headers than e_phnum holds (PN_XNUM)", ErrBadELF)
	case h.phentsize != elf64PhdrSize:
		return h, fmt.Errorf("%w: program header size %d, want %d", ErrBadELF, h.phentsize, elf64PhdrSize)
	case h.phoff > fileSize || uint64(h.phnum)*elf64PhdrSize > fileSize-h.phoff:
		return h, fmt.Errorf("%w: truncated: %d program headers at file offset %#x end past the file's %d bytes",
			ErrBadELF, h.phnum, h.phoff, fileSize)
	}
	return h, nil
}

// readPhdr reads an Elf64_Phdr from b, which holds at least one.
func readPhdr(b []byte) elfPhdr {
	le := binary.LittleEndian
	return elfPhdr{
		typ:    le.Uint32(b[0:]),
		offset: le.Uint64(b[8:]),
		paddr:  le.Uint64(b[24:]),
		filesz: le.Uint64(b[32:]),
		memsz:  le.Uint64(b[40:]),
		palign: le.Uint64(b[48:]),
	}
}

// findPVHEntry walks the notes of a PT_NOTE segment's bytes for the first
// XEN_ELFNOTE_PHYS32_ENTRY note and returns its address. Each note is a
// 12-byte header (namesz, descsz, type), the name and the descriptor, each
// padded to the segment's alignment: 4 bytes, or 8 when p_align says so
// (the gABI's "Note Section").
func findPVHEntry(b []byte, palign uint64) (uint64, bool, error) {
	align := uint64(4)
	if palign == 8 {
		align = 8
	}
	le := binary.LittleEndian
	for off := uint64(0); off < uint64(len(b)); {
		rest := uint64(len(b)) - off
		if rest < 12 {
			return 0, false, fmt.Errorf("a note header at %#x is truncated", off)
		}
		namesz, descsz := uint64(le.Uint32(b[off:])), uint64(le.Uint32(b[off+4:]))
		typ := le.Uint32(b[off+8:])
		nameOff := off + 12
		descOff := nameOff + alignUp(namesz, align)
		next := descOff + alignUp(descsz, align)
		// namesz and descsz are 32-bit, so these sums cannot overflow.
		if descOff+descsz > uint64(len(b)) {
			return 0, false, fmt.Errorf("the note at %#x (name %d bytes, descriptor %d) runs past its segment's %d bytes", off, namesz, descsz, len(b))
		}
		name := bytes.TrimRight(b[nameOff:nameOff+namesz], "\x00")
		if typ == xenElfnotePhys32Entry && string(name) == xenNoteName {
			desc := b[descOff : descOff+descsz]
			switch descsz {
			case 4:
				return uint64(le.Uint32(desc)), true, nil
			case 8:
				return le.Uint64(desc), true, nil
			}
			return 0, false, fmt.Errorf("the PVH entry note's descriptor has %d bytes, want 4 or 8", descsz)
		}
		off = next
	}
	return 0, false, nil
}

// alignUp rounds n up to a multiple of align, a power of two.
func alignUp(n, align uint64) uint64 { return (n + align - 1) &^ (align - 1) }
