package api

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/config"
)

// The contract of vm.create with Cloud Hypervisor's VmConfig, object by
// object, field by field, from package config's support table: every object
// vmm takes is accepted with each of its fields at its default, and
// vm.info returns it; each honoured field is accepted at a non-default value
// and vm.info shows it; each field vmm does not do (default only, not yet,
// the values a partly honoured field does not take) is refused with 400
// naming its path and value. The backend is a fake that checks
// configurations with package config as the VMM does (defaults, Validate,
// CheckSupported) and keeps them for vm.info, so no KVM is needed; the
// files and devices a real VM opens are vm.VMM's own tests'.

// checkingBackend is a fake Backend whose Create checks the configuration
// as vm.VMM's does, without KVM or files, and whose Info returns it.
type checkingBackend struct {
	*fakeBackend
	mu  sync.Mutex
	cfg *config.VM
}

// kindErr is an error of a vm error kind.
type kindErr struct {
	error
	kind error
}

func (e kindErr) Is(target error) bool { return target == e.kind }

func (b *checkingBackend) Create(cfg config.VM) error {
	c := cfg.Clone()
	c.SetDefaults()
	if err := c.Validate(0); err != nil {
		return kindErr{err, vm.ErrInvalid}
	}
	if err := c.CheckSupported(); err != nil {
		return kindErr{err, vm.ErrInvalid}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cfg = &c
	return nil
}

func (b *checkingBackend) Info() (vm.Info, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cfg == nil {
		return vm.Info{}, vm.ErrNoVM
	}
	return vm.Info{Config: b.cfg.Clone(), State: vm.StateCreated, MemoryActualSize: b.cfg.Memory.Size}, nil
}

// createRefused are the honoured fields vm.create's body may not set, with
// a value and what the refusal says: descriptor numbers are passed with
// vm.add-net (SCM_RIGHTS) or on the command line, never in a body.
var createRefused = map[string]struct {
	value any
	msg   string
}{
	"NetConfig.fds": {[]any{3}, "vm.create takes none; add the net with vm.add-net"},
}

// honouredValues are, for each honoured, partly honoured or recorded field
// that is no object ("Schema.field"), values away from its default, with
// the fields of the same object that must go with them (absent{} takes
// one out).
var honouredValues = map[string][]struct {
	value any
	with  map[string]any
}{
	"PayloadConfig.firmware":            {{"/fw", map[string]any{"kernel": absent{}}}},
	"PayloadConfig.kernel":              {{"/other/vmlinux", nil}},
	"VmConfig.landlock_enable":          {{true, nil}},
	"LandlockConfig.path":               {{"/tmp", nil}},
	"LandlockConfig.access":             {{"r", nil}},
	"PayloadConfig.cmdline":             {{"console=ttyS0 quiet", nil}},
	"PayloadConfig.initramfs":           {{"/initrd", nil}},
	"CpusConfig.boot_vcpus":             {{2, map[string]any{"max_vcpus": 2}}},
	"CpusConfig.max_vcpus":              {{4, nil}},
	"CpusConfig.topology":               {{map[string]any{"threads_per_core": 1, "cores_per_die": 4, "dies_per_package": 1, "packages": 1}, map[string]any{"max_vcpus": 4}}},
	"CpusConfig.nested":                 {{false, nil}},
	"CpuTopology.threads_per_core":      {{1, nil}},
	"CpuTopology.cores_per_die":         {{1, nil}},
	"CpuTopology.dies_per_package":      {{1, nil}},
	"CpuTopology.packages":              {{1, nil}},
	"CpusConfig.profile":                {{"Host", nil}},
	"MemoryConfig.size":                 {{1 << 30, nil}},
	"MemoryConfig.hotplug_size":         {{8<<30 + 64<<20, nil}},
	"MemoryConfig.hotplug_method":       {{"Acpi", nil}, {"VirtioMem", map[string]any{"hotplug_size": 8 << 30}}},
	"MemoryConfig.hotplugged_size":      {{1 << 30, map[string]any{"hotplug_method": "VirtioMem", "hotplug_size": 8 << 30}}},
	"BalloonConfig.size":                {{256 << 20, nil}},
	"BalloonConfig.deflate_on_oom":      {{true, nil}},
	"BalloonConfig.free_page_reporting": {{true, nil}},
	"MemoryConfig.thp":                  {{false, nil}},
	"MemoryConfig.mergeable":            {{true, nil}},
	"MemoryConfig.shared":               {{true, nil}},
	"MemoryConfig.hugepages":            {{true, nil}},
	"MemoryConfig.hugepage_size":        {{2 << 20, map[string]any{"hugepages": true}}},
	"MemoryConfig.prefault":             {{true, nil}},
	"DiskConfig.path":                   {{"/other.img", nil}},
	"DiskConfig.readonly":               {{true, nil}},
	"DiskConfig.direct":                 {{true, nil}},
	"DiskConfig.disable_io_uring":       {{true, nil}},
	"DiskConfig.disable_aio":            {{true, nil}},
	"DiskConfig.image_type":             {{"Raw", nil}, {"Unknown", nil}},
	"NetConfig.tap":                     {{"vmmtap0", nil}},
	"NetConfig.ip":                      {{"192.168.249.1", nil}},
	"NetConfig.mask":                    {{"255.255.255.0", nil}},
	"NetConfig.mac":                     {{"52:54:00:12:34:56", nil}},
	"RngConfig.src":                     {{"/dev/hwrng", nil}},
	"SerialConfig.mode": {{"Off", nil}, {"Null", nil}, {"Tty", nil}, {"File", map[string]any{"file": "/tmp/serial.log"}},
		{"Pty", nil}, {"Socket", map[string]any{"socket": "/tmp/serial.sock"}}},
	"SerialConfig.file":                                     {{"/tmp/serial.log", nil}},
	"SerialConfig.socket":                                   {{"/tmp/serial.sock", nil}},
	"ConsoleConfig.mode":                                    {{"Null", nil}, {"Off", nil}, {"Tty", nil}, {"File", map[string]any{"file": "/tmp/console.log"}}, {"Pty", nil}},
	"ConsoleConfig.file":                                    {{"/tmp/console.log", nil}},
	"ConsoleConfig.socket":                                  {{"/tmp/console.sock", nil}},
	"DebugConsoleConfig.mode":                               {{"Off", nil}},
	"PlatformConfig.num_pci_segments":                       {{16, nil}},
	"PciDeviceCommonConfig (in every device).id":            {{"dev0", nil}},
	"PciDeviceCommonConfig (in every device).pci_segment":   {{1, nil}},
	"PciDeviceCommonConfig (in every device).pci_device_id": {{5, nil}},
	"VsockConfig.cid":                                       {{42, nil}},
	"VsockConfig.socket":                                    {{"/run/other.sock", nil}},
	"DiskConfig.num_queues":                                 {{4, nil}},
	"DiskConfig.queue_size":                                 {{256, nil}},
}

// absent, as a field's value in a case, leaves the field out of the body.
type absent struct{}

// requiredValues are the fields an object cannot do without in a body,
// by schema: every case's object has them.
var requiredValues = map[string]map[string]any{
	"VmConfig":      {"payload": map[string]any{"kernel": "/k"}},
	"PayloadConfig": {"kernel": "/k"},
	"DiskConfig":    {"path": "/d.img"},
	// Cloud Hypervisor requires all four; their product is max_vcpus.
	"CpuTopology": {"threads_per_core": 1, "cores_per_die": 1, "dies_per_package": 1, "packages": 1},
	"VsockConfig": {"cid": 3, "socket": "/tmp/vsock.sock"},
	// Cloud Hypervisor checks that a rule's path exists.
	"LandlockConfig": {"path": "/", "access": "rw"},
}

// step is one step of a path into a VmConfig body: a field name, or an
// index into a list (name empty).
type step struct {
	name  string
	index int
}

// place is where an object of the schema sits in a body: its path and the
// Go type.
type place struct {
	path  []step
	name  string // the path as the error messages write it
	typ   reflect.Type
	table config.Object
}

// contractCase is one vm.create request of the contract.
type contractCase struct {
	name   string
	body   map[string]any
	status int
	msgs   []string       // parts of the error messages, when refused
	at     []step         // where the object is, when accepted
	fields map[string]any // what vm.info must show there, when accepted
}

func TestContractWithFakeBackend_EveryFieldOfEveryObjectVmmTakes(t *testing.T) {
	cases, missing := contractCases()
	for _, m := range missing {
		t.Errorf("honoured field %s has no value in honouredValues", m)
	}
	if len(cases) < 150 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fb := newFakeBackend()
			b := &checkingBackend{fakeBackend: fb}
			s, err := NewServer(filepath.Join(shortTempDir(t), "api.sock"), b, Options{Logger: discardLogger()})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			data, err := json.Marshal(c.body)
			if err != nil {
				t.Fatal(err)
			}
			r := do(t, s.SocketPath(), "PUT", Prefix+RouteCreate, data)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s\nbody %s", r.status, c.status, r.body, data)
			}
			if c.status != 204 {
				joined := strings.Join(r.messages(t), ": ")
				for _, m := range c.msgs {
					if !strings.Contains(joined, m) {
						t.Errorf("messages %q do not say %q", joined, m)
					}
				}
				if i := do(t, s.SocketPath(), "GET", Prefix+RouteInfo, nil); i.status != 404 {
					t.Errorf("a refused create left a VM: vm.info %d", i.status)
				}
				return
			}
			i := do(t, s.SocketPath(), "GET", Prefix+RouteInfo, nil)
			var info struct {
				Config map[string]any `json:"config"`
			}
			if err := json.Unmarshal(i.body, &info); err != nil || i.status != 200 {
				t.Fatalf("vm.info %d %s: %v", i.status, i.body, err)
			}
			obj, ok := at(info.Config, c.at).(map[string]any)
			if !ok {
				t.Fatalf("vm.info has no object at %v: %s", c.at, i.body)
			}
			for k, want := range c.fields {
				if got := obj[k]; !sameJSON(got, want) {
					t.Errorf("vm.info shows %s = %v, want %v", k, got, want)
				}
			}
		})
	}
}

