package config

import (
	"errors"
	"fmt"
	"os"

	"github.com/vmmdev/vmm/vm/landlock"
)

// ParseLandlockRule reads one value of --landlock-rules: path=P,access=A
// with A r, w or rw, as Cloud Hypervisor's.
func ParseLandlockRule(s string) (LandlockRule, error) {
	var r LandlockRule
	o := newOptions("landlock-rules").add("path", str(&r.Path)).add("access", str(&r.Access))
	if err := o.parse(s); err != nil {
		return r, err
	}
	if r.Path == "" || r.Access == "" {
		return r, errors.New("--landlock-rules: Error parsing --landlock-rules: path/access field missing")
	}
	return r, nil
}

// Arg is the --landlock-rules value that parses into r.
func (r LandlockRule) Arg() string { return "path=" + r.Path + ",access=" + r.Access }

// validate applies Cloud Hypervisor's rules on a Landlock rule: its path
// exists and its access is a mix of r and w.
func (r LandlockRule) validate() error {
	if _, err := os.Stat(r.Path); err != nil {
		return fmt.Errorf("landlock_rules: Path %q provided in landlock-rules does not exist", r.Path)
	}
	if _, err := landlock.ParseAccess(r.Access); err != nil {
		return fmt.Errorf("landlock_rules: Invalid landlock access: %w", err)
	}
	return nil
}

// validateLandlock checks landlock_rules.
func (c *VM) validateLandlock() error {
	for _, r := range c.LandlockRules {
		if err := r.validate(); err != nil {
			return err
		}
	}
	return nil
}
