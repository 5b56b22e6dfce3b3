package acpi

import "encoding/binary"

// Name declares a named data object: ASL Name(name, value).
func Name(name string, value Aml) Aml {
	return amlFunc(func(b []byte) []byte {
		b = appendNameString(append(b, nameOp), name)
		return appendTerm(b, value)
	})
}

// Scope opens an existing namespace scope and adds body to it: ASL
// Scope(name) { body }.
func Scope(name string, body ...Aml) Aml {
	return scope([]byte{scopeOp}, name, body)
}

// Device declares a device object holding body: ASL Device(name) { body }.
func Device(name string, body ...Aml) Aml {
	return scope([]byte{extOpPrefix, deviceOp}, name, body)
}

// scope is any package-length object made of a name and a term list.
func scope(op []byte, name string, body []Aml) Aml {
	return amlFunc(func(b []byte) []byte {
		return appendPackage(b, op, func(c []byte) []byte {
			return appendTerms(appendNameString(c, name), body)
		})
	})
}

// Method declares a control method taking args arguments (0 to 7).
// A serialized method runs one invocation at a time; its sync level is 0.
// ASL: Method(name, args, Serialized|NotSerialized) { body }.
func Method(name string, args int, serialized bool, body ...Aml) Aml {
	return amlFunc(func(b []byte) []byte {
		if args < 0 || args > 7 {
			fail("method %q: %d arguments (0-7 allowed)", name, args)
		}
		flags := byte(args)
		if serialized {
			flags |= 1 << 3
		}
		return appendPackage(b, []byte{methodOp}, func(c []byte) []byte {
			return appendTerms(append(appendNameString(c, name), flags), body)
		})
	})
}

// Mutex declares a mutex object with the given sync level (0 to 15):
// ASL Mutex(name, syncLevel).
func Mutex(name string, syncLevel uint8) Aml {
	return amlFunc(func(b []byte) []byte {
		if syncLevel > 15 {
			fail("mutex %q: sync level %d (0-15 allowed)", name, syncLevel)
		}
		return append(appendNameString(append(b, extOpPrefix, mutexOp), name), syncLevel)
	})
}

// WaitForever is the Acquire timeout that never expires.
const WaitForever = 0xffff

// Acquire waits up to timeout milliseconds ([WaitForever] for no limit) for
// the mutex named mutex; as an expression it is true when the wait timed
// out: ASL Acquire(mutex, timeout).
func Acquire(mutex string, timeout uint16) Aml {
	return amlFunc(func(b []byte) []byte {
		b = appendNameString(append(b, extOpPrefix, acquireOp), mutex)
		return binary.LittleEndian.AppendUint16(b, timeout)
	})
}

// Release releases the mutex named mutex: ASL Release(mutex).
func Release(mutex string) Aml {
	return amlFunc(func(b []byte) []byte {
		return appendNameString(append(b, extOpPrefix, releaseOp), mutex)
	})
}

// RegionSpace is the address space of an operation region.
type RegionSpace uint8

// Region spaces (ACPI 6.5, 19.6.100 "OperationRegion").
const (
	SystemMemory RegionSpace = 0x00
	SystemIO     RegionSpace = 0x01
)

// OperationRegion declares a region of length bytes at offset in space:
// ASL OperationRegion(name, space, offset, length).
func OperationRegion(name string, space RegionSpace, offset, length uint64) Aml {
	return amlFunc(func(b []byte) []byte {
		b = appendNameString(append(b, extOpPrefix, opRegionOp), name)
		b = append(b, byte(space))
		b = Int(offset).AppendAml(b)
		return Int(length).AppendAml(b)
	})
}

// AccessType is how a field's region is accessed.
type AccessType uint8

// Access types (ACPI 6.5, 19.6.48 "Field").
const (
	AnyAcc    AccessType = 0
	ByteAcc   AccessType = 1
	WordAcc   AccessType = 2
	DWordAcc  AccessType = 3
	QWordAcc  AccessType = 4
	BufferAcc AccessType = 5
)

