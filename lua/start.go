package lua

import (
	"fmt"
	"strings"
	"time"

	glua "github.com/yuin/gopher-lua"

	"github.com/vmmdev/vmm/guest"
	"github.com/vmmdev/vmm/vm/config"
)

// Starting VMs: vmm.start and its table, read into a config.VM one field
// at a time.

// vmm.start{...} starts a VM and, unless wait = false, waits for its guest.
func (rn *run) start(L *glua.LState) int {
	opts := L.OptTable(1, L.NewTable())
	cfg, name, wait, bootT, err := rn.startConfig(opts)
	if err != nil {
		raise(L, fmt.Errorf("vmm.start: %w", err))
	}
	rn.names[name] = true
	rn.note(NoteAction, name, "start: "+strings.Join(describeConfig(cfg), " "))
	ctx, cancel := rn.ctx(bootT)
	defer cancel()
	began := time.Now()
	vm, err := rn.r.Launcher.Launch(ctx, name, cfg)
	if err != nil {
		raise(L, fmt.Errorf("vmm.start: %w", err))
	}
	h := &vmHandle{name: name, vm: vm}
	rn.vms = append(rn.vms, h)
	if wait {
		if err := vm.WaitReady(ctx); err != nil {
			raise(L, fmt.Errorf("vmm.start: %w", err))
		}
		rn.note(NoteAction, name, fmt.Sprintf("guest ready after %.1fs", time.Since(began).Seconds()))
	}
	ud := L.NewUserData()
	ud.Value = h
	L.SetMetatable(ud, L.GetTypeMetatable(vmTypeName))
	L.Push(ud)
	return 1
}

// startKeys are the fields vmm.start knows.
var startKeys = []string{"name", "kernel", "initramfs", "cmdline", "cpus", "memory", "disks", "net", "rng", "vsock", "landlock", "wait", "boot_timeout"}

// startConfig reads vmm.start's table.
func (rn *run) startConfig(t *glua.LTable) (cfg config.VM, name string, wait bool, bootT time.Duration, err error) {
	cfg = config.Default()
	wait, bootT = true, rn.t.Boot
	if err = checkKeys(t, "", startKeys); err != nil {
		return
	}
	get := func(k string) glua.LValue { return t.RawGetString(k) }
	if name, err = optString(get("name"), "name"); err != nil {
		return
	}
	if name == "" {
		name = fmt.Sprintf("vm%d", len(rn.vms)+1)
	}
	if rn.names[name] {
		err = fmt.Errorf("name %q is taken by another VM of this script", name)
		return
	}
	for _, f := range []struct {
		key string
		dst *string
	}{{"kernel", &cfg.Payload.Kernel}, {"initramfs", &cfg.Payload.Initramfs}, {"cmdline", &cfg.Payload.Cmdline}} {
		if *f.dst, err = optString(get(f.key), f.key); err != nil {
			return
		}
	}
	if cfg.CPUs, err = cpusArg(get("cpus")); err != nil {
		return
	}
	if err = memoryArg(get("memory"), &cfg.Memory); err != nil {
		return
	}
	if cfg.Disks, err = disksArg(get("disks")); err != nil {
		return
	}
	if cfg.Net, err = netArg(get("net")); err != nil {
		return
	}
	if cfg.RNG, err = rngArg(get("rng")); err != nil {
		return
	}
	if cfg.Vsock, err = vsockArg(get("vsock"), !rn.r.NoAgent); err != nil {
		return
	}
	if err = landlockArg(get("landlock"), &cfg); err != nil {
		return
	}
	switch v := get("wait").(type) {
	case *glua.LNilType:
	case glua.LBool:
		wait = bool(v)
	default:
		err = fmt.Errorf("wait: want a boolean, got %s", render(v))
		return
	}
	if v := get("boot_timeout"); v != glua.LNil {
		f, ok := v.(glua.LNumber)
		if !ok || f <= 0 || f > 24*3600 {
			err = fmt.Errorf("boot_timeout: want seconds, got %s", render(v))
			return
		}
		bootT = time.Duration(float64(f) * float64(time.Second))
	}
	return
}

