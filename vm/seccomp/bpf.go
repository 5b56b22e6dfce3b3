package seccomp

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Offsets in struct seccomp_data, the packet a filter reads.
const (
	offNr   = 0  // int nr
	offArch = 4  // __u32 arch
	offArgs = 16 // __u64 args[6]; an argument's low word first (little endian)
)

// x32SyscallBit marks the x32 ABI's calls, which share AUDIT_ARCH_X86_64.
const x32SyscallBit = 0x40000000

// maxJump is the longest forward jump a conditional BPF jump can make.
const maxJump = 255

// action is the filter's return for a call outside it.
func action(mode Mode) (uint32, error) {
	switch mode {
	case Kill:
		return unix.SECCOMP_RET_KILL_PROCESS, nil
	case Log:
		return unix.SECCOMP_RET_LOG, nil
	}
	return 0, fmt.Errorf("seccomp mode %q has no filter", mode)
}

func stmt(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }

func jump(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k}
}

// Program compiles f into a classic BPF program for mode: a call from
// another architecture or ABI (x32) gets the mode's action, then each
// rule's call number is compared in turn; a match is allowed when the rule
// has no argument checks or one of them holds, and gets the mode's action
// otherwise. Any other call gets the mode's action.
func Program(f Filter, mode Mode) ([]unix.SockFilter, error) {
	deny, err := action(mode)
	if err != nil {
		return nil, err
	}
	const (
		ldW  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jge  = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
		and  = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K
		retK = unix.BPF_RET | unix.BPF_K
	)
	prog := []unix.SockFilter{
		stmt(ldW, offArch),
		jump(jeq, unix.AUDIT_ARCH_X86_64, 1, 0),
		stmt(retK, deny),
		stmt(ldW, offNr),
		jump(jge, x32SyscallBit, 0, 1),
		stmt(retK, deny),
	}
	seen := map[int]bool{}
	for _, r := range f.Rules() {
		nr, ok := Number(r.Name)
		if !ok {
			return nil, fmt.Errorf("seccomp filter %s: no system call %q", f.Kind, r.Name)
		}
		if seen[nr] {
			return nil, fmt.Errorf("seccomp filter %s: %s twice", f.Kind, r.Name)
		}
		seen[nr] = true
		// body runs with the call number matched; it returns.
		var body []unix.SockFilter
		if len(r.Args) == 0 {
			body = []unix.SockFilter{stmt(retK, unix.SECCOMP_RET_ALLOW)}
		} else {
			// Each check is load [, and], jeq → the final allow. The
			// checks are followed by deny and allow.
			var checks [][]unix.SockFilter
			for _, a := range r.Args {
				if a.Index < 0 || a.Index > 5 {
					return nil, fmt.Errorf("seccomp filter %s: %s: argument %d", f.Kind, r.Name, a.Index)
				}
				c := []unix.SockFilter{stmt(ldW, uint32(offArgs+8*a.Index))}
				if a.Mask != 0 {
					c = append(c, stmt(and, a.Mask))
				}
				checks = append(checks, append(c, jump(jeq, a.Value, 0, 0)))
			}
			n := 0
			for _, c := range checks {
				n += len(c)
			}
			at := 0
			for _, c := range checks {
				at += len(c)
				// From the jeq (at-1) to the allow (n+1): skip the rest and
				// the deny.
				c[len(c)-1].Jt = uint8(n + 1 - at)
				body = append(body, c...)
			}
			body = append(body, stmt(retK, deny), stmt(retK, unix.SECCOMP_RET_ALLOW))
		}
		if len(body) > maxJump {
			return nil, fmt.Errorf("seccomp filter %s: %s has too many argument checks", f.Kind, r.Name)
		}
		prog = append(prog, jump(jeq, uint32(nr), 0, uint8(len(body))))
		prog = append(prog, body...)
	}
	prog = append(prog, stmt(retK, deny))
	if len(prog) > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("seccomp filter %s: %d instructions, above the kernel's %d", f.Kind, len(prog), unix.BPF_MAXINSNS)
	}
	return prog, nil
}
