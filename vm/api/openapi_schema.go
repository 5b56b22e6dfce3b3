package api

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/vmmdev/vmm/vm/config"
)

// The VmConfig part of openapi.yaml is generated from package config's
// types and support table, so that the document lists every field vmm
// takes, with Cloud Hypervisor's names and vmm's defaults, and marks what
// vmm does with each: x-vmm-support is "honoured", "partly" (with the
// honoured values in x-vmm-values), "recorded", "default only" or "not
// yet". TestOpenAPIDocumentHasTheGeneratedConfigSchemas checks it; run it
// with -update to rewrite the block.

// Marker lines around the generated schemas in openapi.yaml.
const (
	schemasBegin = "    # BEGIN VmConfig schemas, generated from vm/config's support table: go test ./vm/api -run TestOpenAPIDocument -update"
	schemasEnd   = "    # END VmConfig schemas"
)

// commonBlock is the support table's name of the PCI fields every device
// has; the document lists them in each device, as Cloud Hypervisor's does.
var commonBlock = reflect.TypeFor[config.PCIDevice]()

// requiredFields are the fields vmm cannot do without, by schema.
var requiredFields = map[string][]string{"DiskConfig": {"path"}}

// configSchemas renders the schemas of VmConfig and of every object in it,
// in the support table's order, indented for components.schemas.
func configSchemas() string {
	var b strings.Builder
	b.WriteString(schemasBegin + "\n")
	defaults := config.ObjectDefaults()
	for _, o := range config.Objects() {
		if o.Type == commonBlock {
			continue
		}
		fmt.Fprintf(&b, "\n    %s:\n      type: object\n      additionalProperties: false\n", o.Name)
		if req := requiredFields[o.Name]; len(req) > 0 {
			fmt.Fprintf(&b, "      required: [%s]\n", strings.Join(req, ", "))
		}
		props := schemaFields(o.Type)
		if len(props) == 0 {
			continue
		}
		b.WriteString("      properties:\n")
		def := defaults[o.Type]
		for _, p := range props {
			writeProperty(&b, p, def)
		}
	}
	b.WriteString(schemasEnd + "\n")
	return b.String()
}

// schemaField is one property of an object's schema.
type schemaField struct {
	name  string
	index []int
	field reflect.StructField
	row   config.Field
}

// schemaFields lists t's JSON fields, those of an embedded block in its
// place, each with its row of the support table.
func schemaFields(t reflect.Type) []schemaField {
	var out []schemaField
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" {
			for _, inner := range schemaFields(f.Type) {
				inner.index = append([]int{i}, inner.index...)
				out = append(out, inner)
			}
			continue
		}
		row, _ := supportRow(t, name)
		out = append(out, schemaField{name: name, index: []int{i}, field: f, row: row})
	}
	return out
}

// supportRow finds the support table's row for field name of t.
func supportRow(t reflect.Type, name string) (config.Field, bool) {
	for _, o := range config.Objects() {
		if o.Type != t {
			continue
		}
		for _, f := range o.Fields {
			if f.Name == name {
				return f, true
			}
		}
	}
	return config.Field{}, false
}

// writeProperty renders one property on one line, in YAML's flow style:
// its type, vmm's default, what vmm does with it and the table's note.
func writeProperty(b *strings.Builder, p schemaField, def reflect.Value) {
	parts := []string{typeOf(p.field.Type)}
	if def.IsValid() {
		if v := def.FieldByIndex(p.index); isScalar(v) && !(v.IsZero() && (omitEmpty(p.field) || v.Kind() == reflect.String)) {
			data, _ := json.Marshal(v.Interface())
			parts = append(parts, "default: "+string(data))
		}
	}
	parts = append(parts, "x-vmm-support: "+strconv.Quote(p.row.Support.String()))
	if len(p.row.Values) > 0 {
		parts = append(parts, "x-vmm-values: ["+strings.Join(p.row.Values, ", ")+"]")
	}
	if p.row.Note != "" {
		parts = append(parts, "description: "+strconv.Quote(p.row.Note))
	}
	fmt.Fprintf(b, "        %s: {%s}\n", p.name, strings.Join(parts, ", "))
}

// typeOf is the OpenAPI type of t, as the keys of a flow mapping.
func typeOf(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if e, ok := reflect.Zero(t).Interface().(interface{ Values() []string }); ok && t.Kind() == reflect.String {
		quoted := make([]string, len(e.Values()))
		for i, v := range e.Values() {
			quoted[i] = strconv.Quote(v) // "Off" and "Null" are not YAML's false and null
		}
		return "type: string, enum: [" + strings.Join(quoted, ", ") + "]"
	}
	switch t.Kind() {
	case reflect.Struct:
		// allOf, because OpenAPI 3.0 ignores what stands beside a $ref.
		return `allOf: [{$ref: "#/components/schemas/` + schemaName(t) + `"}]`
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Struct {
			return `type: array, items: {$ref: "#/components/schemas/` + schemaName(t.Elem()) + `"}`
		}
		return "type: array, items: {" + typeOf(t.Elem()) + "}"
	case reflect.Bool:
		return "type: boolean"
	case reflect.String:
		return "type: string"
	case reflect.Int64, reflect.Uint64:
		return "type: integer, format: int64"
	}
	return "type: integer"
}

// schemaName is Cloud Hypervisor's name for the object type t.
func schemaName(t reflect.Type) string {
	for _, o := range config.Objects() {
		if o.Type == t {
			return o.Name
		}
	}
	return t.Name()
}

func isScalar(v reflect.Value) bool {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return false
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct, reflect.Slice, reflect.Map:
		return false
	}
	return true
}

func omitEmpty(f reflect.StructField) bool {
	_, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
	return strings.Contains(opts, "omitempty")
}
