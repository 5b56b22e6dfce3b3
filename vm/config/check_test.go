package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// The check follows the table, field by field: every default-only or
// not-yet field away from its default is refused naming its path (and
// "yet" for not-yet fields), a partly honoured field is refused at a value
// it does not honour and taken at those it does, and the defaults pass.
// The fields checked are those of every object vmm takes (the honoured
// ones, reached from the top); an object it does not take is refused as a
// whole, which its own field's row covers.
func TestCheckSupportedFollowsTheTableForEveryField(t *testing.T) {
	base := Default()
	base.Payload.Kernel = "/k"
	base.SetDefaults()
	if err := base.CheckSupported(); err != nil {
		t.Fatalf("the default configuration: %v", err)
	}
	checked := 0
	var visit func(path string, locate func(*VM) reflect.Value)
	visit = func(path string, locate func(*VM) reflect.Value) {
		obj := locate(&base)
		for _, f := range jsonFields(obj.Type()) {
			o, _ := objectFor(f.owner)
			row, _ := o.field(f.name)
			p := joinPath(path, f.name)
			try := func(what string, set func(reflect.Value)) error {
				c := base.Clone()
				set(locate(&c).FieldByIndex(f.index))
				err := c.CheckSupported()
				if err != nil && !strings.Contains(err.Error(), p+"=") {
					t.Errorf("%s %s: %v, want an error naming %s", p, what, err, p)
				}
				return err
			}
			switch row.Support {
			case DefaultOnly, NotYet:
				checked++
				err := try("away from its default", func(v reflect.Value) { v.Set(nonDefault(v)) })
				var ue *UnsupportedError
				if !errors.As(err, &ue) || ue.Path != p || ue.Yet != (row.Support == NotYet) {
					t.Errorf("%s away from its default: %v, want %s's UnsupportedError", p, err, row.Support)
				}
			case Partly:
				checked++
				for _, val := range row.Values {
					if err := try("at "+val, func(v reflect.Value) { v.SetString(strings.Trim(val, `"`)) }); err != nil {
						t.Errorf("%s at honoured value %s: %v", p, val, err)
					}
				}
				if values := enumValues(f.field.Type); values != nil {
					for _, val := range values {
						if !slices.Contains(row.Values, fmt.Sprintf("%q", val)) {
							if err := try("at "+val, func(v reflect.Value) { v.SetString(val) }); err == nil {
								t.Errorf("%s=%q is taken; want it refused", p, val)
							}
						}
					}
				}
			case Honoured, Recorded:
				ot := objectType(f.field.Type)
				if ot == nil {
					continue
				}
				// Make one object of the field's type present in base, and
				// check its fields.
				fv := locate(&base).FieldByIndex(f.index)
				child := p
				switch fv.Kind() {
				case reflect.Slice:
					if fv.Len() == 0 {
						fv.Set(reflect.Append(fv, defaultObject(ot)))
					}
					child += "[0]"
				case reflect.Pointer:
					if fv.IsNil() {
						n := reflect.New(ot)
						n.Elem().Set(defaultObject(ot))
						fv.Set(n)
					}
				}
				index := f.index
				visit(child, func(c *VM) reflect.Value {
					v := locate(c).FieldByIndex(index)
					switch v.Kind() {
					case reflect.Slice:
						return v.Index(0)
					case reflect.Pointer:
						return v.Elem()
					}
					return v
				})
			}
		}
	}
	visit("", func(c *VM) reflect.Value { return reflect.ValueOf(c).Elem() })
	if err := base.CheckSupported(); err != nil {
		t.Errorf("the configuration with one of every object vmm takes, at their defaults: %v", err)
	}
	t.Logf("%d fields checked", checked)
	if checked < 50 {
		t.Errorf("only %d fields checked", checked)
	}
}

// nonDefault is a value of v's type other than v: false for true, 1 more,
// a string that is not v's (another of an enum's values), a list of one,
// an object where there was none.
func nonDefault(v reflect.Value) reflect.Value {
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
		for _, e := range enumValues(v.Type()) {
			if e != v.String() {
				n.SetString(e)
				break
			}
		}
	case reflect.Slice:
		n = reflect.MakeSlice(v.Type(), 1, 1)
		if ot := objectType(v.Type()); ot != nil {
			n.Index(0).Set(defaultObject(ot))
		}
	case reflect.Pointer:
		n = reflect.New(v.Type().Elem())
		switch {
		case v.Type().Elem().Kind() == reflect.Struct:
			n.Elem().Set(defaultObject(v.Type().Elem()))
		case !v.IsNil():
			n.Elem().Set(nonDefault(v.Elem()))
		}
	case reflect.Struct:
		// An object field with rows of its own; not refused as a whole.
		return v
	}
	return n
}

