package config

import (
	"reflect"
	"slices"
	"strings"
)

// The schema seen through reflection: each object type's JSON fields, with
// the fields of an embedded struct (the PCI device block) flattened into
// the object, as encoding/json and Cloud Hypervisor's serde do.

// jsonField is one JSON field of an object type.
type jsonField struct {
	// name is the JSON name.
	name string
	// index leads from the object to the Go field (reflect.Value.FieldByIndex).
	index []int
	// owner is the struct type that declares the field: the object's type,
	// or the embedded struct's.
	owner reflect.Type
	// field is the Go struct field.
	field reflect.StructField
}

// jsonFields lists t's JSON fields in order, an embedded struct's in its
// place.
func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			for _, inner := range jsonFields(f.Type) {
				inner.index = append([]int{i}, inner.index...)
				out = append(out, inner)
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, jsonField{name: name, index: []int{i}, owner: t, field: f})
	}
	return out
}

// objectType is the struct type a field's values are objects of, through
// pointers and slices (Disk for []Disk, Platform for *Platform), or nil
// for a field that holds no objects.
func objectType(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct {
		return t
	}
	return nil
}

// enum is a string type whose values Cloud Hypervisor enumerates.
type enum interface {
	Values() []string
}

// enumValues lists the values of t when it is an enum type, else nil.
func enumValues(t reflect.Type) []string {
	if e, ok := reflect.Zero(t).Interface().(enum); ok && t.Kind() == reflect.String {
		return e.Values()
	}
	return nil
}

// objectTypes lists every object type reachable from VM, VM first, each
// once, in the order a depth-first walk of the fields meets them; embedded
// blocks (PCIDevice) come after the first object that embeds them.
func objectTypes() []reflect.Type {
	var out []reflect.Type
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		if seen[t] {
			return
		}
		seen[t] = true
		out = append(out, t)
		var embedded []reflect.Type
		for _, f := range jsonFields(t) {
			if f.owner != t && !seen[f.owner] && !slices.Contains(embedded, f.owner) {
				embedded = append(embedded, f.owner)
			}
			if ot := objectType(f.field.Type); ot != nil {
				walk(ot)
			}
		}
		for _, e := range embedded {
			walk(e)
		}
	}
	walk(reflect.TypeFor[VM]())
	return out
}
