package lua

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	glua "github.com/yuin/gopher-lua"

	"github.com/vmmdev/vmm/vm/config"
)

// maxExactInt is the largest integer a Lua number (a float64) holds exactly.
const maxExactInt = 1 << 53

// renderDepth bounds how deep render descends into nested tables.
const renderDepth = 4

// checkKeys fails on keys of t outside known, naming them with prefix.
func checkKeys(t *glua.LTable, prefix string, known []string) error {
	return forFields(t, func(k glua.LValue) error {
		return fmt.Errorf("%sunexpected key %s (known: %s)", prefix, render(k), strings.Join(known, ", "))
	}, func(k string, _ glua.LValue) error {
		if slices.Contains(known, k) {
			return nil
		}
		return fmt.Errorf("unknown field %s%s (known: %s)", prefix, k, strings.Join(known, ", "))
	})
}

// forFields calls f for each field of t, a key that is a string, until f
// fails; a key that is not a string fails with badKey's error.
func forFields(t *glua.LTable, badKey func(k glua.LValue) error, f func(k string, v glua.LValue) error) error {
	var err error
	t.ForEach(func(k, v glua.LValue) {
		if err != nil {
			return
		}
		if s, ok := k.(glua.LString); ok {
			err = f(string(s), v)
		} else {
			err = badKey(k)
		}
	})
	return err
}

// optString reads a string field; nil is "".
func optString(v glua.LValue, what string) (string, error) {
	switch s := v.(type) {
	case *glua.LNilType:
		return "", nil
	case glua.LString:
		return string(s), nil
	}
	return "", fmt.Errorf("%s: want a string, got %s", what, render(v))
}

// intArg reads an integer.
func intArg(v glua.LValue) (int64, error) {
	n, ok := v.(glua.LNumber)
	if !ok {
		return 0, fmt.Errorf("want an integer, got %s", render(v))
	}
	f := float64(n)
	if f != math.Trunc(f) || math.Abs(f) > maxExactInt {
		return 0, fmt.Errorf("want an integer, got %s", render(v))
	}
	return int64(f), nil
}

// intField sets *dst to t's integer field key, when t has one; prefix
// leads the field's name in errors ("cpus.").
func intField(t *glua.LTable, key, prefix string, dst *int) error {
	v := t.RawGetString(key)
	if v == glua.LNil {
		return nil
	}
	n, err := intArg(v)
	if err != nil {
		return fmt.Errorf("%s%s: %w", prefix, key, err)
	}
	*dst = int(n)
	return nil
}

// sizeArg reads a size: a non-negative integer of bytes or a string such as
// "1G".
func sizeArg(v glua.LValue) (uint64, error) {
	switch t := v.(type) {
	case glua.LString:
		return config.ParseSize(string(t))
	case glua.LNumber:
		n, err := intArg(t)
		if err != nil {
			return 0, err
		}
		if n < 0 {
			return 0, fmt.Errorf("want a size, got %s", render(v))
		}
		return uint64(n), nil
	}
	return 0, fmt.Errorf("want a size (bytes, or a string such as \"1G\"), got %s", render(v))
}

// signedSizeArg is sizeArg that lets negative numbers through, so that the
// API's validation of them can be tested.
func signedSizeArg(v glua.LValue) (int64, error) {
	if n, ok := v.(glua.LNumber); ok {
		return intArg(n)
	}
	u, err := sizeArg(v)
	if err != nil {
		return 0, err
	}
	if u > math.MaxInt64 {
		return 0, fmt.Errorf("size %s is too large", render(v))
	}
	return int64(u), nil
}

// isList reports whether t's keys are exactly 1..#t.
func isList(t *glua.LTable) bool {
	n, count := t.Len(), 0
	t.ForEach(func(_, _ glua.LValue) { count++ })
	return n == count
}

// render writes a Lua value for messages: strings quoted, lists as
// {1, 2, 3}, other tables as {a = 1, b = "x"} with sorted keys.
func render(v glua.LValue) string {
	var b strings.Builder
	renderTo(&b, v, renderDepth, map[*glua.LTable]bool{})
	return b.String()
}

