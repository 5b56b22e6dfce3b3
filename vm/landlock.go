package vm

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/landlock"
	"github.com/vmmdev/vmm/vm/memory"
)

// tunPath is the TUN/TAP clone device each boot opens for the VM's taps.
const tunPath = "/dev/net/tun"

// confine applies Landlock to the whole process for cfg, as Cloud
// Hypervisor does at vm.create: from then on the process reaches the file
// system only through landlockRules(cfg). A kernel without Landlock is an
// error: the user asked for it.
func (v *VMM) confine(cfg config.VM) error {
	rules, err := landlockRules(cfg)
	if err != nil {
		return err
	}
	if err := landlock.Restrict(rules); err != nil {
		return invalid(fmt.Errorf("landlock_enable: %w", err))
	}
	v.log.Info("Landlock applied", "rules", len(rules))
	return nil
}

// landlockRules are what the VM reaches after vm.create (booting,
// rebooting, dumping state) and the configuration's landlock_rules:
//   - the payload (read again on each boot), read;
//   - the disks, read and write (read for a read-only disk);
//   - the rng's source, read;
//   - the serial port's and console's files and sockets, and the ptys;
//   - /dev/net/tun when the VM has a net (each boot opens it);
//   - the vsock socket's directory, where each boot removes and binds the
//     socket again;
//   - /proc/meminfo and the huge page pools (huge pages are checked on
//     each boot), this process's threads in /proc (state dumps);
//   - landlock_rules: hot-added disks and anything else the VM will open.
func landlockRules(cfg config.VM) ([]landlock.Rule, error) {
	var rules []landlock.Rule
	add := func(path string, a landlock.Access) {
		if path != "" {
			rules = append(rules, landlock.Rule{Path: path, Access: a})
		}
	}
	rw := landlock.Read | landlock.Write
	add(cfg.Payload.Kernel, landlock.Read)
	add(cfg.Payload.Initramfs, landlock.Read)
	add(cfg.Payload.Firmware, landlock.Read)
	for _, d := range cfg.Disks {
		if d.Readonly {
			add(d.Path, landlock.Read)
		} else {
			add(d.Path, rw)
		}
	}
	if cfg.RNG != nil {
		add(cfg.RNG.Src, landlock.Read)
	}
	for _, c := range []struct {
		mode         config.ConsoleMode
		file, socket string
	}{{cfg.Serial.Mode, cfg.Serial.File, cfg.Serial.Socket}, {cfg.Console.Mode, cfg.Console.File, cfg.Console.Socket}} {
		switch c.mode {
		case config.ModeFile:
			add(c.file, rw)
		case config.ModeSocket:
			add(c.socket, rw)
		case config.ModePty:
			add("/dev/pts", rw)
			add("/dev/ptmx", rw)
		}
	}
	if len(cfg.Net) > 0 {
		add(tunPath, rw)
	}
	if cfg.Vsock != nil {
		add(filepath.Dir(cfg.Vsock.Socket), landlock.MakeSocket|landlock.RemoveFile)
	}
	add("/proc/meminfo", landlock.Read)
	if cfg.Memory.Hugepages {
		add(memory.HugetlbDir, landlock.Read)
	}
	add(fmt.Sprintf("/proc/%d/task", os.Getpid()), landlock.Read)
	for _, r := range cfg.LandlockRules {
		a, err := landlock.ParseAccess(r.Access)
		if err != nil {
			return nil, invalid(fmt.Errorf("landlock_rules: %s: %w", r.Path, err))
		}
		add(r.Path, a)
	}
	return rules, nil
}