// contractCases builds the cases from the support table, and lists the
// honoured fields honouredValues has no value for.
func contractCases() (cases []contractCase, missing []string) {
	defaults := config.ObjectDefaults()
	for _, p := range reachableObjects() {
		def := defaults[p.typ]
		required := requiredValues[p.table.Name]
		// with is an object with the required fields and fields.
		with := func(fields map[string]any) map[string]any {
			obj := map[string]any{}
			maps(obj, required)
			maps(obj, fields)
			return obj
		}
		all := map[string]any{}
		for _, f := range config.Properties(p.typ) {
			all[f.Name] = jsonValue(def.FieldByIndex(f.Index).Interface())
		}
		maps(all, required)
		cases = append(cases, contractCase{name: p.name + " at its defaults", body: bodyWith(p.path, all),
			status: 204, at: p.path, fields: all})
		for _, f := range config.Properties(p.typ) {
			fp := joinStep(p.name, f.Name)
			switch f.Row.Support {
			case config.DefaultOnly, config.NotYet:
				v := jsonValue(nonDefaultValue(def.FieldByIndex(f.Index), defaults).Interface())
				refusal := " is not supported"
				if f.Row.Support == config.NotYet {
					refusal += " yet"
				}
				cases = append(cases, contractCase{name: fp + " away from its default", body: bodyWith(p.path, with(map[string]any{f.Name: v})),
					status: 400, msgs: []string{fp + "=" + compactJSON(v), refusal}})
				continue
			case config.Partly:
				for _, e := range enumOf(f.Field.Type) {
					if !slices.Contains(f.Row.Values, strconv.Quote(e)) {
						fields := map[string]any{f.Name: e}
						if e == "File" {
							fields["file"] = "/tmp/f" // what Validate wants with it
						}
						cases = append(cases, contractCase{name: fp + "=" + e, body: bodyWith(p.path, with(fields)),
							status: 400, msgs: []string{fmt.Sprintf("%s=%q is not supported yet", fp, e)}})
					}
				}
			case config.Honoured, config.Recorded:
				if objectTypeOf(f.Field.Type) != nil {
					continue // its fields are checked where the object is
				}
			}
			rowKey := tableName(p.typ, f) + "." + f.Name
			if r, ok := createRefused[rowKey]; ok {
				cases = append(cases, contractCase{name: fp + " in vm.create", body: bodyWith(p.path, with(map[string]any{f.Name: r.value})),
					status: 400, msgs: []string{r.msg}})
				continue
			}
			values, ok := honouredValues[rowKey]
			if !ok {
				missing = append(missing, rowKey)
				continue
			}
			for _, hv := range values {
				obj := with(map[string]any{f.Name: hv.value})
				maps(obj, hv.with)
				cases = append(cases, contractCase{name: fmt.Sprintf("%s=%v", fp, hv.value), body: bodyWith(p.path, obj),
					status: 204, at: p.path, fields: map[string]any{f.Name: hv.value}})
			}
		}
	}
	// A topology whose product is not max_vcpus is refused in Cloud
	// Hypervisor's words.
	cases = append(cases, contractCase{name: "cpus.topology of two threads per core",
		body:   bodyWith([]step{{name: "cpus"}}, map[string]any{"max_vcpus": 6, "topology": map[string]any{"threads_per_core": 2, "cores_per_die": 2, "dies_per_package": 1, "packages": 1}}),
		status: 400, msgs: []string{"Product of CPU topology parts does not match maximum vCPU"}})
	return cases, missing
}

