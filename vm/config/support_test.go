package config

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Every field of every Go type of the schema has a row in the support
// table, and every row a field: adding a field without saying what vmm does
// with it fails here.
func TestSupportTableCoversTheSchema(t *testing.T) {
	types := objectTypes()
	for _, ot := range types {
		obj, ok := objectFor(ot)
		if !ok {
			t.Errorf("%s has no object in the support table", ot)
			continue
		}
		own := map[string]bool{}
		for _, f := range jsonFields(ot) {
			if f.owner != ot {
				continue
			}
			own[f.name] = true
			row, ok := obj.field(f.name)
			switch {
			case !ok:
				t.Errorf("%s.%s (%s.%s) has no row in the support table", obj.Name, f.name, ot.Name(), f.field.Name)
			case row.Support < Honoured || row.Support > NotYet:
				t.Errorf("%s.%s: support %v", obj.Name, f.name, row.Support)
			}
		}
		for _, row := range obj.Fields {
			if !own[row.Name] {
				t.Errorf("support table row %s.%s names no field of %s", obj.Name, row.Name, ot)
			}
		}
	}
	for _, o := range supportTable {
		if !slices.Contains(types, o.Type) {
			t.Errorf("support table object %s (%s) is not in the schema", o.Name, o.Type)
		}
	}
}

// A partly honoured field's values are values of its type.
func TestSupportTableValuesAreValuesOfTheirFields(t *testing.T) {
	for _, o := range supportTable {
		for _, f := range jsonFields(o.Type) {
			row, _ := o.field(f.name)
			for _, v := range row.Values {
				p := reflect.New(f.field.Type)
				if err := json.Unmarshal([]byte(v), p.Interface()); err != nil {
					t.Errorf("%s.%s: value %s: %v", o.Name, f.name, v, err)
				}
				if values := enumValues(f.field.Type); values != nil && !slices.Contains(values, strings.Trim(v, `"`)) {
					t.Errorf("%s.%s: value %s is not one of Cloud Hypervisor's %v", o.Name, f.name, v, values)
				}
			}
		}
	}
}

// Every `default` tag can be written into its field.
func TestDefaultTagsParse(t *testing.T) {
	for _, ot := range objectTypes() {
		for i := range ot.NumField() {
			f := ot.Field(i)
			if tag, ok := f.Tag.Lookup("default"); ok {
				if err := setFromText(reflect.New(f.Type).Elem(), tag); err != nil {
					t.Errorf("%s.%s: default %q: %v", ot.Name(), f.Name, tag, err)
				}
			}
		}
	}
}

// The JSON names are Cloud Hypervisor's: spot checks of names that are
// easy to get wrong, and of the v51 names kept beside the head's.
func TestJSONNamesAreCloudHypervisors(t *testing.T) {
	names := func(v any) []string {
		var out []string
		for _, f := range jsonFields(reflect.TypeOf(v)) {
			out = append(out, f.name)
		}
		return out
	}
	for _, c := range []struct {
		v    any
		want []string
	}{
		{CPUs{}, []string{"boot_vcpus", "max_vcpus", "kvm_hyperv", "max_phys_bits", "nested", "core_scheduling", "profile"}},
		{Memory{}, []string{"hotplug_method", "hotplug_size", "hotplugged_size", "hugepage_size", "thp", "reserve"}},
		{Disk{}, []string{"id", "iommu", "pci_segment", "pci_device_id", "vhost_socket", "disable_io_uring", "disable_aio", "image_type", "lock_granularity"}},
		{Net{}, []string{"host_mac", "mtu", "vhost_mode", "fds", "offload_tso", "offload_ufo", "offload_csum"}},
		{Serial{}, []string{"mode", "file", "socket", "iommu"}},
		{Console{}, []string{"mode", "file", "socket", "id", "iommu", "pci_segment", "pci_device_id"}},
		{Platform{}, []string{"num_pci_segments", "iommu_address_width_bits", "iommu_address_width", "serial_number", "system_serial_number", "uuid", "system_uuid", "tdx", "sev_snp", "vfio_p2p_dma"}},
		{Device{}, []string{"path", "fd", "x_nv_gpudirect_clique", "x_exclude_mmap_bars"}},
	} {
		got := names(c.v)
		for _, n := range c.want {
			if !slices.Contains(got, n) {
				t.Errorf("%T has no JSON field %q (has %v)", c.v, n, got)
			}
		}
	}
}

