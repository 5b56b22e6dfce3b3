package vm

import (
	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/memory"
)

// memoryOptions is how memory.* says guest RAM is backed on the host: the
// boot RAM and every region hot-added later.
func memoryOptions(m config.Memory) memory.Options {
	return memory.Options{
		NoTHP:        !m.THPEnabled(),
		Shared:       m.Shared,
		Hugepages:    m.Hugepages,
		HugepageSize: m.HugepageSize,
		Prefault:     m.Prefault,
		Mergeable:    m.Mergeable,
	}
}
