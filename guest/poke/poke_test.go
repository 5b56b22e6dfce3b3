package poke

import (
	"strings"
	"testing"

	"github.com/vmmdev/vmm/acpi"
	"github.com/vmmdev/vmm/vm/layout"
)

func TestSanitizeDefusesEveryWriteThatEndsTheMachine(t *testing.T) {
	for port := uint16(0x5e); port <= 0x66; port++ {
		for _, size := range []uint16{1, 2, 4} {
			for v := range uint32(256) {
				w := sanitize(port, size, v*0x01010101)
				for i := range size {
					b := uint8(w >> (8 * i))
					if port+i == layout.I8042CommandPort && b >= 0xf0 && b&1 == 0 {
						t.Fatalf("out%d %#x, %#x: i8042 reset pulse %#x left", size, port, v, b)
					}
				}
			}
		}
	}
	for v := range uint32(256) {
		w := sanitize(layout.ACPIPMStart, 4, v*0x01010101)
		if uint8(w>>16) == layout.ResetValue {
			t.Fatalf("%#x: reset value left in the reset register", v)
		}
		if uint8(w)&acpi.SleepControlEnable != 0 {
			t.Fatalf("%#x: SLP_EN left in the sleep control register", v)
		}
	}
	if got := sanitize(layout.COM1Port, 4, 0xfefefefe); got != 0xfefefefe {
		t.Errorf("a write elsewhere changed: %#x", got)
	}
}

func TestParseIOMemTakesTheDeviceRangesAbove4GiB(t *testing.T) {
	iomem := `00000000-00000fff : Reserved
00001000-0009fbff : System RAM
c0000000-cfffffff : PCI Bus 0000:00
  c0000000-c0003fff : 0000:00:01.0
100000000-13fffffff : System RAM
800000000-bffffffff : PCI Bus 0000:00
  800000000-800003fff : 0000:00:01.0
    800000000-800003fff : virtio-pci-modern
`
	got := parseIOMem(strings.NewReader(iomem))
	if len(got) != 1 || got[0].Start != 0x8_0000_0000 || got[0].Size != 1<<30 {
		t.Errorf("ranges %+v, want the 64-bit window, cut to 1 GiB", got)
	}
}
