package vm

import (
	"fmt"
	"strings"
	"time"

	"github.com/vmmdev/vmm/vm/config"
)

// Info is the body of GET vm.info: Cloud Hypervisor's fields, plus the
// live vCPU count, which Cloud Hypervisor does not report.
type Info struct {
	Config           config.VM `json:"config"`
	State            State     `json:"state"`
	MemoryActualSize uint64    `json:"memory_actual_size"`
	// ActiveVCPUs is the number of vCPUs whose threads run now; it differs
	// from config.cpus.boot_vcpus while an eject is pending.
	ActiveVCPUs int `json:"active_vcpus"`
	// BalloonActualSize is the balloon's size as the guest last reported
	// it, with a balloon: vmm's own field (Cloud Hypervisor only subtracts
	// it from memory_actual_size, as vmm does too).
	BalloonActualSize *uint64 `json:"balloon_actual_size,omitempty"`
	// DeviceTree is the virtio devices by id, with their PCI addresses
	// (devicetree.go), while the VM runs.
	DeviceTree map[string]DeviceNode `json:"device_tree,omitempty"`
	// PendingRemovals are the devices vm.remove-device asked the guest to
	// release and it has not ejected yet (vmm's field: Cloud Hypervisor
	// shows them only in device_tree). They stay until the guest ejects
	// them or the VM reboots; nothing waits for them.
	PendingRemovals []PendingRemoval `json:"pending_removals,omitempty"`
}

// PendingRemoval is a device removal the guest has not completed.
type PendingRemoval struct {
	ID  string `json:"id"`
	BDF string `json:"bdf"`
	// Asked is when the removal was first asked (RFC 3339), WaitingMs how
	// long ago that was.
	Asked     time.Time `json:"asked"`
	WaitingMs int64     `json:"waiting_ms"`
	// GuestNotified says whether the guest's hot plug scan has read the
	// eject request: false, its GED event is not handled (no ACPI, a
	// guest still booting); true, the guest knows and has not ejected (its
	// PCI hot plug driver is off, or it refused).
	GuestNotified bool `json:"guest_notified"`
}

// Summary renders the info for people, one "name: value" line per item:
// state, vCPUs, memory, payload, devices, serial port and console.
func (info Info) Summary() string {
	var b strings.Builder
	c := info.Config
	row := func(k, format string, args ...any) {
		fmt.Fprintf(&b, "%-11s %s\n", k+":", fmt.Sprintf(format, args...))
	}
	row("state", "%s", info.State)
	row("vcpus", "%d (boot %d, max %d)", info.ActiveVCPUs, c.CPUs.BootVCPUs, c.CPUs.MaxVCPUs)
	mem := fmt.Sprintf("%s (configured %s", humanSize(info.MemoryActualSize), humanSize(c.Memory.Size))
	if c.Memory.HotplugSize > 0 {
		mem += ", hotplug " + humanSize(c.Memory.HotplugSize)
	}
	row("memory", "%s)", mem)
	row("kernel", "%s", orNone(c.Payload.Kernel))
	if c.Payload.Initramfs != "" {
		row("initramfs", "%s", c.Payload.Initramfs)
	}
	if c.Payload.Cmdline != "" {
		row("cmdline", "%s", c.Payload.Cmdline)
	}
	for _, d := range c.Disks {
		ro := ""
		if d.Readonly {
			ro = " (read-only)"
		}
		row("disk", "%s%s", d.Path, ro)
	}
	for _, n := range c.Net {
		row("net", "tap=%s mac=%s ip=%s mask=%s", n.Tap, n.MAC, n.IP, n.Mask)
	}
	if c.RNG != nil {
		row("rng", "%s", c.RNG.Src)
	}
	for _, p := range info.PendingRemovals {
		row("removing", "%s at %s, asked %d ms ago, guest notified: %t", p.ID, p.BDF, p.WaitingMs, p.GuestNotified)
	}
	row("serial", "%s", formatConsole(c.Serial.Mode, c.Serial.File))
	row("console", "%s", formatConsole(c.Console.Mode, c.Console.File))
	return b.String()
}

// formatConsole renders a console's mode and file.
func formatConsole(mode config.ConsoleMode, file string) string {
	if file != "" {
		return fmt.Sprintf("%s %s", mode, file)
	}
	return orNone(string(mode))
}

// orNone is s, or "-" for an empty s.
func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// formatSize renders bytes with the largest binary unit that divides them.
func humanSize(n uint64) string {
	for _, u := range []struct {
		size uint64
		name string
	}{{1 << 40, "TiB"}, {1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d %s", n/u.size, u.name)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
