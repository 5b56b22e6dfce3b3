package config

import (
	"slices"
	"strings"
	"testing"
)

func TestValidateTakesAKernelOrAFirmwareAsCloudHypervisorDoes(t *testing.T) {
	for _, c := range []struct {
		name    string
		payload Payload
		err     string  // "" for none
		want    Payload // after Validate, when it passes
		ignored []string
	}{
		{"kernel", Payload{Kernel: "k", Cmdline: "c", Initramfs: "i"}, "", Payload{Kernel: "k", Cmdline: "c", Initramfs: "i"}, nil},
		{"firmware", Payload{Firmware: "f"}, "", Payload{Firmware: "f"}, nil},
		{"firmware with cmdline and initramfs", Payload{Firmware: "f", Cmdline: "c", Initramfs: "i"}, "", Payload{Firmware: "f"},
			[]string{"cmdline", "initramfs"}},
		{"both", Payload{Firmware: "f", Kernel: "k"}, "not both", Payload{}, nil},
		{"neither", Payload{Cmdline: "c"}, "no kernel", Payload{}, nil},
	} {
		cfg := Default()
		cfg.Payload = c.payload
		if got := c.payload.IgnoredWithFirmware(); !slices.Equal(got, c.ignored) {
			t.Errorf("%s: ignored %v, want %v", c.name, got, c.ignored)
		}
		err := cfg.Validate(0)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.err)
		case c.err == "" && cfg.Payload != c.want:
			t.Errorf("%s: payload %+v after Validate, want %+v", c.name, cfg.Payload, c.want)
		}
	}
}
