package seccomp

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// call is a struct seccomp_data.
type call struct {
	nr   int
	arch uint32
	args [6]uint64
}

func (c call) bytes() []byte {
	b := make([]byte, 64)
	binary.LittleEndian.PutUint32(b[offNr:], uint32(c.nr))
	binary.LittleEndian.PutUint32(b[offArch:], c.arch)
	for i, a := range c.args {
		binary.LittleEndian.PutUint64(b[offArgs+8*i:], a)
	}
	return b
}

// run interprets the classic BPF instructions Program emits, as the
// kernel would run them on c.
func run(t *testing.T, prog []unix.SockFilter, c call) uint32 {
	t.Helper()
	data := c.bytes()
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			if int(in.K)+4 > len(data) {
				t.Fatalf("pc %d: load at %d outside seccomp_data", pc, in.K)
			}
			acc = binary.LittleEndian.Uint32(data[in.K:])
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			acc &= in.K
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K:
			if acc == in.K {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K:
			if acc >= in.K {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case unix.BPF_RET | unix.BPF_K:
			return in.K
		default:
			t.Fatalf("pc %d: instruction %#x outside the interpreter", pc, in.Code)
		}
	}
	t.Fatal("the program ran off its end")
	return 0
}

func sys(t *testing.T, name string, args ...uint64) call {
	t.Helper()
	nr, ok := Number(name)
	if !ok {
		t.Fatalf("no system call %q", name)
	}
	c := call{nr: nr, arch: unix.AUDIT_ARCH_X86_64}
	copy(c.args[:], args)
	return c
}

func TestEveryRuleOfEveryFilterIsAllowedByItsProgram(t *testing.T) {
	for _, f := range Filters() {
		for _, mode := range []Mode{Kill, Log} {
			prog, err := Program(f, mode)
			if err != nil {
				t.Fatalf("%s %s: %v", f.Kind, mode, err)
			}
			for _, r := range f.Rules() {
				c := sys(t, r.Name)
				if len(r.Args) == 0 {
					if got := run(t, prog, c); got != unix.SECCOMP_RET_ALLOW {
						t.Errorf("%s: %s: got %#x, want allow", f.Kind, r.Name, got)
					}
					continue
				}
				for _, a := range r.Args {
					c := c
					c.args[a.Index] = uint64(a.Value) | 0x1 // low bits under the mask vary
					if a.Mask == 0 {
						c.args[a.Index] = uint64(a.Value)
					}
					if got := run(t, prog, c); got != unix.SECCOMP_RET_ALLOW {
						t.Errorf("%s: %s with %s: got %#x, want allow", f.Kind, r.Name, a.Doc, got)
					}
				}
			}
		}
	}
}

func TestTheCgoGroupsCompileAndAllowGlibcsThreads(t *testing.T) {
	f, _ := Lookup(Process)
	f.Groups = append([]Group(nil), f.Groups...)
	found := false
	for i := range f.Groups {
		found = found || f.Groups[i].Cgo
		f.Groups[i].Cgo = false
	}
	if !found {
		t.Fatal("the process filter has no cgo group")
	}
	prog, err := Program(f, Kill)
	if err != nil {
		t.Fatal(err)
	}
	if got := run(t, prog, sys(t, "clone3")); got != unix.SECCOMP_RET_ALLOW {
		t.Errorf("clone3 with the cgo group: %#x", got)
	}
	if !withCgo {
		p, _ := Lookup(Process)
		prog, _ := Program(p, Kill)
		if got := run(t, prog, sys(t, "clone3")); got == unix.SECCOMP_RET_ALLOW {
			t.Error("clone3 allowed in a vmm built without cgo")
		}
	}
}

func TestProgramsDenyWithTheModesAction(t *testing.T) {
	want := map[Mode]uint32{Kill: unix.SECCOMP_RET_KILL_PROCESS, Log: unix.SECCOMP_RET_LOG}
	for _, f := range Filters() {
		for mode, deny := range want {
			prog, err := Program(f, mode)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []call{
				sys(t, "execve"),
				sys(t, "ptrace"),
				{nr: 0, arch: unix.AUDIT_ARCH_I386}, // read, but i386's ABI
				{nr: 0 | x32SyscallBit, arch: unix.AUDIT_ARCH_X86_64}, // x32
			} {
				if got := run(t, prog, c); got != deny {
					t.Errorf("%s %s: call %d arch %#x: got %#x, want %#x", f.Kind, mode, c.nr, c.arch, got, deny)
				}
			}
		}
	}
}

