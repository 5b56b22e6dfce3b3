package acpi

import (
	"encoding/binary"
	"fmt"
)

// Aml is one AML construct: a data object, a named object, a statement or an
// expression. AppendAml appends the construct's byte code to b and returns
// the extended slice; it panics with an [*EncodeError] if the construct is
// malformed (see [Encode]).
type Aml interface {
	AppendAml(b []byte) []byte
}

// EncodeError reports a construct that has no AML encoding, such as an
// invalid name or a package longer than 2^28 bytes.
type EncodeError struct {
	msg string
}

// Error returns the description of what could not be encoded.
func (e *EncodeError) Error() string { return "aml: " + e.msg }

// fail aborts an encoding; Encode and the table builders recover it.
func fail(format string, args ...any) {
	panic(&EncodeError{msg: fmt.Sprintf(format, args...)})
}

// Encode returns the byte code of objs, one after another. It returns an
// [*EncodeError] instead of panicking when one of them is malformed.
func Encode(objs ...Aml) (b []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(*EncodeError)
			if !ok {
				panic(r)
			}
			b, err = nil, e
		}
	}()
	for _, o := range objs {
		b = appendTerm(b, o)
	}
	return b, nil
}

// appendTerm appends o, rejecting a nil construct.
func appendTerm(b []byte, o Aml) []byte {
	if o == nil {
		fail("nil construct")
	}
	return o.AppendAml(b)
}

// appendTerms appends each construct of list in order.
func appendTerms(b []byte, list []Aml) []byte {
	for _, o := range list {
		b = appendTerm(b, o)
	}
	return b
}

// amlFunc is a construct whose encoding a function appends: the
// constructors with no data type of their own return one, capturing their
// arguments.
type amlFunc func(b []byte) []byte

// AppendAml calls f.
func (f amlFunc) AppendAml(b []byte) []byte { return f(b) }

// Terms is a list of constructs encoded one after another, such as the
// objects a device contributes to a scope.
type Terms []Aml

// AppendAml appends every construct of t in order.
func (t Terms) AppendAml(b []byte) []byte { return appendTerms(b, t) }

// AML opcodes (ACPI 6.5, section 20.3 "AML Byte Stream Byte Values").
const (
	zeroOp             = 0x00
	oneOp              = 0x01
	nameOp             = 0x08
	bytePrefix         = 0x0a
	wordPrefix         = 0x0b
	dwordPrefix        = 0x0c
	stringPrefix       = 0x0d
	qwordPrefix        = 0x0e
	scopeOp            = 0x10
	bufferOp           = 0x11
	packageOp          = 0x12
	varPackageOp       = 0x13
	methodOp           = 0x14
	dualNamePrefix     = 0x2e
	multiNamePrefix    = 0x2f
	extOpPrefix        = 0x5b
	rootChar           = 0x5c
	parentPrefixChar   = 0x5e
	local0Op           = 0x60
	arg0Op             = 0x68
	storeOp            = 0x70
	addOp              = 0x72
	subtractOp         = 0x74
	incrementOp        = 0x75
	decrementOp        = 0x76
	shiftLeftOp        = 0x79
	shiftRightOp       = 0x7a
	andOp              = 0x7b
	orOp               = 0x7d
	notifyOp           = 0x86
	sizeOfOp           = 0x87
	createDWordFieldOp = 0x8a
	createQWordFieldOp = 0x8f
	lAndOp             = 0x90
	lOrOp              = 0x91
	lNotOp             = 0x92
	lEqualOp           = 0x93
	lGreaterOp         = 0x94
	lLessOp            = 0x95
	ifOp               = 0xa0
	elseOp             = 0xa1
	whileOp            = 0xa2
	returnOp           = 0xa4
	onesOp             = 0xff

	// Second bytes after extOpPrefix.
	mutexOp    = 0x01
	sleepOp    = 0x22
	acquireOp  = 0x23
	releaseOp  = 0x27
	opRegionOp = 0x80
	fieldOp    = 0x81
	deviceOp   = 0x82
)

// Package length limits (ACPI 6.5, 20.2.4 "Package Length Encoding"). A
// package length counts its own bytes and everything after them up to the
// end of the package.
const (
	// MaxPkgLength is the largest package length AML can encode (28 bits).
	MaxPkgLength  = 1<<28 - 1
	maxPkgLength1 = 1<<6 - 1  // one byte: 6 bits
	maxPkgLength2 = 1<<12 - 1 // two bytes: 4 + 8 bits
	maxPkgLength3 = 1<<20 - 1 // three bytes: 4 + 16 bits
)

