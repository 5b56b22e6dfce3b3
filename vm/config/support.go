package config

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Support says what vmm does with a field of Cloud Hypervisor's VmConfig.
type Support int

// What vmm does with a field.
const (
	// Honoured: vmm does what the field says, whatever its value. For an
	// object or a list of objects, its own fields say.
	Honoured Support = iota + 1
	// Partly: vmm does what the field says for some values (Field.Values,
	// or those Field.Accepts takes); the others are not supported yet.
	Partly
	// Recorded: any valid value is taken and kept (vm.info shows it), but
	// changes nothing in the VM yet.
	Recorded
	// DefaultOnly: only the default is accepted; vmm does not do this.
	DefaultOnly
	// NotYet: only the default is accepted for now; vmm will do this.
	NotYet
)

// String is the support's name in the documentation.
func (s Support) String() string {
	switch s {
	case Honoured:
		return "honoured"
	case Partly:
		return "partly"
	case Recorded:
		return "recorded"
	case DefaultOnly:
		return "default only"
	case NotYet:
		return "not yet"
	}
	return fmt.Sprintf("Support(%d)", int(s))
}

// Field is one row of the support table: a JSON field of an object and what
// vmm does with it.
type Field struct {
	// Name is the field's JSON name.
	Name    string
	Support Support
	// Values, for a Partly field, are the values vmm honours, as JSON.
	Values []string
	// Accepts, for a Partly field whose honoured values depend on the rest
	// of the object, says whether vmm honours the field as it is in obj (a
	// value of the object's Go type).
	Accepts func(obj any) bool
	// Note says more, for the documentation.
	Note string
}

// Object is the support table of one object of the schema.
type Object struct {
	// Name is Cloud Hypervisor's name for the object (its OpenAPI schema).
	Name string
	// Type is the Go type.
	Type reflect.Type
	// Fields are the object's own fields; those of an embedded block are in
	// the block's Object.
	Fields []Field
}

// field finds the row of name.
func (o Object) field(name string) (Field, bool) {
	for _, f := range o.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// Objects is the support table: every object of the schema, VmConfig
// first, each with a row for each of its fields.
func Objects() []Object { return slices.Clone(supportTable) }

// objectFor finds t's table.
func objectFor(t reflect.Type) (Object, bool) {
	for _, o := range supportTable {
		if o.Type == t {
			return o, true
		}
	}
	return Object{}, false
}

// UnsupportedError is a configuration asking for something vmm does not do:
// a field away from its default that vmm accepts only at its default.
type UnsupportedError struct {
	// Path is the field's path, such as "disks[0].vhost_user".
	Path string
	// Value is the field's value as JSON.
	Value string
	// Yet is set when vmm will support the field later.
	Yet bool
}

func (e *UnsupportedError) Error() string {
	s := fmt.Sprintf("%s=%s is not supported", e.Path, e.Value)
	if e.Yet {
		s += " yet"
	}
	return s
}

// CheckSupported refuses, with an *UnsupportedError naming the first such
// field, a configuration with a field away from what vmm does: a
// default-only or not-yet field away from its default, a partly honoured
// field at a value vmm does not honour. Call it after SetDefaults.
func (c *VM) CheckSupported() error {
	return checkObject("", reflect.ValueOf(c).Elem())
}

// checkObject checks the object v at path against its table.
func checkObject(path string, v reflect.Value) error {
	t := v.Type()
	def := defaultObject(t)
	for _, f := range jsonFields(t) {
		obj, ok := objectFor(f.owner)
		if !ok {
			return fmt.Errorf("%s: vmm's support table has no %s", path, f.owner)
		}
		row, ok := obj.field(f.name)
		if !ok {
			return fmt.Errorf("%s: vmm's support table has no %s.%s", path, obj.Name, f.name)
		}
		fv, p := v.FieldByIndex(f.index), joinPath(path, f.name)
		switch row.Support {
		case Honoured, Recorded:
			if err := checkChildren(p, fv); err != nil {
				return err
			}
		case Partly:
			if len(row.Values) > 0 && !slices.Contains(row.Values, jsonText(fv)) ||
				row.Accepts != nil && !row.Accepts(v.Interface()) {
				return &UnsupportedError{Path: p, Value: jsonText(fv), Yet: true}
			}
		default:
			if !isDefault(fv, def.FieldByIndex(f.index)) {
				return &UnsupportedError{Path: p, Value: jsonText(fv), Yet: row.Support == NotYet}
			}
		}
	}
	return nil
}

// checkChildren checks the objects a field holds: an object, a pointer to
// one, or a list of them.
func checkChildren(path string, v reflect.Value) error {
	switch v.Kind() {
	case reflect.Struct:
		return checkObject(path, v)
	case reflect.Pointer:
		if !v.IsNil() && v.Elem().Kind() == reflect.Struct {
			return checkObject(path, v.Elem())
		}
	case reflect.Slice:
		if objectType(v.Type()) == nil {
			return nil
		}
		for i := range v.Len() {
			if err := checkChildren(fmt.Sprintf("%s[%d]", path, i), v.Index(i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// isDefault reports whether v equals def, an empty list counting as none.
func isDefault(v, def reflect.Value) bool {
	if v.Kind() == reflect.Slice && v.Len() == 0 && def.Len() == 0 {
		return true
	}
	return reflect.DeepEqual(v.Interface(), def.Interface())
}

// jsonText is v as JSON, for messages.
func jsonText(v reflect.Value) string {
	data, err := json.Marshal(v.Interface())
	if err != nil {
		return fmt.Sprint(v.Interface())
	}
	return string(data)
}

// checkEnums refuses a value outside Cloud Hypervisor's list for any
// enumerated field under v (a mode, a hot plug method, ...); the empty
// string stands for the default.
func checkEnums(path string, v reflect.Value) error {
	switch v.Kind() {
	case reflect.Struct:
		for _, f := range jsonFields(v.Type()) {
			if err := checkEnums(joinPath(path, f.name), v.FieldByIndex(f.index)); err != nil {
				return err
			}
		}
	case reflect.Pointer:
		if !v.IsNil() {
			return checkEnums(path, v.Elem())
		}
	case reflect.Slice:
		for i := range v.Len() {
			if err := checkEnums(fmt.Sprintf("%s[%d]", path, i), v.Index(i)); err != nil {
				return err
			}
		}
	case reflect.String:
		// An empty value is a field left unset: its default.
		if values := enumValues(v.Type()); values != nil && v.String() != "" && !slices.Contains(values, v.String()) {
			return fmt.Errorf("%s=%q: unknown value (Cloud Hypervisor's are %s)", path, v.String(), strings.Join(values, ", "))
		}
	}
	return nil
}