func renderTo(b *strings.Builder, v glua.LValue, depth int, seen map[*glua.LTable]bool) {
	switch t := v.(type) {
	case *glua.LNilType:
		b.WriteString("nil")
	case glua.LBool:
		fmt.Fprint(b, bool(t))
	case glua.LNumber:
		b.WriteString(renderNumber(float64(t)))
	case glua.LString:
		b.WriteString(strconv.Quote(string(t)))
	case *glua.LTable:
		if seen[t] || depth == 0 {
			b.WriteString("{...}")
			return
		}
		seen[t] = true
		defer delete(seen, t)
		b.WriteByte('{')
		if isList(t) {
			for i := 1; i <= t.Len(); i++ {
				if i > 1 {
					b.WriteString(", ")
				}
				renderTo(b, t.RawGetInt(i), depth-1, seen)
			}
		} else {
			type kv struct {
				k string
				v glua.LValue
			}
			var kvs []kv
			t.ForEach(func(k, v glua.LValue) {
				ks := ""
				if s, ok := k.(glua.LString); ok && isIdent(string(s)) {
					ks = string(s)
				} else {
					var kb strings.Builder
					kb.WriteByte('[')
					renderTo(&kb, k, 1, seen)
					kb.WriteByte(']')
					ks = kb.String()
				}
				kvs = append(kvs, kv{ks, v})
			})
			sort.Slice(kvs, func(i, j int) bool { return kvs[i].k < kvs[j].k })
			for i, e := range kvs {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(e.k + " = ")
				renderTo(b, e.v, depth-1, seen)
			}
		}
		b.WriteByte('}')
	case *glua.LUserData:
		if h, ok := t.Value.(*vmHandle); ok {
			b.WriteString("vm " + h.name)
			return
		}
		b.WriteString("userdata")
	default:
		b.WriteString(v.Type().String())
	}
}

func renderNumber(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e18 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r != '_' && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (i == 0 || r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// deepEqual compares Lua values: tables by their contents, the rest as Lua's
// == without metamethods.
func deepEqual(a, b glua.LValue) bool {
	return deepEqualSeen(a, b, map[[2]*glua.LTable]bool{})
}

func deepEqualSeen(a, b glua.LValue, seen map[[2]*glua.LTable]bool) bool {
	ta, okA := a.(*glua.LTable)
	tb, okB := b.(*glua.LTable)
	if !okA || !okB {
		return a == b
	}
	if ta == tb || seen[[2]*glua.LTable{ta, tb}] {
		return true
	}
	seen[[2]*glua.LTable{ta, tb}] = true
	equal := true
	count := 0
	ta.ForEach(func(k, v glua.LValue) {
		count++
		if equal && !deepEqualSeen(v, tb.RawGet(k), seen) {
			equal = false
		}
	})
	if !equal {
		return false
	}
	tb.ForEach(func(_, _ glua.LValue) { count-- })
	return count == 0
}

// fromJSON decodes JSON into Lua values: objects and arrays become tables,
// null becomes nil.
func fromJSON(L *glua.LState, data []byte) (glua.LValue, error) {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return glua.LNil, fmt.Errorf("decode reply: %w", err)
	}
	return toLua(L, v), nil
}

func toLua(L *glua.LState, v any) glua.LValue {
	switch t := v.(type) {
	case nil:
		return glua.LNil
	case bool:
		return glua.LBool(t)
	case float64:
		return glua.LNumber(t)
	case string:
		return glua.LString(t)
	case []any:
		tb := L.NewTable()
		for _, e := range t {
			tb.Append(toLua(L, e))
		}
		return tb
	case map[string]any:
		tb := L.NewTable()
		for k, e := range t {
			tb.RawSetString(k, toLua(L, e))
		}
		return tb
	}
	return glua.LNil
}

// toJSON encodes a Lua table: lists as arrays, other tables as objects with
// string keys.
func toJSON(t *glua.LTable) ([]byte, error) {
	v, err := fromLua(t, renderDepth*4)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

func fromLua(v glua.LValue, depth int) (any, error) {
	if depth == 0 {
		return nil, errors.New("table nested too deeply for JSON")
	}
	switch t := v.(type) {
	case *glua.LNilType:
		return nil, nil
	case glua.LBool:
		return bool(t), nil
	case glua.LNumber:
		f := float64(t)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%s has no JSON form", render(v))
		}
		if f == math.Trunc(f) && math.Abs(f) <= maxExactInt {
			return int64(f), nil
		}
		return f, nil
	case glua.LString:
		return string(t), nil
	case *glua.LTable:
		if isList(t) && t.Len() > 0 {
			out := make([]any, 0, t.Len())
			for i := 1; i <= t.Len(); i++ {
				e, err := fromLua(t.RawGetInt(i), depth-1)
				if err != nil {
					return nil, err
				}
				out = append(out, e)
			}
			return out, nil
		}
		out := map[string]any{}
		err := forFields(t, func(k glua.LValue) error {
			return fmt.Errorf("JSON object keys must be strings, got %s", render(k))
		}, func(k string, e glua.LValue) error {
			var err error
			out[k], err = fromLua(e, depth-1)
			return err
		})
		return out, err
	}
	return nil, fmt.Errorf("a %s has no JSON form", v.Type())
}
