package config

import (
	"fmt"
	"reflect"
	"strconv"
)

// Cloud Hypervisor's defaults live in one place: the `default` tags of the
// schema's fields (and Default, for the few where vmm's command line has
// its own). A field whose default is its type's zero value has no tag.

// SetDefaults fills in, all through the configuration (the objects of every
// list included), each field left at its zero value whose default is
// something else: a nil *bool becomes true, a 0 queue size 128, an empty
// mode its default mode. vm.info then shows every field with its value.
func (c *VM) SetDefaults() {
	setDefaults(reflect.ValueOf(c).Elem())
}

// setDefaults applies the `default` tags under v.
func setDefaults(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			fv := v.Field(i)
			if tag, ok := f.Tag.Lookup("default"); ok && fv.IsZero() {
				_ = setFromText(fv, tag) // a bad tag fails TestDefaultTagsParse
			}
			setDefaults(fv)
		}
	case reflect.Pointer:
		if !v.IsNil() {
			setDefaults(v.Elem())
		}
	case reflect.Slice:
		for i := range v.Len() {
			setDefaults(v.Index(i))
		}
	}
}

// setFromText sets v, or what a nil pointer v is made to point to, to the
// value written s.
func setFromText(v reflect.Value, s string) error {
	if v.Kind() == reflect.Pointer {
		p := reflect.New(v.Type().Elem())
		if err := setFromText(p.Elem(), s); err != nil {
			return err
		}
		v.Set(p)
		return nil
	}
	switch v.Kind() {
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.String:
		v.SetString(s)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 0, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 0, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetUint(n)
	default:
		return fmt.Errorf("no default can be written for a %s", v.Type())
	}
	return nil
}

// defaultObject is an object of type t with every field at its default,
// as a new element of a list or a newly given object gets.
func defaultObject(t reflect.Type) reflect.Value {
	v := reflect.New(t).Elem()
	setDefaults(v)
	return v
}

// Clone is a deep copy of c: its lists and pointed-to objects are its own,
// so that SetDefaults or a device writing back what it got (a tap's name)
// does not reach the caller's configuration.
func (c VM) Clone() VM {
	var out VM
	deepCopy(reflect.ValueOf(&out).Elem(), reflect.ValueOf(c))
	return out
}

// deepCopy copies src into dst, allocating new slices and pointees.
func deepCopy(dst, src reflect.Value) {
	switch src.Kind() {
	case reflect.Struct:
		for i := range src.NumField() {
			if src.Type().Field(i).IsExported() {
				deepCopy(dst.Field(i), src.Field(i))
			}
		}
	case reflect.Pointer:
		if src.IsNil() {
			dst.SetZero()
			return
		}
		p := reflect.New(src.Type().Elem())
		deepCopy(p.Elem(), src.Elem())
		dst.Set(p)
	case reflect.Slice:
		if src.IsNil() {
			dst.SetZero()
			return
		}
		s := reflect.MakeSlice(src.Type(), src.Len(), src.Len())
		for i := range src.Len() {
			deepCopy(s.Index(i), src.Index(i))
		}
		dst.Set(s)
	default:
		dst.Set(src)
	}
}