func cpusArg(v glua.LValue) (config.CPUs, error) {
	c := config.Default().CPUs
	switch t := v.(type) {
	case *glua.LNilType:
		return c, nil
	case glua.LNumber:
		n, err := intArg(t)
		if err != nil {
			return c, fmt.Errorf("cpus: %w", err)
		}
		return config.CPUs{BootVCPUs: int(n), MaxVCPUs: int(n)}, nil
	case *glua.LTable:
		if err := checkKeys(t, "cpus.", []string{"boot", "max", "topology"}); err != nil {
			return c, err
		}
		if tv := t.RawGetString("topology"); tv != glua.LNil {
			s, ok := tv.(glua.LString)
			if !ok {
				return c, fmt.Errorf("cpus.topology: want \"THREADS:CORES:DIES:PACKAGES\", got %s", render(tv))
			}
			parsed, err := config.ParseCPUs("topology=" + string(s))
			if err != nil {
				return c, fmt.Errorf("cpus.topology: %w", err)
			}
			c.Topology = parsed.Topology
		}
		if err := intField(t, "boot", "cpus.", &c.BootVCPUs); err != nil {
			return c, err
		}
		c.MaxVCPUs = c.BootVCPUs
		return c, intField(t, "max", "cpus.", &c.MaxVCPUs)
	}
	return c, fmt.Errorf("cpus: want {boot = N, max = M} or a number, got %s", render(v))
}

func memoryArg(v glua.LValue, m *config.Memory) error {
	switch t := v.(type) {
	case *glua.LNilType:
		return nil
	case glua.LString, glua.LNumber:
		n, err := sizeArg(t)
		if err != nil {
			return fmt.Errorf("memory: %w", err)
		}
		m.Size = n
		return nil
	case *glua.LTable:
		if err := checkKeys(t, "memory.", []string{"size", "hotplug_size", "hotplug_method", "hotplugged_size", "shared", "prefault", "mergeable", "hugepages"}); err != nil {
			return err
		}
		switch x := t.RawGetString("hotplug_method").(type) {
		case *glua.LNilType:
		case glua.LString:
			// The command line's spellings: acpi or virtio-mem.
			mm, err := config.ParseMemory("hotplug_method=" + string(x))
			if err != nil {
				return fmt.Errorf("memory.hotplug_method: %w", err)
			}
			m.HotplugMethod = mm.HotplugMethod
		default:
			return fmt.Errorf("memory.hotplug_method: want \"acpi\" or \"virtio-mem\", got %s", render(x))
		}
		for _, f := range []struct {
			key string
			dst *bool
		}{{"shared", &m.Shared}, {"prefault", &m.Prefault}, {"mergeable", &m.Mergeable}, {"hugepages", &m.Hugepages}} {
			switch b := t.RawGetString(f.key).(type) {
			case *glua.LNilType:
			case glua.LBool:
				*f.dst = bool(b)
			default:
				return fmt.Errorf("memory.%s: want a boolean, got %s", f.key, render(b))
			}
		}
		for _, f := range []struct {
			key string
			dst *uint64
		}{{"size", &m.Size}, {"hotplug_size", &m.HotplugSize}, {"hotplugged_size", &m.HotpluggedSize}} {
			if x := t.RawGetString(f.key); x != glua.LNil {
				n, err := sizeArg(x)
				if err != nil {
					return fmt.Errorf("memory.%s: %w", f.key, err)
				}
				*f.dst = n
			}
		}
		return nil
	}
	return fmt.Errorf("memory: want {size = \"1G\", hotplug_size = \"8G\", shared = true, prefault = true} or a size, got %s", render(v))
}

func disksArg(v glua.LValue) ([]config.Disk, error) {
	var out []config.Disk
	err := forList(v, "disks", func(i int, e *glua.LTable) error {
		where := fmt.Sprintf("disks[%d].", i)
		if err := checkKeys(e, where, []string{"path", "readonly"}); err != nil {
			return err
		}
		p, err := optString(e.RawGetString("path"), where+"path")
		if err != nil {
			return err
		}
		d := config.Disk{Path: p}
		switch ro := e.RawGetString("readonly").(type) {
		case *glua.LNilType:
		case glua.LBool:
			d.Readonly = bool(ro)
		default:
			return fmt.Errorf("%sreadonly: want a boolean, got %s", where, render(ro))
		}
		out = append(out, d)
		return nil
	})
	return out, err
}

