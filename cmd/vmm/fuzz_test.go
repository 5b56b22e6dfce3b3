package main

import (
	"io"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary command lines (arguments separated by NUL) to
// vmm's flag parsing. Nothing panics, and a command line that parses into
// a VM with a kernel comes back through config.VM.Args as one that parses
// again.
//
//	go test -run='^$' -fuzz=FuzzParse -fuzztime=10s ./cmd/vmm
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"--kernel\x00k\x00--cpus\x00boot=2,max=8\x00--memory\x00size=1G,hotplug_size=8G",
		"--api-socket\x00/tmp/s",
		"--kernel=k\x00--disk\x00path=/d,readonly=on\x00--net\x00tap=t0\x00--rng\x00--serial\x00off",
		"--kernel\x00k\x00--vsock\x00cid=3,socket=/v\x00--balloon\x00size=64M\x00-v\x00-v",
		"--firmware\x00f\x00--kernel\x00k", "--seccomp\x00false", "--api-socket\x00fd=3\x00--event-monitor\x00fd=4", "-h", "",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Split(line, "\x00")
		if len(args) > 32 {
			return
		}
		cfg, _, err := parse(args, io.Discard)
		if err != nil || cfg.Payload.Kernel == "" || strings.ContainsAny(line, `"`) {
			return
		}
		again := cfg.Args()
		if _, _, err := parse(again, io.Discard); err != nil {
			t.Fatalf("%q parsed; its Args %q do not: %v", args, again, err)
		}
	})
}
