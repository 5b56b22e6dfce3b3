package acpi

import "strings"

// Path is an AML name string in ASL spelling: a name segment ("CPUS"), a
// dotted path ("CPUS.CP00"), either optionally led by the root character
// ("\_SB.CPUS") or by parent prefixes ("^^PCI0"). A segment has one to four
// characters, the first 'A'-'Z' or '_', the others 'A'-'Z', '0'-'9' or '_';
// shorter segments are padded with '_'. The root path alone is `\`.
//
// As an operand a Path refers to the named object; a Path naming a method
// invokes it with no arguments (use [Call] to pass arguments).
type Path string

// AppendAml appends the NameString encoding of p.
func (p Path) AppendAml(b []byte) []byte {
	return appendNameString(b, string(p))
}

// appendNameString encodes an ASL name path (ACPI 6.5, 20.2.2 "Name
// Objects Encoding").
func appendNameString(b []byte, p string) []byte {
	s := p
	switch {
	case strings.HasPrefix(s, `\`):
		b = append(b, rootChar)
		s = s[1:]
	default:
		for strings.HasPrefix(s, "^") {
			b = append(b, parentPrefixChar)
			s = s[1:]
		}
	}
	if s == "" {
		if len(p) == 0 || p[0] != '\\' {
			fail("name %q: no name segment", p)
		}
		return append(b, 0) // NullName after the root: the root itself
	}
	segs := strings.Split(s, ".")
	switch {
	case len(segs) == 2:
		b = append(b, dualNamePrefix)
	case len(segs) > 2:
		if len(segs) > 255 {
			fail("name %q: more than 255 segments", p)
		}
		b = append(b, multiNamePrefix, byte(len(segs)))
	}
	for _, seg := range segs {
		b = appendNameSeg(b, seg, p)
	}
	return b
}

// appendNameSeg appends one four-byte name segment, padding it with '_'.
// path is the full name, for the error message.
func appendNameSeg(b []byte, seg, path string) []byte {
	if len(seg) < 1 || len(seg) > 4 {
		fail("name %q: segment %q must have 1 to 4 characters", path, seg)
	}
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		ok := c == '_' || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')
		if !ok {
			fail("name %q: segment %q: character %q not allowed (A-Z, _, and 0-9 after the first)", path, seg, c)
		}
	}
	b = append(b, seg...)
	for i := len(seg); i < 4; i++ {
		b = append(b, '_')
	}
	return b
}

// appendSingleSeg appends a single segment (no path prefixes allowed), as field
// units require.
func appendSingleSeg(b []byte, name string) []byte {
	return appendNameSeg(b, name, name)
}