// PkgLengthSize returns how many bytes (1 to 4) the package length of a
// package whose contents (after the length) are n bytes long takes, and
// false when no encoding can hold it.
func PkgLengthSize(n int) (int, bool) {
	switch {
	case n < 0:
		return 0, false
	case n+1 <= maxPkgLength1:
		return 1, true
	case n+2 <= maxPkgLength2:
		return 2, true
	case n+3 <= maxPkgLength3:
		return 3, true
	case n+4 <= MaxPkgLength:
		return 4, true
	}
	return 0, false
}

// AppendPkgLength appends the package length of a package whose contents
// after the length are n bytes long: n plus the length's own 1 to 4 bytes,
// in the shortest encoding. It returns an error when n is negative or the
// package would exceed [MaxPkgLength].
func AppendPkgLength(b []byte, n int) ([]byte, error) {
	size, ok := PkgLengthSize(n)
	if !ok {
		return b, fmt.Errorf("aml: package contents of %d bytes cannot be encoded (limit %d)", n, MaxPkgLength-4)
	}
	return appendLengthValue(b, uint32(n+size)), nil
}

// appendLengthValue appends v (at most MaxPkgLength) in the package length
// format, in as few bytes as hold it.
func appendLengthValue(b []byte, v uint32) []byte {
	if v <= maxPkgLength1 {
		return append(b, byte(v))
	}
	size := 2
	if v > maxPkgLength2 {
		size = 3
	}
	if v > maxPkgLength3 {
		size = 4
	}
	// Lead byte: bits 7-6 count the following bytes, bits 3-0 hold the
	// low nibble; the following bytes hold the rest, least significant
	// first.
	b = append(b, byte(size-1)<<6|byte(v&0x0f))
	v >>= 4
	for i := 1; i < size; i++ {
		b = append(b, byte(v))
		v >>= 8
	}
	return b
}

// DecodePkgLength reads the package length at the start of b. It returns
// the length (which counts the length bytes themselves) and how many bytes
// the encoding took.
func DecodePkgLength(b []byte) (length, size int, err error) {
	if len(b) == 0 {
		return 0, 0, fmt.Errorf("aml: package length: no bytes")
	}
	lead := b[0]
	size = int(lead>>6) + 1
	if size == 1 {
		return int(lead & 0x3f), 1, nil
	}
	if lead&0x30 != 0 {
		return 0, 0, fmt.Errorf("aml: package length: lead byte %#02x has reserved bits 5-4 set", lead)
	}
	if len(b) < size {
		return 0, 0, fmt.Errorf("aml: package length: need %d bytes, have %d", size, len(b))
	}
	length = int(lead & 0x0f)
	for i := 1; i < size; i++ {
		length |= int(b[i]) << (4 + 8*(i-1))
	}
	return length, size, nil
}

// appendPackage appends op (one or two bytes), a package length and the
// contents written by body. The contents are written first into a scratch
// slice so the length's size is known before the length is placed.
func appendPackage(b []byte, op []byte, body func(b []byte) []byte) []byte {
	contents := body(nil)
	b = append(b, op...)
	b, err := AppendPkgLength(b, len(contents))
	if err != nil {
		fail("%v", err)
	}
	return append(b, contents...)
}

// Opcode is an AML construct encoded as a single opcode with no operands:
// the constant objects Zero, One and Ones, and the statements Break and
// Noop.
type Opcode byte

// Single-opcode constructs.
const (
	// Zero is the integer 0 (ZeroOp).
	Zero Opcode = 0x00
	// One is the integer 1 (OneOp).
	One Opcode = 0x01
	// Ones is the integer with all bits set (OnesOp): 0xFFFFFFFFFFFFFFFF
	// in tables of revision 2 or later.
	Ones Opcode = 0xff
	// Break leaves the innermost While (BreakOp).
	Break Opcode = 0xa5
	// Noop does nothing (NoopOp).
	Noop Opcode = 0xa3
)

// AppendAml appends the opcode.
func (o Opcode) AppendAml(b []byte) []byte {
	switch o {
	case Zero, One, Ones, Break, Noop:
		return append(b, byte(o))
	}
	fail("%#02x is not a single-opcode construct", byte(o))
	return b
}

// Int is an AML integer, encoded in the fewest bytes: ZeroOp for 0, OneOp
// for 1, OnesOp for all 64 bits set (as iasl does; the tables built here
// have 64-bit integers), else a byte, word, dword or qword constant.
type Int uint64

