package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Cloud Hypervisor's option syntax (its option_parser crate): a flag's
// value is key=value pairs separated by commas; commas inside [...] or
// "..." do not split, double quotes are removed, an empty value leaves the
// key unset. Values are toggles (on, off, true, false), sizes (bytes, or a
// number with K, M or G), integer lists ([1,2,5-7]), string lists ([a,b])
// and tuple lists ([key@value,...]).

// setter stores one option's value into what a flag builds.
type setter func(value string) error

// optionSet is the keys a flag knows, each with its setter.
type optionSet struct {
	flag string
	keys []string
	set  map[string]setter
}

// newOptions starts the key table of flag.
func newOptions(flag string) *optionSet {
	return &optionSet{flag: flag, set: map[string]setter{}}
}

// add registers key.
func (o *optionSet) add(key string, s setter) *optionSet {
	o.keys = append(o.keys, key)
	o.set[key] = s
	return o
}

// parse applies s's options in order. An unknown key, a key given twice or
// a value that does not parse is an error naming the flag and the key.
func (o *optionSet) parse(s string) error {
	seen := map[string]bool{}
	for _, part := range splitOptions(s) {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return fmt.Errorf("--%s: Invalid syntax: %q is not key=value", o.flag, part)
		}
		set, known := o.set[k]
		if !known {
			return fmt.Errorf("--%s: Unknown option: %s (known: %s)", o.flag, k, strings.Join(o.keys, ", "))
		}
		if seen[k] {
			return fmt.Errorf("--%s: option %s given twice", o.flag, k)
		}
		seen[k] = true
		v = unquote(v)
		if v == "" {
			continue // an empty value leaves the key unset
		}
		if err := set(v); err != nil {
			return fmt.Errorf("--%s: %s=%s: %w", o.flag, k, v, err)
		}
	}
	return nil
}

// splitOptions splits s at the commas outside brackets and quotes.
func splitOptions(s string) []string {
	var parts []string
	depth, quoted, start := 0, false, 0
	for i, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
		case quoted:
		case r == '[':
			depth++
		case r == ']':
			depth--
		case r == ',' && depth <= 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	if rest := s[start:]; rest != "" || len(parts) > 0 {
		parts = append(parts, rest)
	}
	return parts
}

// unquote removes double quotes; "" inside quotes is a literal quote.
func unquote(s string) string {
	if !strings.Contains(s, `"`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '"' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '"' {
			b.WriteByte('"')
			i++
		}
	}
	return b.String()
}

// quoteOption writes v as an option value that parses back to v: in double
// quotes when it holds a comma or a bracket, its quotes doubled otherwise.
// (The syntax has no way to write a value with both.)
func quoteOption(v string) string {
	switch {
	case strings.Contains(v, `"`):
		return strings.ReplaceAll(v, `"`, `""`)
	case strings.ContainsAny(v, ",[]"):
		return `"` + v + `"`
	}
	return v
}

// ParseToggle reads Cloud Hypervisor's on/off values: on, off, true or
// false, in any case.
func ParseToggle(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "on", "true":
		return true, nil
	case "off", "false":
		return false, nil
	}
	return false, fmt.Errorf("%q is not on, off, true or false", s)
}

// toggle sets *dst.
func toggle(dst *bool) setter {
	return func(v string) (err error) { *dst, err = ParseToggle(v); return err }
}

// toggleP sets *dst, a bool whose default is true.
func toggleP(dst **bool) setter {
	return func(v string) error {
		b, err := ParseToggle(v)
		*dst = &b
		return err
	}
}

// size sets *dst to a size.
func size(dst *uint64) setter {
	return func(v string) (err error) { *dst, err = ParseSize(v); return err }
}

// str sets *dst.
func str(dst *string) setter { return func(v string) error { *dst = v; return nil } }

// integer sets *dst to an unsigned integer of at most bits bits.
func integer[T ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~int](dst *T, bits int) setter {
	return func(v string) error {
		n, err := strconv.ParseUint(v, 0, bits)
		if err != nil {
			return fmt.Errorf("not a number of at most %d bits", bits)
		}
		*dst = T(n)
		return nil
	}
}

// integerP sets *dst to a new unsigned integer of at most bits bits.
func integerP[T ~uint8 | ~int](dst **T, bits int) setter {
	return func(v string) error {
		var n T
		if err := integer(&n, bits)(v); err != nil {
			return err
		}
		*dst = &n
		return nil
	}
}

// choice sets *dst to the value names maps v to (names' keys are Cloud
// Hypervisor's command-line spellings, compared without case).
func choice[T ~string](dst *T, names map[string]T) setter {
	return func(v string) error {
		t, ok := names[strings.ToLower(v)]
		if !ok {
			var known []string
			for k := range names {
				known = append(known, k)
			}
			slices.Sort(known)
			return fmt.Errorf("unknown value (known: %s)", strings.Join(known, ", "))
		}
		*dst = t
		return nil
	}
}

// trimList removes the brackets around a list.
func trimList(s string) string {
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		return s[1 : len(s)-1]
	}
	return s
}

// parseIntList reads [1,2,5-7] (brackets optional).
func parseIntList(s string) ([]uint64, error) {
	var out []uint64
	for _, part := range splitOptions(trimList(s)) {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(lo, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", lo)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 64); err != nil || b < a {
				return nil, fmt.Errorf("%q is not a range", part)
			}
		}
		if b-a > 1<<16 {
			return nil, fmt.Errorf("%q: range too long", part)
		}
		for n := a; n <= b; n++ {
			out = append(out, n)
		}
	}
	return out, nil
}

// intList sets *dst to an integer list.
func intList[T ~uint | ~uint16 | ~uint32 | ~int](dst *[]T) setter {
	return func(v string) error {
		ns, err := parseIntList(v)
		if err != nil {
			return err
		}
		*dst = (*dst)[:0]
		for _, n := range ns {
			*dst = append(*dst, T(n))
		}
		return nil
	}
}

// strList sets *dst to a string list: [a,b] or a,b.
func strList(dst *[]string) setter {
	return func(v string) error {
		*dst = splitOptions(trimList(v))
		return nil
	}
}

// tuple is one key@value of a tuple list.
type tuple struct{ key, value string }

// parseTuples reads [key@value,...], a value being itself possibly a list.
func parseTuples(s string) ([]tuple, error) {
	var out []tuple
	for _, part := range splitOptions(trimList(s)) {
		k, v, ok := strings.Cut(part, "@")
		if !ok {
			return nil, fmt.Errorf("%q is not key@value", part)
		}
		out = append(out, tuple{k, v})
	}
	return out, nil
}
