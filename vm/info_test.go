package vm

import (
	"strings"
	"testing"

	"github.com/vmmdev/vmm/vm/config"
)

func TestInfoSummaryShowsOneLinePerItemWithBinaryUnits(t *testing.T) {
	cfg := config.Default()
	cfg.Payload.Kernel = "/k"
	cfg.CPUs = config.CPUs{BootVCPUs: 2, MaxVCPUs: 4}
	cfg.Memory = config.Memory{Size: 1536 << 20, HotplugSize: 2 << 40}
	cfg.Disks = []config.Disk{{Path: "/d.img", Readonly: true}}
	got := Info{Config: cfg, State: StatePaused, MemoryActualSize: 1536<<20 + 1, ActiveVCPUs: 2}.Summary()
	for _, want := range []string{
		"state:      Paused\n",
		"vcpus:      2 (boot 2, max 4)\n",
		"memory:     1610612737 bytes (configured 1536 MiB, hotplug 2 TiB)\n",
		"kernel:     /k\n",
		"disk:       /d.img (read-only)\n",
		"serial:     Tty\n",
		"console:    Off\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
}