// reachableObjects are the objects vmm takes, each at one place: VmConfig,
// and the objects under its honoured and recorded fields (a list's first
// element). The PCI block is reached through the first device with it.
func reachableObjects() []place {
	tables := map[reflect.Type]config.Object{}
	for _, o := range config.Objects() {
		tables[o.Type] = o
	}
	var out []place
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type, path []step, name string)
	walk = func(t reflect.Type, path []step, name string) {
		if seen[t] {
			return
		}
		seen[t] = true
		out = append(out, place{path: path, name: name, typ: t, table: tables[t]})
		for _, f := range config.Properties(t) {
			ot := objectTypeOf(f.Field.Type)
			if ot == nil || (f.Row.Support != config.Honoured && f.Row.Support != config.Recorded) {
				continue
			}
			p := append(slices.Clone(path), step{name: f.Name})
			n := joinStep(name, f.Name)
			if f.Field.Type.Kind() == reflect.Slice {
				p = append(p, step{index: 0})
				n += "[0]"
			}
			walk(ot, p, n)
		}
	}
	walk(reflect.TypeFor[config.VM](), nil, "")
	return out
}

// tableName is the support table's name of the object declaring f, a field
// of t (the PCI block's for its fields).
func tableName(t reflect.Type, f config.Property) string {
	if len(f.Index) > 1 {
		return schemaName(t.Field(f.Index[0]).Type)
	}
	return schemaName(t)
}

