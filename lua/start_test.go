package lua

import (
	"reflect"
	"testing"

	glua "github.com/yuin/gopher-lua"

	"github.com/vmmdev/vmm/guest"
	"github.com/vmmdev/vmm/vm/config"
)

func TestVsockArg(t *testing.T) {
	L := glua.NewState()
	defer L.Close()
	tbl := func(cid glua.LValue) *glua.LTable {
		x := L.NewTable()
		x.RawSetString("cid", cid)
		return x
	}
	bad := L.NewTable()
	bad.RawSetString("port", glua.LNumber(1))
	for _, c := range []struct {
		name string
		v    glua.LValue
		cid  uint32 // 0: no device
		err  bool
	}{
		{"absent: the agent's device", glua.LNil, guest.DefaultAgentCID, false},
		{"true", glua.LTrue, guest.DefaultAgentCID, false},
		{"false: the console", glua.LFalse, 0, false},
		{"a CID", tbl(glua.LNumber(42)), 42, false},
		{"a special CID", tbl(glua.LNumber(2)), 0, true},
		{"an unknown key", bad, 0, true},
		{"a string", glua.LString("yes"), 0, true},
	} {
		got, err := vsockArg(c.v, true)
		switch {
		case c.err != (err != nil):
			t.Errorf("%s: error %v", c.name, err)
		case c.cid == 0 && got != nil, c.cid != 0 && (got == nil || got.CID != c.cid || got.Socket != ""):
			t.Errorf("%s: %+v", c.name, got)
		}
	}
	if got, err := vsockArg(glua.LNil, false); got != nil || err != nil {
		t.Errorf("absent with NoAgent: %+v, %v", got, err)
	}
	if got, _ := vsockArg(glua.LTrue, false); got == nil {
		t.Error("vsock = true with NoAgent: no device")
	}
}

func TestMemoryArgTakesTheHotplugMethod(t *testing.T) {
	L := glua.NewState()
	defer L.Close()
	tbl := func(kv map[string]glua.LValue) *glua.LTable {
		x := L.NewTable()
		for k, v := range kv {
			x.RawSetString(k, v)
		}
		return x
	}
	for _, c := range []struct {
		name string
		v    glua.LValue
		want config.Memory
		err  bool
	}{
		{"virtio-mem", tbl(map[string]glua.LValue{"size": glua.LString("1G"), "hotplug_size": glua.LString("8G"),
			"hotplug_method": glua.LString("virtio-mem"), "hotplugged_size": glua.LString("1G")}),
			config.Memory{Size: config.GiB, HotplugSize: 8 * config.GiB, HotplugMethod: config.HotplugVirtioMem, HotpluggedSize: config.GiB}, false},
		{"acpi", tbl(map[string]glua.LValue{"hotplug_method": glua.LString("acpi")}), config.Memory{HotplugMethod: config.HotplugACPI}, false},
		{"an unknown method", tbl(map[string]glua.LValue{"hotplug_method": glua.LString("dimm")}), config.Memory{}, true},
		{"a method that is not a string", tbl(map[string]glua.LValue{"hotplug_method": glua.LTrue}), config.Memory{}, true},
	} {
		var got config.Memory
		err := memoryArg(c.v, &got)
		if c.err != (err != nil) || (!c.err && !reflect.DeepEqual(got, c.want)) {
			t.Errorf("%s: %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
}

func TestLandlockArg(t *testing.T) {
	L := glua.NewState()
	defer L.Close()
	list := func(vs ...glua.LValue) *glua.LTable {
		x := L.NewTable()
		for _, v := range vs {
			x.Append(v)
		}
		return x
	}
	rule := L.NewTable()
	rule.RawSetString("path", glua.LString("/r"))
	rule.RawSetString("access", glua.LString("r"))
	bad := L.NewTable()
	bad.RawSetString("pth", glua.LString("/x"))
	keyed := L.NewTable()
	keyed.RawSetString("path", glua.LString("/x"))
	for _, c := range []struct {
		name  string
		v     glua.LValue
		on    bool
		rules []config.LandlockRule
		err   bool
	}{
		{"absent: unconfined", glua.LNil, false, nil, false},
		{"empty: the VM's files only", list(), true, nil, false},
		{"a path and a rule", list(glua.LString("/d"), rule), true, []config.LandlockRule{{Path: "/d", Access: "rw"}, {Path: "/r", Access: "r"}}, false},
		{"an unknown key", list(bad), false, nil, true},
		{"not a list", keyed, false, nil, true},
		{"a boolean", glua.LTrue, false, nil, true},
	} {
		var cfg config.VM
		err := landlockArg(c.v, &cfg)
		if c.err != (err != nil) {
			t.Errorf("%s: error %v", c.name, err)
			continue
		}
		if !c.err && (cfg.LandlockEnable != c.on || !reflect.DeepEqual(cfg.LandlockRules, c.rules)) {
			t.Errorf("%s: %v %+v", c.name, cfg.LandlockEnable, cfg.LandlockRules)
		}
	}
}
