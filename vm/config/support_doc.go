package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Counts is how many rows of the support table have each support.
func Counts() map[Support]int {
	n := map[Support]int{}
	for _, o := range supportTable {
		for _, f := range o.Fields {
			n[f.Support]++
		}
	}
	return n
}

// SupportMarkdown is the support table as Markdown, for
// docs/compatibility.md: a summary line, then a table per object with each
// field's JSON type, its default, and what vmm does with it.
func SupportMarkdown() string {
	var b strings.Builder
	n := Counts()
	total := 0
	for _, c := range n {
		total += c
	}
	fmt.Fprintf(&b, "%d fields in %d objects: %d honoured (%d of them for some values only, %d recorded), %d default only, %d not yet.\n",
		total, len(supportTable), n[Honoured]+n[Partly]+n[Recorded], n[Partly], n[Recorded], n[DefaultOnly], n[NotYet])
	defaults := ObjectDefaults()
	paths := objectPaths()
	for _, o := range supportTable {
		fmt.Fprintf(&b, "\n### %s\n\n", o.Name)
		fmt.Fprintf(&b, "At %s.\n\n", strings.Join(paths[o.Type], ", "))
		if len(o.Fields) == 0 {
			b.WriteString("No fields of its own.\n")
			continue
		}
		b.WriteString("| field | type | default | vmm | note |\n| --- | --- | --- | --- | --- |\n")
		def := defaults[o.Type]
		for _, jf := range jsonFields(o.Type) {
			if jf.owner != o.Type {
				continue
			}
			f, _ := o.field(jf.name)
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", f.Name, jsonTypeName(jf.field.Type),
				defaultText(jf, def.FieldByIndex(jf.index)), supportText(f), f.Note)
		}
	}
	return b.String()
}

// supportText is the vmm column of a row.
func supportText(f Field) string {
	if f.Support == Partly && len(f.Values) > 0 {
		return strings.Join(unquoteAll(f.Values), ", ") + "; others not yet"
	}
	if f.Support == Partly && f.Accepts != nil {
		return "some values (see the note); others not yet"
	}
	if f.Support == Partly {
		return "with its object"
	}
	return f.Support.String()
}

func unquoteAll(vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = strings.Trim(v, `"`)
	}
	return out
}

// jsonTypeName names a Go field type in JSON and schema terms.
func jsonTypeName(t reflect.Type) string {
	if values := enumValues(t); values != nil {
		return "string: " + strings.Join(values, ", ")
	}
	switch t.Kind() {
	case reflect.Pointer:
		return jsonTypeName(t.Elem())
	case reflect.Slice:
		return "[" + jsonTypeName(t.Elem()) + "]"
	case reflect.Struct:
		if o, ok := objectFor(t); ok {
			return o.Name
		}
		return "object"
	case reflect.Bool:
		return "boolean"
	case reflect.String:
		return "string"
	}
	return "integer"
}

// defaultText renders a field's default: its JSON value, or "-" for none
// (an absent value, an empty string or list) and for an object.
func defaultText(jf jsonField, v reflect.Value) string {
	if _, opts, _ := strings.Cut(jf.field.Tag.Get("json"), ","); strings.Contains(opts, "omitempty") && v.IsZero() {
		return "-"
	}
	switch v.Kind() {
	case reflect.Struct:
		return "-"
	case reflect.Pointer, reflect.Slice, reflect.String:
		if v.IsZero() {
			return "-"
		}
	}
	return "`" + jsonText(v) + "`"
}

// ObjectDefaults is, for each object type of the schema, an object with
// the defaults vmm gives it: Default's (filled in) for the objects a VM
// always has (cpus, memory, serial, ...), Cloud Hypervisor's for a new
// object of the others.
func ObjectDefaults() map[reflect.Type]reflect.Value {
	out := map[reflect.Type]reflect.Value{}
	for _, t := range objectTypes() {
		out[t] = defaultObject(t)
	}
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		out[v.Type()] = v
		for _, jf := range jsonFields(v.Type()) {
			if fv := v.FieldByIndex(jf.index); fv.Kind() == reflect.Struct {
				walk(fv)
			}
		}
	}
	d := Default()
	d.SetDefaults()
	walk(reflect.ValueOf(d))
	return out
}

// objectPaths lists, for each object type, where objects of that type
// appear in a VmConfig ("disks[]", "net[].rate_limiter_config"); the
// embedded PCI device block appears in each device that has it.
func objectPaths() map[reflect.Type][]string {
	out := map[reflect.Type][]string{reflect.TypeFor[VM](): {"the top level (the body of vm.create, config in vm.info)"}}
	var walk func(t reflect.Type, path string, depth int)
	walk = func(t reflect.Type, path string, depth int) {
		if depth > 8 {
			return
		}
		for _, jf := range jsonFields(t) {
			if jf.owner != t && !slices.Contains(out[jf.owner], "`"+path+"`") {
				out[jf.owner] = append(out[jf.owner], "`"+path+"`")
			}
			ot := objectType(jf.field.Type)
			if ot == nil {
				continue
			}
			p := joinPath(path, jf.name)
			if jf.field.Type.Kind() == reflect.Slice {
				p += "[]"
			}
			out[ot] = append(out[ot], "`"+p+"`")
			walk(ot, p, depth+1)
		}
	}
	walk(reflect.TypeFor[VM](), "", 0)
	return out
}
