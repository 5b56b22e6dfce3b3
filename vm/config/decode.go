package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
)

// UnknownFieldError is a vm.create body naming a field Cloud Hypervisor's
// VmConfig does not have (a typo, most likely).
type UnknownFieldError struct {
	// Path is the field's path, such as "cpus.nestd" or "disks[1].pth".
	Path string
}

func (e *UnknownFieldError) Error() string { return fmt.Sprintf("unknown field %q", e.Path) }

// Decode reads a VmConfig, as the body of vm.create, over Default: absent
// fields keep their defaults, and null stands for absent, as in Cloud
// Hypervisor. Every name Cloud Hypervisor defines (in its v51 release or its
// development head) is known; any other is refused with an
// *UnknownFieldError naming its path, and names are matched exactly (JSON
// names are case-sensitive for Cloud Hypervisor too). A value of the wrong
// type, malformed JSON or anything after the object get encoding/json's
// errors. The result has every default filled in (SetDefaults); whether vmm
// can do what it asks is for Validate and CheckSupported.
func Decode(data []byte) (VM, error) {
	var raw any
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(&raw); err != nil {
		return VM{}, err
	}
	if _, ok := raw.(map[string]any); !ok {
		return VM{}, fmt.Errorf("want a JSON object, got %s", jsonKind(raw))
	}
	if err := findUnknown(reflect.TypeFor[VM](), raw, ""); err != nil {
		return VM{}, err
	}
	cfg := Default()
	d = json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&cfg); err != nil {
		return VM{}, err
	}
	if d.More() {
		return VM{}, fmt.Errorf("unexpected data after the JSON object")
	}
	cfg.SetDefaults()
	return cfg, nil
}

// findUnknown looks through raw, a decoded JSON value of Go type t, for an
// object key t does not define. Values of the wrong kind are left for
// encoding/json to report.
func findUnknown(t reflect.Type, raw any, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := raw.(map[string]any)
		if !ok {
			return nil
		}
		known := map[string]reflect.Type{}
		for _, f := range jsonFields(t) {
			known[f.name] = f.field.Type
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			ft, ok := known[k]
			if !ok {
				return &UnknownFieldError{Path: joinPath(path, k)}
			}
			if err := findUnknown(ft, obj[k], joinPath(path, k)); err != nil {
				return err
			}
		}
	case reflect.Slice:
		arr, ok := raw.([]any)
		if !ok {
			return nil
		}
		for i, e := range arr {
			if err := findUnknown(t.Elem(), e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// joinPath names field name of the object at path.
func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// jsonKind names the kind of a decoded JSON value.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	}
	return "an object"
}

// DecodeDevice reads one device's configuration, the body of vm.add-disk,
// vm.add-net or vm.add-vsock (T is Disk, Net or Vsock), as Decode reads a
// VmConfig: null stands for absent, a name Cloud Hypervisor does not define
// is refused with an *UnknownFieldError. Defaults are filled in when the
// device joins a VM (VM.SetDefaults).
func DecodeDevice[T any](data []byte) (T, error) {
	var zero T
	var raw any
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(&raw); err != nil {
		return zero, err
	}
	if _, ok := raw.(map[string]any); !ok {
		return zero, fmt.Errorf("want a JSON object, got %s", jsonKind(raw))
	}
	if err := findUnknown(reflect.TypeFor[T](), raw, ""); err != nil {
		return zero, err
	}
	var v T
	d = json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&v); err != nil {
		return zero, err
	}
	if d.More() {
		return zero, fmt.Errorf("unexpected data after the JSON object")
	}
	return v, nil
}