// LockRule says whether field accesses take the global lock.
type LockRule uint8

// Lock rules.
const (
	NoLock LockRule = 0
	Lock   LockRule = 1
)

// UpdateRule says what a write puts in the bits of an access that lie
// outside the field written.
type UpdateRule uint8

// Update rules.
const (
	Preserve     UpdateRule = 0
	WriteAsOnes  UpdateRule = 1
	WriteAsZeros UpdateRule = 2
)

// FieldElement is one entry of a [Field]: a [FieldUnit] or a [FieldOffset].
type FieldElement interface {
	// appendField appends the element's encoding; pos is the current bit
	// offset into the region and is advanced.
	appendField(b []byte, pos *uint64) []byte
}

// FieldUnit is a named field of Bits bits (at least 1) at the current
// position: the ASL field list entry "Name, Bits". Name is one name segment.
type FieldUnit struct {
	Name string
	Bits uint32
}

func (u FieldUnit) appendField(b []byte, pos *uint64) []byte {
	if u.Bits == 0 {
		fail("field unit %q: zero bits", u.Name)
	}
	b = appendSingleSeg(b, u.Name)
	*pos += uint64(u.Bits)
	return appendFieldLength(b, uint64(u.Bits))
}

// FieldOffset moves the position to this byte offset from the start of the
// region, leaving the bits in between unnamed: ASL Offset(n). It must not go
// backwards.
type FieldOffset uint64

func (o FieldOffset) appendField(b []byte, pos *uint64) []byte {
	target := uint64(o) * 8
	switch {
	case target < *pos:
		fail("field Offset(%#x) is behind the current bit position %d", uint64(o), *pos)
	case target == *pos:
		return b
	}
	gap := target - *pos
	*pos = target
	return appendFieldLength(append(b, 0x00), gap) // ReservedField
}

// appendFieldLength appends a field's bit count. Fields reuse the package
// length encoding, but the value is the bit count alone: it does not count
// the encoding's own bytes.
func appendFieldLength(b []byte, bits uint64) []byte {
	if bits > MaxPkgLength {
		fail("field of %d bits is too long (limit %d)", bits, MaxPkgLength)
	}
	return appendLengthValue(b, uint32(bits))
}

// Field declares named fields over the operation region named region:
// ASL Field(region, access, lock, update) { elements }.
func Field(region string, access AccessType, lock LockRule, update UpdateRule, elements ...FieldElement) Aml {
	return amlFunc(func(b []byte) []byte {
		if access > BufferAcc || lock > Lock || update > WriteAsZeros {
			fail("field over %q: invalid access type %d, lock rule %d or update rule %d", region, access, lock, update)
		}
		// FieldFlags: bits 3-0 access type, bit 4 lock rule, bits 6-5
		// update rule.
		flags := byte(access) | byte(lock)<<4 | byte(update)<<5
		return appendPackage(b, []byte{extOpPrefix, fieldOp}, func(c []byte) []byte {
			c = append(appendNameString(c, region), flags)
			var pos uint64
			for _, e := range elements {
				if e == nil {
					fail("field over %q: nil element", region)
				}
				c = e.appendField(c, &pos)
			}
			return c
		})
	})
}

// CreateDWordField names the 32 bits of the buffer buf starting at byte
// index: ASL CreateDWordField(buf, index, name).
func CreateDWordField(buf Aml, index uint64, name string) Aml {
	return createField(createDWordFieldOp, buf, index, name)
}

// CreateQWordField names the 64 bits of the buffer buf starting at byte
// index: ASL CreateQWordField(buf, index, name).
func CreateQWordField(buf Aml, index uint64, name string) Aml {
	return createField(createQWordFieldOp, buf, index, name)
}

// createField is a CreateXField with the opcode op.
func createField(op byte, buf Aml, index uint64, name string) Aml {
	return amlFunc(func(b []byte) []byte {
		b = appendTerm(append(b, op), buf)
		b = Int(index).AppendAml(b)
		return appendNameString(b, name)
	})
}