func TestArgumentChecks(t *testing.T) {
	const kvmRun, tcgets, tunsetiff = 0xae80, unix.TCGETS, unix.TUNSETIFF
	cases := []struct {
		kind  Kind
		c     call
		allow bool
	}{
		{VCPU, sys(t, "ioctl", 5, kvmRun), true},
		{VCPU, sys(t, "ioctl", 5, tcgets), false},
		{VCPU, sys(t, "prctl", unix.PR_SET_NAME), true},
		{VCPU, sys(t, "prctl", unix.PR_SET_VMA, unix.PR_SET_VMA_ANON_NAME), true},
		{VCPU, sys(t, "prctl", unix.PR_SET_DUMPABLE), false},
		{VCPU, sys(t, "openat"), false},
		{VCPU, sys(t, "clone", unix.CLONE_VM|unix.CLONE_THREAD), false},
		{VCPU, sys(t, "socket", unix.AF_UNIX), false},
		{Process, sys(t, "ioctl", 5, tunsetiff), true},
		{Process, sys(t, "ioctl", 5, unix.SIOCSIFADDR), true},
		{Process, sys(t, "ioctl", 5, 0x5000+0xc000_0000), false}, // another type
		{Process, sys(t, "clone", unix.CLONE_VM|unix.CLONE_FS|unix.CLONE_FILES|unix.CLONE_SIGHAND|unix.CLONE_SYSVSEM|unix.CLONE_THREAD), true},
		{Process, sys(t, "clone", uint64(unix.SIGCHLD)), false}, // fork
		{Process, sys(t, "socket", unix.AF_UNIX), true},
		{Process, sys(t, "socket", unix.AF_NETLINK), false},
		{Virtio, sys(t, "ioctl", 5, kvmSetGSIRouting), true},
		{Virtio, sys(t, "ioctl", 5, kvmRun), false},
		{Virtio, sys(t, "ioctl", 5, unix.TUNSETOFFLOAD), false},
		{Virtio, sys(t, "pwrite64", 5), true},
		{Virtio, sys(t, "openat"), false},
		{Virtio, sys(t, "socket", unix.AF_UNIX), false},
		{Virtio, sys(t, "clone", unix.CLONE_VM|unix.CLONE_THREAD), false},
		{Main, sys(t, "ioctl", 0, tcgets), true},
		{Main, sys(t, "ioctl", 5, kvmRun), false},
		{Main, sys(t, "openat"), false},
	}
	for _, tc := range cases {
		f, _ := Lookup(tc.kind)
		prog, err := Program(f, Kill)
		if err != nil {
			t.Fatal(err)
		}
		got := run(t, prog, tc.c) == unix.SECCOMP_RET_ALLOW
		if got != tc.allow {
			t.Errorf("%s: %s(%#x, %#x): allowed %v, want %v", tc.kind, Name(tc.c.nr), tc.c.args[0], tc.c.args[1], got, tc.allow)
		}
	}
}

// TestFiltersAreListed lists every kind's calls (go test -v shows them)
// and checks the names against x/sys/unix's numbers.
func TestFiltersAreListed(t *testing.T) {
	for _, f := range Filters() {
		if f.Doc == "" {
			t.Errorf("%s: no doc", f.Kind)
		}
		for _, g := range f.Groups {
			if g.Why == "" {
				t.Errorf("%s: a group without its reason", f.Kind)
			}
		}
		prog, err := Program(f, Kill)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s (%d calls, %d BPF instructions): %v", f.Kind, len(f.Rules()), len(prog), f.Names())
	}
	for name, nr := range map[string]int{"read": unix.SYS_READ, "ioctl": unix.SYS_IOCTL, "seccomp": unix.SYS_SECCOMP,
		"landlock_restrict_self": unix.SYS_LANDLOCK_RESTRICT_SELF, "clone3": unix.SYS_CLONE3, "epoll_pwait": unix.SYS_EPOLL_PWAIT} {
		if got, ok := Number(name); !ok || got != nr {
			t.Errorf("Number(%q) = %d, %v; want %d", name, got, ok, nr)
		}
		if Name(nr) != name {
			t.Errorf("Name(%d) = %q, want %q", nr, Name(nr), name)
		}
	}
	if Name(100000) != "syscall_100000" {
		t.Errorf("Name(100000) = %q", Name(100000))
	}
}

func TestParseAudit(t *testing.T) {
	line := `5,1234,99999,-;audit: type=1326 audit(1700000000.123:45): auid=4294967295 uid=0 gid=0 ses=4294967295 subj=unconfined pid=4242 comm="vmm" exe="/usr/bin/vmm" sig=0 arch=c000003e syscall=102 compat=0 ip=0x46e0c3 code=0x7ffc0000`
	d, ok := ParseAudit(line)
	if !ok || d.PID != 4242 || d.Nr != 102 || d.Name != "getuid" {
		t.Errorf("ParseAudit = %+v, %v", d, ok)
	}
	if _, ok := ParseAudit("6,1,2,-;virtio_net: something"); ok {
		t.Error("ParseAudit took a line without an audit record")
	}
}

func TestParseMode(t *testing.T) {
	for _, s := range []string{"true", "false", "log"} {
		if m, err := ParseMode(s); err != nil || string(m) != s {
			t.Errorf("ParseMode(%q) = %q, %v", s, m, err)
		}
	}
	if _, err := ParseMode("errno"); err == nil {
		t.Error("ParseMode(errno): no error")
	}
}

// A thread's own filter stacks on the process filter: the kernel runs both
// and the stricter verdict wins, so a call a thread's filter allows is
// allowed only if the process filter allows it too.
func TestEveryCallOfAThreadFilterIsInTheProcessFilter(t *testing.T) {
	process := map[string]bool{}
	var threads []Filter
	for _, f := range Filters() {
		if f.Kind == Process {
			for _, r := range f.rules(true) {
				process[r.Name] = true
			}
			continue
		}
		threads = append(threads, f)
	}
	for _, f := range threads {
		for _, r := range f.rules(true) {
			if !process[r.Name] {
				t.Errorf("the %s filter allows %s, which the process filter, stacked under it, denies", f.Kind, r.Name)
			}
		}
	}
}