func TestSetDefaultsFillsCloudHypervisorsDefaultsEverywhere(t *testing.T) {
	c := VM{Disks: []Disk{{Path: "/d"}}, Net: []Net{{}}, Platform: &Platform{}, RNG: &RNG{}}
	c.SetDefaults()
	d, n := c.Disks[0], c.Net[0]
	switch {
	case !c.CPUs.NestedEnabled() || c.CPUs.MaxPhysBits != 46 || c.CPUs.CoreScheduling != CoreSchedulingVM:
		t.Errorf("cpus %+v", c.CPUs)
	case !c.Memory.THPEnabled() || c.Memory.HotplugMethod != HotplugACPI:
		t.Errorf("memory %+v", c.Memory)
	case d.NumQueues != 1 || d.QueueSize != 128 || d.Sparse == nil || !*d.Sparse || d.ImageType != ImageUnknown:
		t.Errorf("disk %+v", d)
	case n.NumQueues != 2 || n.QueueSize != 256 || n.VhostMode != "Client" || n.OffloadCSUM == nil || !*n.OffloadCSUM:
		t.Errorf("net %+v", n)
	case c.Platform.NumPCISegments != 1 || c.Platform.IOMMUAddressWidthBits != 64 || !*c.Platform.VFIOP2PDMA:
		t.Errorf("platform %+v", *c.Platform)
	case c.RNG.Src != DefaultRNGSource || c.DebugConsole.Mode != ModeOff || c.DebugConsole.IOBase != 0xe9:
		t.Errorf("rng %+v, debug console %+v", *c.RNG, c.DebugConsole)
	}
	// What is set stays set.
	no := false
	c = VM{CPUs: CPUs{Nested: &no, MaxPhysBits: 40}}
	c.SetDefaults()
	if c.CPUs.NestedEnabled() || c.CPUs.MaxPhysBits != 40 {
		t.Errorf("cpus %+v after SetDefaults", c.CPUs)
	}
}

func TestCloneSharesNothing(t *testing.T) {
	yes := true
	a := VM{Disks: []Disk{{Path: "/a"}}, CPUs: CPUs{Nested: &yes}, Platform: &Platform{OEMStrings: []string{"x"}}}
	b := a.Clone()
	b.Disks[0].Path, *b.CPUs.Nested, b.Platform.OEMStrings[0] = "/b", false, "y"
	if a.Disks[0].Path != "/a" || !*a.CPUs.Nested || a.Platform.OEMStrings[0] != "x" {
		t.Errorf("the clone's changes reached the original: %+v", a)
	}
	if !reflect.DeepEqual(a.Clone(), a) {
		t.Errorf("clone differs")
	}
}

func TestDecodeKnowsEveryNameAndRefusesOthersByPath(t *testing.T) {
	// Every field of every object, each list with one element and each
	// object present: every name decodes.
	full := fullObject(reflect.TypeFor[VM]()).Interface().(VM)
	data, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(data); err != nil {
		t.Fatalf("a body with every field: %v\n%s", err, data)
	}
	for body, path := range map[string]string{
		`{"cpu":{}}`:               "cpu",
		`{"cpus":{"nestd":false}}`: "cpus.nestd",
		`{"disks":[{"path":"/a"},{"readOnly":true}]}`:                             "disks[1].readOnly",
		`{"platform":{"tdx":false,"sgx":false}}`:                                  "platform.sgx",
		`{"disks":[{"rate_limiter_config":{"bandwidth":{"size":1,"refill":1}}}]}`: "disks[0].rate_limiter_config.bandwidth.refill",
		`{"serial":{"mode":"Tty","id":"x"}}`:                                      "serial.id",
	} {
		_, err := Decode([]byte(body))
		var ue *UnknownFieldError
		if !errors.As(err, &ue) || ue.Path != path {
			t.Errorf("%s: %v, want an unknown field %q", body, err, path)
		}
	}
}

func TestDecodeTakesNullForAbsentAndKeepsDefaults(t *testing.T) {
	c, err := Decode([]byte(`{"cpus":{"boot_vcpus":2,"max_vcpus":4,"nested":null},"memory":{"size":1073741824,"thp":null},"platform":null,"disks":[{"path":"/d","queue_size":null}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.CPUs.BootVCPUs != 2 || !c.CPUs.NestedEnabled() || !c.Memory.THPEnabled() || c.Platform != nil ||
		c.Disks[0].QueueSize != 128 || c.Serial.Mode != ModeTty || c.Console.Mode != ModeOff {
		t.Errorf("decoded %+v", c)
	}
}

// fullObject is an object of type t with every field set: lists of one
// element, objects present, each at its defaults.
func fullObject(t reflect.Type) reflect.Value {
	v := defaultObject(t)
	for _, f := range jsonFields(t) {
		fv := v.FieldByIndex(f.index)
		ft := f.field.Type
		switch {
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			s := reflect.MakeSlice(ft, 1, 1)
			s.Index(0).Set(fullObject(ft.Elem()))
			fv.Set(s)
		case ft.Kind() == reflect.Slice:
			fv.Set(reflect.MakeSlice(ft, 1, 1))
		case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct:
			p := reflect.New(ft.Elem())
			p.Elem().Set(fullObject(ft.Elem()))
			fv.Set(p)
		case ft.Kind() == reflect.Pointer && fv.IsNil():
			fv.Set(reflect.New(ft.Elem()))
		case ft.Kind() == reflect.Struct:
			fv.Set(fullObject(ft))
		case ft.Kind() == reflect.String && fv.String() == "":
			if values := enumValues(ft); values != nil {
				fv.SetString(values[0])
			} else {
				fv.SetString("x")
			}
		case ft.Kind() >= reflect.Uint && ft.Kind() <= reflect.Uint64 && fv.Uint() == 0:
			fv.SetUint(1)
		}
	}
	return v
}