// bodyWith is a vm.create body with a kernel, and fields set in the object
// at path (made present).
func bodyWith(path []step, fields map[string]any) map[string]any {
	root := map[string]any{"payload": map[string]any{"kernel": "/k"}}
	var cur any = root
	for i, s := range path {
		next := map[string]any{}
		if i+1 < len(path) && path[i+1].name == "" {
			// A list of one object.
			list := []any{next}
			cur.(map[string]any)[s.name] = list
			cur = list
			continue
		}
		switch c := cur.(type) {
		case map[string]any:
			if old, ok := c[s.name].(map[string]any); ok {
				next = old
			}
			c[s.name] = next
		case []any:
			next = c[s.index].(map[string]any)
		}
		cur = next
	}
	obj := cur.(map[string]any)
	for k, v := range fields {
		if _, out := v.(absent); out {
			delete(obj, k)
			continue
		}
		obj[k] = v
	}
	return root
}

// maps copies src into dst.
func maps(dst, src map[string]any) {
	for k, v := range src {
		dst[k] = v
	}
}

// at follows path through a decoded JSON value.
func at(v any, path []step) any {
	for _, s := range path {
		switch c := v.(type) {
		case map[string]any:
			v = c[s.name]
		case []any:
			if s.index >= len(c) {
				return nil
			}
			v = c[s.index]
		default:
			return nil
		}
	}
	return v
}

// jsonValue is v as a decoded JSON value (nil for a nil pointer or list).
func jsonValue(v any) any {
	data, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var out any
	_ = json.Unmarshal(data, &out)
	return out
}

