// Package boottest builds boot images for tests: small ELF64 x86-64
// executables laid out segment by segment, with or without the PVH entry
// note, as package boot reads them. It imports nothing of this module, so
// package boot's own tests may use it.
package boottest

import "encoding/binary"

// ELF numbers (the System V gABI; Xen's elfnote.h for the PVH note).
const (
	PTLoad = 1 // PT_LOAD
	PTNote = 4 // PT_NOTE
	// XenPVHEntry is XEN_ELFNOTE_PHYS32_ENTRY, the PVH entry note's type.
	XenPVHEntry = 18

	headerSize = 64 // sizeof(Elf64_Ehdr)
	phdrSize   = 56 // sizeof(Elf64_Phdr)
)

// Segment is a program header and its bytes.
type Segment struct {
	Type  uint32
	Paddr uint64
	Data  []byte
	// MemSize is p_memsz; 0 means len(Data).
	MemSize uint64
	Align   uint64
}

// ELF lays out an ELF64 little-endian x86-64 executable: the header, the
// program headers right after it, then each segment's bytes in order.
func ELF(segs ...Segment) []byte {
	le := binary.LittleEndian
	h := make([]byte, headerSize+len(segs)*phdrSize)
	copy(h, "\x7fELF")
	h[4], h[5], h[6] = 2, 1, 1 // ELFCLASS64, ELFDATA2LSB, EV_CURRENT
	le.PutUint16(h[16:], 2)    // ET_EXEC
	le.PutUint16(h[18:], 62)   // EM_X86_64
	le.PutUint32(h[20:], 1)
	le.PutUint64(h[24:], 0x1000000) // e_entry: not the PVH entry
	le.PutUint64(h[32:], headerSize)
	le.PutUint16(h[52:], headerSize)
	le.PutUint16(h[54:], phdrSize)
	le.PutUint16(h[56:], uint16(len(segs)))
	off := uint64(len(h))
	var body []byte
	for i, s := range segs {
		ph := h[headerSize+i*phdrSize:]
		memsz := s.MemSize
		if memsz == 0 {
			memsz = uint64(len(s.Data))
		}
		le.PutUint32(ph[0:], s.Type)
		le.PutUint64(ph[8:], off)
		le.PutUint64(ph[16:], 0xffffffff80000000+s.Paddr) // p_vaddr: ignored
		le.PutUint64(ph[24:], s.Paddr)
		le.PutUint64(ph[32:], uint64(len(s.Data)))
		le.PutUint64(ph[40:], memsz)
		le.PutUint64(ph[48:], s.Align)
		body = append(body, s.Data...)
		off += uint64(len(s.Data))
	}
	return append(h, body...)
}

// Note encodes one ELF note: the 12-byte header, the name with its NUL and
// the descriptor, each padded to align.
func Note(name string, typ uint32, desc []byte, align int) []byte {
	le := binary.LittleEndian
	b := make([]byte, 12)
	n := append([]byte(name), 0)
	le.PutUint32(b[0:], uint32(len(n)))
	le.PutUint32(b[4:], uint32(len(desc)))
	le.PutUint32(b[8:], typ)
	pad := func(p []byte) []byte {
		for len(p)%align != 0 {
			p = append(p, 0)
		}
		return p
	}
	b = append(b, pad(n)...)
	return append(b, pad(append([]byte(nil), desc...))...)
}

// PVHNote is a PT_NOTE segment holding the PVH entry note for entry, its
// descriptor 8 bytes as Linux writes it on x86_64.
func PVHNote(entry uint64) Segment {
	return Segment{Type: PTNote, Data: Note("Xen", XenPVHEntry, binary.LittleEndian.AppendUint64(nil, entry), 4), Align: 4}
}

// PVHELF is the smallest bootable PVH image: code loaded at paddr, entered
// at its first byte.
func PVHELF(paddr uint64, code []byte) []byte {
	return ELF(Segment{Type: PTLoad, Paddr: paddr, Data: code}, PVHNote(paddr))
}