func TestCheckSupportedOnKnownCases(t *testing.T) {
	no := false
	for _, c := range []struct {
		name string
		edit func(*VM)
		want string // "" for accepted
	}{
		{"TDX", func(c *VM) { c.Platform = &Platform{TDX: true} }, "platform.tdx=true is not supported"},
		{"vhost-user disk", func(c *VM) { c.Disks = []Disk{{Path: "/d", VhostUser: true}} }, "disks[0].vhost_user=true is not supported"},
		{"virtio-mem", func(c *VM) {
			c.Memory.HotplugMethod, c.Memory.HotplugSize, c.Memory.HotpluggedSize = HotplugVirtioMem, 8*GiB, GiB
		}, ""},
		{"second disk's rate limiter", func(c *VM) { c.Disks = []Disk{{Path: "/d"}, {Path: "/e", RateLimitGroup: "g"}} }, `disks[1].rate_limit_group="g" is not supported yet`},
		{"a pty serial port", func(c *VM) { c.Serial.Mode = ModePty }, ""},
		{"a tty virtio console", func(c *VM) { c.Console.Mode = ModeTty }, ""},
		{"a debug console on the terminal", func(c *VM) { c.DebugConsole.Mode = ModeTty }, `debug_console.mode="Tty" is not supported yet`},
		{"a balloon", func(c *VM) { c.Balloon = &Balloon{Size: 1, DeflateOnOOM: true, FreePageReporting: true} }, ""},
		{"a balloon behind an IOMMU", func(c *VM) { c.Balloon = &Balloon{PCIDevice: PCIDevice{IOMMU: true}} }, "balloon.iommu=true is not supported"},
		{"hugepages", func(c *VM) { c.Memory.Hugepages = true }, ""},
		{"reserve", func(c *VM) { c.Memory.Reserve = true }, "memory.reserve=true is not supported yet"},
		{"an rng behind an IOMMU", func(c *VM) { c.RNG = &RNG{Src: "/dev/urandom", PCIDevice: PCIDevice{IOMMU: true}} }, "rng.iommu=true is not supported"},
		{"2 sockets of 2 cores of 2 threads", func(c *VM) {
			c.CPUs.MaxVCPUs = 8
			c.CPUs.Topology = &CPUTopology{ThreadsPerCore: 2, CoresPerDie: 2, DiesPerPackage: 1, Packages: 2}
		}, ""},
		{"vmm's topology", func(c *VM) {
			c.CPUs.MaxVCPUs = 8
			c.CPUs.Topology = &CPUTopology{ThreadsPerCore: 1, CoresPerDie: 8, DiesPerPackage: 1, Packages: 1}
		}, ""},
		{"nested off", func(c *VM) { c.CPUs.Nested = &no }, ""},
		{"no transparent huge pages", func(c *VM) { c.Memory.THP = &no }, ""},
		{"PCI segments recorded", func(c *VM) { c.Platform = &Platform{NumPCISegments: 16} }, ""},
		{"ids recorded", func(c *VM) { c.Disks = []Disk{{Path: "/d", PCIDevice: PCIDevice{ID: "root"}}} }, ""},
		{"a raw image", func(c *VM) { c.Disks = []Disk{{Path: "/d", ImageType: ImageRaw}} }, ""},
		{"a qcow2 image", func(c *VM) { c.Disks = []Disk{{Path: "/d", ImageType: "Qcow2"}} }, `disks[0].image_type="Qcow2" is not supported yet`},
	} {
		cfg := Default()
		cfg.Payload.Kernel = "/k"
		c.edit(&cfg)
		cfg.SetDefaults()
		err := cfg.CheckSupported()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || err.Error() != c.want):
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

func TestValidateAppliesCloudHypervisorsRules(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*VM)
		want string // "" for valid
	}{
		{"a topology that is not max_vcpus", func(c *VM) {
			c.CPUs.Topology = &CPUTopology{ThreadsPerCore: 1, CoresPerDie: 2, DiesPerPackage: 1, Packages: 1}
		}, "Product of CPU topology parts does not match maximum vCPU"},
		{"a zero in the topology", func(c *VM) { c.CPUs.Topology = &CPUTopology{CoresPerDie: 1} }, "No part of the CPU topology can be zero"},
		{"17 PCI segments", func(c *VM) { c.Platform = &Platform{NumPCISegments: 17} }, "Number of PCI segments (17) not in range of 1 to 16"},
		{"two disks with one id", func(c *VM) {
			c.Disks = []Disk{{Path: "/a", PCIDevice: PCIDevice{ID: "d"}}, {Path: "/b", PCIDevice: PCIDevice{ID: "d"}}}
		}, "Identifier d is not unique"},
		{"a disk and a net with one id", func(c *VM) {
			c.Disks = []Disk{{Path: "/a", PCIDevice: PCIDevice{ID: "d"}}}
			c.Net = []Net{{PCIDevice: PCIDevice{ID: "d"}}}
		}, "Identifier d is not unique"},
		{"a reserved id", func(c *VM) { c.RNG = &RNG{PCIDevice: PCIDevice{ID: "__rng"}} }, "rng.id: Identifier __rng is not valid"},
		{"a mode Cloud Hypervisor does not have", func(c *VM) { c.Serial.Mode = "tty" }, `serial.mode="tty": unknown value`},
		{"an image type Cloud Hypervisor does not have", func(c *VM) { c.Disks = []Disk{{Path: "/a", ImageType: "iso"}} }, `disks[0].image_type="iso": unknown value`},
		{"a hot plug space in odd bytes", func(c *VM) { c.Memory.HotplugSize = 8<<30 + 12345 }, ""},
		{"hotplugged_size without hotplug_size", func(c *VM) {
			c.Memory.HotplugMethod, c.Memory.HotpluggedSize = HotplugVirtioMem, GiB
		}, "Invalid to define 'hotplugged_size' when there is no 'hotplug_size'"},
		{"hotplugged_size with ACPI", func(c *VM) { c.Memory.HotplugSize, c.Memory.HotpluggedSize = 8*GiB, GiB },
			"Invalid to define 'hotplugged_size' with hotplug method 'acpi'"},
		{"hotplugged_size beyond hotplug_size", func(c *VM) {
			c.Memory.HotplugMethod, c.Memory.HotplugSize, c.Memory.HotpluggedSize = HotplugVirtioMem, GiB, 2*GiB
		}, "'hotplugged_size' 2147483648 can't be bigger than 'hotplug_size' 1073741824"},
		{"hotplugged_size in odd blocks", func(c *VM) {
			c.Memory.HotplugMethod, c.Memory.HotplugSize, c.Memory.HotpluggedSize = HotplugVirtioMem, GiB, 3*MiB
		}, "not a multiple of the virtio-mem block size (2 MiB)"},
		{"hotplugged_size within hotplug_size", func(c *VM) {
			c.Memory.HotplugMethod, c.Memory.HotplugSize, c.Memory.HotpluggedSize = HotplugVirtioMem, GiB, GiB
		}, ""},
		{"a balloon as large as RAM", func(c *VM) { c.Balloon = &Balloon{Size: c.Memory.Size} }, "Balloon size (536870912) greater than RAM (536870912)"},
		{"a balloon within RAM and hotplugged_size", func(c *VM) {
			c.Memory.HotplugMethod, c.Memory.HotplugSize, c.Memory.HotpluggedSize = HotplugVirtioMem, GiB, GiB
			c.Balloon = &Balloon{Size: GiB}
		}, ""},
		{"a huge page size without huge pages", func(c *VM) { c.Memory.HugepageSize = 2 << 20 }, "Huge page size specified but huge pages not enabled"},
		{"a 3 MiB huge page", func(c *VM) { c.Memory.Hugepages, c.Memory.HugepageSize = true, 3<<20 }, "Huge page size is not power of 2: 3145728"},
		{"RAM in part of a 1 GiB page", func(c *VM) { c.Memory.Hugepages, c.Memory.HugepageSize = true, 1<<30 }, "Memory size is misaligned"},
		{"RAM in 2 MiB pages", func(c *VM) { c.Memory.Hugepages, c.Memory.HugepageSize = true, 2<<20 }, ""},
		{"huge pages with virtio-mem", func(c *VM) {
			c.Memory.Hugepages, c.Memory.HotplugMethod, c.Memory.HotplugSize = true, HotplugVirtioMem, GiB
		}, "hugepages=on with hotplug_method=virtio-mem is not supported by vmm"},
		{"huge pages with ACPI hot plug", func(c *VM) { c.Memory.Hugepages, c.Memory.HotplugSize = true, GiB }, ""},
		{"distinct ids", func(c *VM) {
			c.Disks = []Disk{{Path: "/a", PCIDevice: PCIDevice{ID: "a"}}, {Path: "/b", PCIDevice: PCIDevice{ID: "b"}}}
		}, ""},
	} {
		cfg := Default()
		cfg.Payload.Kernel = "/k"
		c.edit(&cfg)
		cfg.SetDefaults()
		err := cfg.Validate(0)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
	cfg := Default()
	cfg.Payload.Kernel = "/k"
	cfg.Disks = []Disk{{Path: "/a", PCIDevice: PCIDevice{ID: "d"}}, {Path: "/b", PCIDevice: PCIDevice{ID: "d"}}}
	var nu *NotUniqueError
	if err := cfg.Validate(0); !errors.As(err, &nu) || nu.ID != "d" {
		t.Errorf("duplicate ids: %v, want a *NotUniqueError", err)
	}
}
