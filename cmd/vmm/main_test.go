package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmmdev/vmm/vm/config"
)

func TestParseReadsCloudHypervisorStyleFlags(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want func(config.VM) bool
	}{
		{"double dash", []string{"--kernel", "k", "--cpus", "boot=4", "--memory", "size=1024M", "--serial", "tty"},
			func(c config.VM) bool {
				return c.Payload.Kernel == "k" && c.CPUs == config.CPUs{BootVCPUs: 4, MaxVCPUs: 4} && c.Memory.Size == 1<<30 && c.Serial.Mode == config.ModeTty
			}},
		{"single dash and =", []string{"-kernel=k", "-cpus=boot=2,max=8", "-serial=file=/tmp/x"},
			func(c config.VM) bool {
				return c.CPUs.MaxVCPUs == 8 && c.Serial == config.Console{Mode: config.ModeFile, File: "/tmp/x"}
			}},
		{"rng alone", []string{"--kernel", "k", "--rng"}, func(c config.VM) bool { return c.RNG != nil && c.RNG.Src == config.DefaultRNGSource }},
		{"rng with a separate value", []string{"--rng", "src=/dev/hwrng", "--kernel", "k"}, func(c config.VM) bool { return c.RNG != nil && c.RNG.Src == "/dev/hwrng" }},
		{"rng followed by a flag", []string{"--rng", "--kernel", "k"}, func(c config.VM) bool { return c.RNG != nil && c.Payload.Kernel == "k" }},
		{"rng with an empty value", []string{"--kernel", "k", "--rng", ""}, func(c config.VM) bool { return c.RNG != nil }},
		{"api socket alone", []string{"--api-socket", "/tmp/s"}, func(c config.VM) bool { return c.Payload.Kernel == "" }},
	} {
		cfg, _, _, err := parse(c.args, &bytes.Buffer{})
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !c.want(cfg) {
			t.Errorf("%s: parsed %+v", c.name, cfg)
		}
	}
}

func TestRunExitsTwoWithOneLineOnMisuse(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not a kernel "), 10000), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--bogus"}, "flag provided but not defined"},
		{"no kernel", nil, "--kernel is required"},
		{"bad cpus", []string{"--kernel", "k", "--cpus", "boot=x"}, "--cpus"},
		{"stray argument", []string{"--kernel", "k", "extra"}, "unexpected argument"},
		{"missing kernel file", []string{"--kernel", filepath.Join(dir, "nope")}, "no such file"},
		{"garbage kernel", []string{"--kernel", garbage}, "not a bzImage"},
	} {
		var stderr bytes.Buffer
		code := run(c.args, time.Now(), strings.NewReader(""), &bytes.Buffer{}, &stderr)
		if code == exitFailure && strings.Contains(stderr.String(), "KVM") {
			t.Skipf("%s: no usable KVM here: %s", c.name, stderr.String())
		}
		if code != exitUsage {
			t.Errorf("%s: exit %d, want %d; stderr:\n%s", c.name, code, exitUsage, stderr.String())
		}
		if !strings.Contains(stderr.String(), c.want) || strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
			t.Errorf("%s: stderr %q, want one line with %q", c.name, stderr.String(), c.want)
		}
	}
}
