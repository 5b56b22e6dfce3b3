package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{{"0", 0, true}, {"100", 100, true}, {"4K", 4096, true}, {"100M", 100 << 20, true}, {"1G", 1 << 30, true},
		{"", 0, false}, {"-1", 0, false}, {"1T", 0, false}, {"M", 0, false}} {
		got, err := parseSize(c.in)
		if c.ok != (err == nil) || got != c.want {
			t.Errorf("parseSize(%q) = %d, %v", c.in, got, err)
		}
	}
}

func TestRunRefusesBadCommandLines(t *testing.T) {
	for _, args := range [][]string{nil, {"bogus"}, {"send", "2", "5000"}, {"send", "x", "1", "1"}, {"recv"}, {"recv", "-conns", "0", "5"}} {
		var out, errw bytes.Buffer
		if code := run(args, &out, &errw); code != exitUsage || !strings.Contains(errw.String(), "usage") {
			t.Errorf("run(%q) = %d, %q", args, code, errw.String())
		}
	}
}
