package config

import (
	"strings"
	"testing"
)

func TestLandlockRulesParseAndValidateAsCloudHypervisors(t *testing.T) {
	r, err := ParseLandlockRule("path=/tmp,access=rw")
	if err != nil || r != (LandlockRule{Path: "/tmp", Access: "rw"}) {
		t.Fatalf("ParseLandlockRule = %+v, %v", r, err)
	}
	if r.Arg() != "path=/tmp,access=rw" {
		t.Errorf("Arg = %q", r.Arg())
	}
	for s, want := range map[string]string{
		"path=/tmp":   "path/access field missing",
		"access=r":    "path/access field missing",
		"path=/a,x=1": "x",
	} {
		if _, err := ParseLandlockRule(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseLandlockRule(%q): %v, want %q", s, err, want)
		}
	}
	for _, c := range []struct {
		rule LandlockRule
		want string
	}{
		{LandlockRule{Path: "/nonexistent/x", Access: "rw"}, `Path "/nonexistent/x" provided in landlock-rules does not exist`},
		{LandlockRule{Path: "/tmp", Access: "rx"}, "Invalid landlock access"},
		{LandlockRule{Path: "/tmp", Access: "r"}, ""},
	} {
		cfg := VM{LandlockRules: []LandlockRule{c.rule}}
		err := cfg.validateLandlock()
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.rule, err, c.want)
		}
	}
}
