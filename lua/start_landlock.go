package lua

import (
	"fmt"

	glua "github.com/yuin/gopher-lua"

	"github.com/vmmdev/vmm/vm/config"
)

// landlockArg reads vmm.start's landlock: absent leaves vmm unconfined; a
// list confines it (--landlock) with these rules besides the VM's own
// files, each a path (read and write) or {path = P, access = "r"|"w"|"rw"}.
func landlockArg(v glua.LValue, cfg *config.VM) error {
	switch t := v.(type) {
	case *glua.LNilType:
		return nil
	case *glua.LTable:
		cfg.LandlockEnable = true
		var err error
		t.ForEach(func(k, rv glua.LValue) {
			if err != nil {
				return
			}
			if _, ok := k.(glua.LNumber); !ok {
				err = fmt.Errorf("landlock: want a list of rules, got the key %s", render(k))
				return
			}
			rule := config.LandlockRule{Access: "rw"}
			switch r := rv.(type) {
			case glua.LString:
				rule.Path = string(r)
			case *glua.LTable:
				if err = checkKeys(r, "landlock[].", []string{"path", "access"}); err != nil {
					return
				}
				if rule.Path, err = optString(r.RawGetString("path"), "landlock[].path"); err != nil {
					return
				}
				var access string
				if access, err = optString(r.RawGetString("access"), "landlock[].access"); err != nil {
					return
				}
				if access != "" {
					rule.Access = access
				}
			default:
				err = fmt.Errorf("landlock: want a path or {path = P, access = A}, got %s", render(rv))
				return
			}
			if rule.Path == "" {
				err = fmt.Errorf("landlock: a rule without a path")
				return
			}
			cfg.LandlockRules = append(cfg.LandlockRules, rule)
		})
		return err
	}
	return fmt.Errorf("landlock: want a list of rules ({} for none), got %s", render(v))
}
