package vm

import (
	"errors"

	"github.com/vmmdev/vmm/vm/config"
)

// textNoConsoleSocket is Cloud Hypervisor's refusal of a virtio console in
// Socket mode.
const textNoConsoleSocket = "No socket option support for console device"

// checkConsoles applies Cloud Hypervisor's rules on the consoles' modes:
// File and Socket need their path, the virtio console has no Socket mode.
// Two consoles on the terminal are allowed (Cloud Hypervisor only warns).
func checkConsoles(cfg *config.VM) error {
	for _, s := range []consoleSpec{serialSpec(cfg.Serial), consoleSpecOf(cfg.Console)} {
		switch {
		case s.mode == config.ModeFile && s.file == "":
			return invalidf("%s: Path missing when using file console mode", s.name)
		case s.mode == config.ModeSocket && s.name == "console":
			return invalid(errors.New("console: Error creating console devices: " + textNoConsoleSocket))
		case s.mode == config.ModeSocket && s.socket == "":
			return invalidf("%s: Path missing when using socket console mode", s.name)
		}
	}
	return nil
}

// openConsolesLocked opens the host sides of cfg's serial port and virtio
// console (none when it is off) and writes a pseudo-terminal's path into
// the console's file field, where vm.info shows it, as Cloud Hypervisor
// does. The terminal's input goes to the serial port when both are on it.
// Called with v.mu held.
func (v *VMM) openConsolesLocked(cfg *config.VM) error {
	v.closeConsolesLocked()
	serial, err := openConsole(serialSpec(cfg.Serial), true, v.opts.Stdin, v.opts.Stdout, v.log)
	if err != nil {
		return err
	}
	if serial.path != "" {
		cfg.Serial.File = serial.path
	}
	var vc *console
	if cfg.Console.Mode != config.ModeOff && cfg.Console.Mode != "" {
		if cfg.Serial.Mode == config.ModeTty && cfg.Console.Mode == config.ModeTty {
			v.log.Warn("Using TTY output for multiple consoles: the terminal's input goes to the serial port", "consoles", []string{"serial", "console"})
		}
		takeStdin := cfg.Serial.Mode != config.ModeTty
		if vc, err = openConsole(consoleSpecOf(cfg.Console), takeStdin, v.opts.Stdin, v.opts.Stdout, v.log); err != nil {
			serial.close()
			return err
		}
		if vc.path != "" {
			cfg.Console.File = vc.path
		}
	}
	v.console, v.vconsole = serial, vc
	return nil
}

// detachConsolesLocked detaches the consoles from the machine's devices.
func (v *VMM) detachConsolesLocked() {
	for _, c := range []*console{v.console, v.vconsole} {
		if c != nil {
			c.attach(nil)
		}
	}
}

// closeConsolesLocked closes the consoles' host sides.
func (v *VMM) closeConsolesLocked() {
	for _, c := range []*console{v.console, v.vconsole} {
		if c != nil {
			c.close()
		}
	}
	v.console, v.vconsole = nil, nil
}
