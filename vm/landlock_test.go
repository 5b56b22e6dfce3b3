package vm

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/landlock"
)

func TestLandlockRulesCoverWhatABootOpensAgain(t *testing.T) {
	cfg := config.Default()
	cfg.Payload = config.Payload{Kernel: "/k", Initramfs: "/i"}
	cfg.Disks = []config.Disk{{Path: "/rw.img"}, {Path: "/ro.img", Readonly: true}}
	cfg.RNG = &config.RNG{Src: "/dev/urandom"}
	cfg.Net = []config.Net{{Tap: "t0"}}
	cfg.Vsock = &config.Vsock{CID: 3, Socket: "/run/vm/vsock.sock"}
	cfg.Serial = config.Serial{Mode: config.ModeFile, File: "/var/log/serial"}
	cfg.LandlockRules = []config.LandlockRule{{Path: "/hot", Access: "rw"}, {Path: "/ro", Access: "r"}}
	rules, err := landlockRules(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]landlock.Access{}
	for _, r := range rules {
		got[r.Path] |= r.Access
	}
	rw := landlock.Read | landlock.Write
	for path, want := range map[string]landlock.Access{
		"/k": landlock.Read, "/i": landlock.Read, "/rw.img": rw, "/ro.img": landlock.Read,
		"/dev/urandom": landlock.Read, tunPath: rw, "/run/vm": landlock.MakeSocket | landlock.RemoveFile,
		"/var/log/serial": rw, "/hot": rw, "/ro": landlock.Read, "/proc/meminfo": landlock.Read,
		filepath.Join("/proc", strconv.Itoa(os.Getpid()), "task"): landlock.Read,
	} {
		if got[path] != want {
			t.Errorf("%s: access %#x, want %#x", path, got[path], want)
		}
	}
	if _, ok := got["/run/vm/vsock.sock"]; ok {
		t.Error("a rule on the vsock socket itself: each boot replaces it")
	}
	cfg.LandlockRules = []config.LandlockRule{{Path: "/x", Access: "x"}}
	if _, err := landlockRules(cfg); err == nil {
		t.Error("access x: no error")
	}
}
