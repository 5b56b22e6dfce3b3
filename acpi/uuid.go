package acpi

import (
	"encoding/hex"
	"strings"
)

// UUID is the 16-byte buffer of a UUID written as
// "33DB4D5B-1FF7-401C-9657-7441C03DD766": ASL ToUUID(s). Its first three
// groups are stored little endian, the last two as written (ACPI 6.5,
// 19.6.143 "ToUUID"). _OSC and _DSM compare their first argument with
// one. A malformed string makes the encoding fail.
func UUID(s string) Aml {
	return checked(func() (Aml, error) {
		raw, err := UUIDBytes(s)
		return Buffer(raw), err
	})
}

// UUIDBytes returns the 16 bytes ToUUID makes of s.
func UUIDBytes(s string) ([]byte, error) {
	groups := strings.Split(s, "-")
	lens := []int{8, 4, 4, 4, 12}
	if len(groups) != len(lens) {
		return nil, &EncodeError{msg: "UUID " + s + ": want 8-4-4-4-12 hex digits"}
	}
	var out []byte
	for i, g := range groups {
		v, err := hex.DecodeString(g)
		if len(g) != lens[i] || err != nil {
			return nil, &EncodeError{msg: "UUID " + s + ": want 8-4-4-4-12 hex digits"}
		}
		if i < 3 {
			for l, r := 0, len(v)-1; l < r; l, r = l+1, r-1 {
				v[l], v[r] = v[r], v[l]
			}
		}
		out = append(out, v...)
	}
	return out, nil
}