// compactJSON is a decoded JSON value written as the messages write it:
// Go's encoding of the Go value, keys in the type's order. For a value that
// is an object, the message's order cannot be rebuilt from a map: only the
// prefix before the value is compared then.
func compactJSON(v any) string {
	if _, ok := v.(map[string]any); ok {
		return ""
	}
	if l, ok := v.([]any); ok && len(l) > 0 {
		if _, ok := l[0].(map[string]any); ok {
			return ""
		}
	}
	data, _ := json.Marshal(v)
	return string(data)
}

// sameJSON compares a value of vm.info with the one sent; an empty string,
// 0, false or null sent stands for a field vm.info may leave out.
func sameJSON(got, want any) bool {
	w := jsonValue(want)
	if got == nil {
		return w == nil || w == "" || w == float64(0) || w == false
	}
	return reflect.DeepEqual(got, w)
}

func joinStep(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func objectTypeOf(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct {
		return t
	}
	return nil
}

func enumOf(t reflect.Type) []string {
	if e, ok := reflect.Zero(t).Interface().(interface{ Values() []string }); ok {
		return e.Values()
	}
	return nil
}

// nonDefaultValue is a value of v's type other than v: the other boolean,
// one more, another of an enum's values or another string, a list of one,
// an object at its defaults where there was none.
func nonDefaultValue(v reflect.Value, defaults map[reflect.Type]reflect.Value) reflect.Value {
	n := reflect.New(v.Type()).Elem()
	switch v.Kind() {
	case reflect.Bool:
		n.SetBool(!v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n.SetInt(v.Int() + 1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n.SetUint(v.Uint() + 1)
	case reflect.String:
		n.SetString(v.String() + "x")
		for _, e := range enumOf(v.Type()) {
			if e != v.String() {
				n.SetString(e)
				break
			}
		}
	case reflect.Slice:
		n = reflect.MakeSlice(v.Type(), 1, 1)
		if d, ok := defaults[v.Type().Elem()]; ok {
			n.Index(0).Set(d)
		}
	case reflect.Pointer:
		n = reflect.New(v.Type().Elem())
		if d, ok := defaults[v.Type().Elem()]; ok {
			n.Elem().Set(d)
		} else if !v.IsNil() {
			n.Elem().Set(nonDefaultValue(v.Elem(), defaults))
		}
	}
	return n
}

// kataBody is the vm.create body Kata Containers' Cloud Hypervisor driver
// sends (its generated client, Cloud Hypervisor v51.1's document), as
// e2e/testdata has it.
func kataBody(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile("../../e2e/testdata/kata-vm-create.json")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestContractWithFakeBackend_KataContainersBodyIsTakenAsItIs(t *testing.T) {
	b := &checkingBackend{fakeBackend: newFakeBackend()}
	s, err := NewServer(filepath.Join(shortTempDir(t), "api.sock"), b, Options{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if r := do(t, s.SocketPath(), "PUT", Prefix+RouteCreate, kataBody(t)); r.status != 204 {
		t.Fatalf("vm.create: %d %s", r.status, r.body)
	}
	r := do(t, s.SocketPath(), "GET", Prefix+RouteInfo, nil)
	var info map[string]any
	if err := json.Unmarshal(r.body, &info); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]any{
		"cpus.boot_vcpus":                   4,
		"cpus.max_vcpus":                    8,
		"cpus.nested":                       true,
		"cpus.topology.cores_per_die":       8,
		"memory.size":                       1 << 30,
		"memory.hotplug_size":               8 << 30,
		"memory.thp":                        true,
		"payload.initramfs":                 "/path/initrd",
		"platform.num_pci_segments":         2,
		"platform.iommu_address_width_bits": 64,
		"rng.src":                           "/dev/urandom",
		"serial.mode":                       "Tty",
		"console.mode":                      "Off",
		"debug_console.mode":                "Off",
	} {
		var steps []step
		for _, n := range strings.Split("config."+path, ".") {
			steps = append(steps, step{name: n})
		}
		if got := at(info, steps); !sameJSON(got, want) {
			t.Errorf("vm.info %s = %v, want %v", path, got, want)
		}
	}
}