func netArg(v glua.LValue) ([]config.Net, error) {
	var out []config.Net
	err := forList(v, "net", func(i int, e *glua.LTable) error {
		where := fmt.Sprintf("net[%d].", i)
		if err := checkKeys(e, where, []string{"tap", "mac", "ip", "mask"}); err != nil {
			return err
		}
		var n config.Net
		for _, f := range []struct {
			key string
			dst *string
		}{{"tap", &n.Tap}, {"mac", &n.MAC}, {"ip", &n.IP}, {"mask", &n.Mask}} {
			s, err := optString(e.RawGetString(f.key), where+f.key)
			if err != nil {
				return err
			}
			*f.dst = s
		}
		out = append(out, n)
		return nil
	})
	return out, err
}

func rngArg(v glua.LValue) (*config.RNG, error) {
	on := func() *config.RNG { return &config.RNG{Src: config.DefaultRNGSource} }
	return deviceArg(v, false, on, func(t *glua.LTable) (*config.RNG, error) {
		if err := checkKeys(t, "rng.", []string{"src"}); err != nil {
			return nil, err
		}
		src, err := optString(t.RawGetString("src"), "rng.src")
		if err != nil {
			return nil, err
		}
		if src == "" {
			src = config.DefaultRNGSource
		}
		return &config.RNG{Src: src}, nil
	}, "rng: want true or {src = PATH}")
}

// vsockArg reads vsock: true gives the VM a vsock device with
// guest.DefaultAgentCID, whose socket the launcher places, so that vm:sh
// and vm:run go through the guest agent; false leaves it out (commands
// then go to the serial console); {cid = N} picks the guest's CID;
// absent is byDefault's choice.
func vsockArg(v glua.LValue, byDefault bool) (*config.Vsock, error) {
	on := func() *config.Vsock { return &config.Vsock{CID: guest.DefaultAgentCID} }
	return deviceArg(v, byDefault, on, func(t *glua.LTable) (*config.Vsock, error) {
		if err := checkKeys(t, "vsock.", []string{"cid"}); err != nil {
			return nil, err
		}
		vs := on()
		if c := t.RawGetString("cid"); c != glua.LNil {
			n, err := intArg(c)
			if err != nil || n < 3 || n >= 0xffffffff {
				return nil, fmt.Errorf("vsock.cid: want a guest CID from 3, got %s", render(c))
			}
			vs.CID = uint32(n)
		}
		return vs, nil
	}, "vsock: want true, false or {cid = N}")
}

// deviceArg reads a device's option: true gives the device on() makes,
// false none, absent on()'s device when byDefault and none otherwise, and a
// table the device fromTable makes of it. Anything else is an error that
// want starts.
func deviceArg[T any](v glua.LValue, byDefault bool, on func() *T, fromTable func(*glua.LTable) (*T, error), want string) (*T, error) {
	switch t := v.(type) {
	case *glua.LNilType:
		if byDefault {
			return on(), nil
		}
		return nil, nil
	case glua.LBool:
		if t {
			return on(), nil
		}
		return nil, nil
	case *glua.LTable:
		return fromTable(t)
	}
	return nil, fmt.Errorf("%s, got %s", want, render(v))
}

// forList calls f for each table of a list of tables.
func forList(v glua.LValue, what string, f func(int, *glua.LTable) error) error {
	if v == glua.LNil {
		return nil
	}
	t, ok := v.(*glua.LTable)
	if !ok || !isList(t) {
		return fmt.Errorf("%s: want a list of tables, got %s", what, render(v))
	}
	for i := 1; i <= t.Len(); i++ {
		e, ok := t.RawGetInt(i).(*glua.LTable)
		if !ok {
			return fmt.Errorf("%s[%d]: want a table, got %s", what, i, render(t.RawGetInt(i)))
		}
		if err := f(i, e); err != nil {
			return err
		}
	}
	return nil
}

// describeConfig is the config in the command line's words, for notes.
func describeConfig(cfg config.VM) []string {
	d := []string{"cpus " + cfg.CPUs.Arg(), "memory " + cfg.Memory.Arg()}
	if len(cfg.Disks) > 0 {
		d = append(d, fmt.Sprintf("disks=%d", len(cfg.Disks)))
	}
	if len(cfg.Net) > 0 {
		d = append(d, fmt.Sprintf("net=%d", len(cfg.Net)))
	}
	if cfg.RNG != nil {
		d = append(d, "rng")
	}
	if cfg.Vsock != nil {
		d = append(d, fmt.Sprintf("vsock cid=%d", cfg.Vsock.CID))
	}
	return d
}
