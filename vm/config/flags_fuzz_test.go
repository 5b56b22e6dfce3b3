package config

import (
	"strings"
	"testing"
)

// FuzzFlagParsers feeds arbitrary values to every command-line flag parser
// (--cpus, --memory, --disk, --net, --serial, --console, --debug-console,
// --rng, --platform, --balloon, --vsock, sizes and toggles). Whatever the
// text, nothing panics, and a value that parses and has an Arg form comes
// back through it: what vmm prints as flags, it reads again.
//
//	go test -run='^$' -fuzz=FuzzFlagParsers -fuzztime=10s ./vm/config
func FuzzFlagParsers(f *testing.F) {
	for _, seed := range []string{
		"boot=2,max=8", "boot=1,max=4,topology=1:2:1:2,affinity=[0@[0-1],1@[2]]", "boot=0",
		"size=1G,hotplug_size=8G", "size=512M,hotplug_method=virtio-mem,hotplugged_size=128M",
		"path=/d.img,readonly=on,id=disk0,num_queues=2,queue_size=128", "tap=tap0,mac=12:34:56:78:9a:bc,ip=10.0.0.1,mask=255.255.255.0",
		"file=/tmp/x", "socket=/tmp/s", "tty", "off", "src=/dev/urandom", "num_pci_segments=2",
		"size=64M,deflate_on_oom=on", "cid=3,socket=/tmp/v.sock", "4096", "1K", "on", "[", "=,=", "a=[b=[c]],",
	} {
		for k := range 12 {
			f.Add(uint8(k), seed)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, s string) {
		// roundTrip checks that the Arg form arg of a parsed value v
		// parses, to a value whose Arg form is arg again. (Arg writes the
		// part of a value that vmm.start and VM.Args need, not all of it.)
		roundTrip := func(name string, v any, arg string, parse func(string) (any, string, error)) {
			if strings.Contains(arg, `""`) && strings.ContainsAny(unquote(arg), ",[]") {
				return // a value with both a quote and a comma cannot be written
			}
			_, again, err := parse(arg)
			if err != nil {
				t.Fatalf("--%s %q parsed to %+v, whose %q does not parse: %v", name, s, v, arg, err)
			}
			if again != arg {
				t.Fatalf("--%s %q: written %q, read and written again %q", name, s, arg, again)
			}
		}
		switch which % 12 {
		case 0:
			if c, err := ParseCPUs(s); err == nil {
				roundTrip("cpus", c, c.Arg(), func(a string) (any, string, error) { x, err := ParseCPUs(a); return x, x.Arg(), err })
			}
		case 1:
			if m, err := ParseMemory(s); err == nil {
				roundTrip("memory", m, m.Arg(), func(a string) (any, string, error) { x, err := ParseMemory(a); return x, x.Arg(), err })
			}
		case 2:
			if d, err := ParseDisk(s); err == nil {
				roundTrip("disk", d, d.Arg(), func(a string) (any, string, error) { x, err := ParseDisk(a); return x, x.Arg(), err })
			}
		case 3:
			if n, err := ParseNet(s); err == nil {
				roundTrip("net", n, n.Arg(), func(a string) (any, string, error) { x, err := ParseNet(a); return x, x.Arg(), err })
			}
		case 4:
			if c, err := ParseSerial(s); err == nil {
				roundTrip("serial", c, c.Arg(), func(a string) (any, string, error) { x, err := ParseSerial(a); return x, x.Arg(), err })
			}
		case 5:
			if c, err := ParseConsole(s); err == nil {
				roundTrip("console", c, c.Arg(), func(a string) (any, string, error) { x, err := ParseConsole(a); return x, x.Arg(), err })
			}
		case 6:
			_, _ = ParseDebugConsole(s)
		case 7:
			_, _ = ParseRNG(s)
		case 8:
			_, _ = ParsePlatform(s)
		case 9:
			if b, err := ParseBalloon(s); err == nil {
				roundTrip("balloon", b, b.Arg(), func(a string) (any, string, error) { x, err := ParseBalloon(a); return x, x.Arg(), err })
			}
		case 10:
			if v, err := ParseVsock(s); err == nil {
				roundTrip("vsock", v, v.Arg(), func(a string) (any, string, error) { x, err := ParseVsock(a); return x, x.Arg(), err })
			}
		case 11:
			if n, err := ParseSize(s); err == nil && n != 0 {
				if again, err := ParseSize(FormatSize(n)); err != nil || again != n {
					t.Fatalf("size %q = %d; through %q: %d, %v", s, n, FormatSize(n), again, err)
				}
			}
			_, _ = ParseToggle(s)
		}
	})
}