// AppendAml appends the integer's shortest encoding.
func (i Int) AppendAml(b []byte) []byte {
	switch {
	case i == 0:
		return append(b, zeroOp)
	case i == 1:
		return append(b, oneOp)
	case i <= 0xff:
		return append(b, bytePrefix, byte(i))
	case i <= 0xffff:
		return binary.LittleEndian.AppendUint16(append(b, wordPrefix), uint16(i))
	case i <= 0xffffffff:
		return binary.LittleEndian.AppendUint32(append(b, dwordPrefix), uint32(i))
	case i == 1<<64-1:
		return append(b, onesOp)
	}
	return binary.LittleEndian.AppendUint64(append(b, qwordPrefix), uint64(i))
}

// String is an AML string constant: ASCII characters 0x01 to 0x7F.
type String string

// AppendAml appends the string with its prefix and terminating NUL.
func (s String) AppendAml(b []byte) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 || s[i] > 0x7f {
			fail("string %q: byte %#02x at %d is not ASCII 0x01-0x7F", string(s), s[i], i)
		}
	}
	b = append(b, stringPrefix)
	b = append(b, s...)
	return append(b, 0)
}

// Buffer is an AML buffer initialised with its bytes; its size is its length.
type Buffer []byte

// AppendAml appends BufferOp, the size and the bytes.
func (buf Buffer) AppendAml(b []byte) []byte {
	return appendPackage(b, []byte{bufferOp}, func(c []byte) []byte {
		c = Int(len(buf)).AppendAml(c)
		return append(c, buf...)
	})
}

// Package is an AML package of the given elements. Up to 255 elements use
// PackageOp; longer packages use VarPackageOp.
type Package []Aml

// AppendAml appends the package and its elements.
func (p Package) AppendAml(b []byte) []byte {
	if len(p) <= 0xff {
		return appendPackage(b, []byte{packageOp}, func(c []byte) []byte {
			return appendTerms(append(c, byte(len(p))), p)
		})
	}
	return appendPackage(b, []byte{varPackageOp}, func(c []byte) []byte {
		return appendTerms(Int(len(p)).AppendAml(c), p)
	})
}

// Local is one of a method's local variables Local0 to Local7.
type Local uint8

// AppendAml appends the LocalN opcode.
func (l Local) AppendAml(b []byte) []byte {
	if l > 7 {
		fail("Local%d does not exist (Local0-Local7)", l)
	}
	return append(b, local0Op+byte(l))
}

// Arg is one of a method's arguments Arg0 to Arg6.
type Arg uint8

// AppendAml appends the ArgN opcode.
func (a Arg) AppendAml(b []byte) []byte {
	if a > 6 {
		fail("Arg%d does not exist (Arg0-Arg6)", a)
	}
	return append(b, arg0Op+byte(a))
}

// EISAID returns the integer form of a seven-character EISA/PNP id such as
// "PNP0C0C", as ASL's EISAID() macro computes it. An invalid id makes the
// encoding fail (see [CompressEISAID]).
func EISAID(id string) Aml {
	return checked(func() (Aml, error) {
		v, err := CompressEISAID(id)
		return Int(v), err
	})
}

// checked is AML made when it is encoded from a value that may be invalid,
// such as an EISA id or a UUID string: an error makes the encoding fail.
type checked func() (Aml, error)

func (c checked) AppendAml(b []byte) []byte {
	a, err := c()
	if err != nil {
		fail("%v", err)
	}
	return a.AppendAml(b)
}

// CompressEISAID packs an EISA id of three upper-case letters and four
// hexadecimal digits ("PNP0A03") into 32 bits: the letters as 5-bit values
// (letter - 0x40) in the first two bytes, big-endian, then the digits, so
// that the value's little-endian bytes read 0x41 0xD0 0x0A 0x03 for PNP0A03.
func CompressEISAID(id string) (uint32, error) {
	if len(id) != 7 {
		return 0, fmt.Errorf("EISA id %q: want 3 letters and 4 hex digits", id)
	}
	var letters uint32
	for i := 0; i < 3; i++ {
		c := id[i]
		if c < 'A' || c > 'Z' {
			return 0, fmt.Errorf("EISA id %q: %q is not an upper-case letter", id, c)
		}
		letters = letters<<5 | uint32(c-0x40)
	}
	var digits uint32
	for i := 3; i < 7; i++ {
		d, ok := hexDigit(id[i])
		if !ok {
			return 0, fmt.Errorf("EISA id %q: %q is not a hex digit", id, id[i])
		}
		digits = digits<<4 | uint32(d)
	}
	// Bytes in memory order: letters high byte, letters low byte, digits
	// high byte, digits low byte.
	return letters>>8&0xff | (letters&0xff)<<8 | (digits>>8&0xff)<<16 | (digits&0xff)<<24, nil
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
