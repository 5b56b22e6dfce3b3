package lua

import (
	"testing"

	glua "github.com/yuin/gopher-lua"

	"github.com/vmmdev/vmm/guest"
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
