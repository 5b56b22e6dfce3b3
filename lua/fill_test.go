package lua

import (
	"strings"
	"testing"
)

// fillCommands are the guest commands vm:fill_tmpfs("1536M") runs, in order.
var fillCommands = []string{
	"mount -o remount,size=1664M /tmp",
	"dd if=/dev/zero of=/tmp/fill bs=1M count=1536 2>/dev/null",
	"du -m /tmp/fill | cut -f1",
	"dmesg | grep -c -i 'out of memory' || true",
	"rm /tmp/fill",
}

// fillLauncher is a fakeLauncher whose fake guest answers the fill commands,
// with the du and dmesg answers given.
func fillLauncher(du, ooms string) *fakeLauncher {
	return &fakeLauncher{prepare: func(f *fakeVM) {
		for _, c := range fillCommands {
			f.shOut[c] = fakeSh{}
		}
		f.shOut[fillCommands[2]] = fakeSh{out: du}
		f.shOut[fillCommands[3]] = fakeSh{out: ooms}
	}}
}

func TestFillTmpfsRunsItsCommandsWithFakeVM(t *testing.T) {
	l := fillLauncher("1536", "0")
	r := &Runner{Launcher: l}
	res := r.RunFile(t.Context(), writeScript(t, "fill.lua", "vmm.start{}:fill_tmpfs(\"1536M\", {timeout = 300})\n"))
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	got := l.vms[0].commands
	if strings.Join(got, "\n") != strings.Join(fillCommands, "\n") {
		t.Errorf("commands:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(fillCommands, "\n"))
	}
}

func TestFillTmpfsFailsWithFakeVM(t *testing.T) {
	for _, c := range []struct {
		name, du, ooms, script, want string
	}{
		{"short", "1000", "0", `vmm.start{}:fill_tmpfs("1536M")`, "1000 MiB landed in /tmp/fill, want 1536"},
		{"oom", "1536", "2", `vmm.start{}:fill_tmpfs("1536M")`, "out-of-memory kills (2 lines)"},
		{"not whole MiB", "1536", "0", `vmm.start{}:fill_tmpfs(1000)`, "want a size of whole MiB"},
	} {
		r := &Runner{Launcher: fillLauncher(c.du, c.ooms)}
		res := r.RunFile(t.Context(), writeScript(t, "fill.lua", c.script+"\n"))
		se := scriptErr(t, res)
		if se.Line != 1 || !strings.Contains(se.Message, c.want) {
			t.Errorf("%s: error = %v, want line 1 and %q", c.name, se, c.want)
		}
	}
}
