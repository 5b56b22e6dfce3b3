// Package seccomp confines vmm's threads with seccomp filters, as Cloud
// Hypervisor does: each kind of thread may make only the system calls its
// work needs, and any other call kills the process (or, in log mode, is
// logged by the kernel and allowed).
//
// Go runs goroutines on whichever OS thread is free, so a filter for one
// kind of work holds only on threads that a goroutine keeps for good
// (runtime.LockOSThread without an unlock): the vCPU threads, the virtio
// devices' workers and the main thread. Everything else shares the process
// filter, which is installed on every thread at once
// (SECCOMP_FILTER_FLAG_TSYNC) and is inherited by every thread created
// later: the Go runtime's own threads, the host side of vsock connections
// and the HTTP API, whose connections vm/api serves on goroutines of
// their own (a thread per connection would cost the API its latency, and
// what the API does, hot plug included, is what the process filter
// allows). The kinds' filters stack on top of it: a call must pass both.
//
// The filters are data (Filters): a test lists them, and the BPF program
// each one compiles to is checked by running it.
package seccomp

import (
	"fmt"
	"strings"
)

// Mode is --seccomp's value.
type Mode string

// Modes, as Cloud Hypervisor's --seccomp takes them.
const (
	// Off installs no filter.
	Off Mode = "false"
	// Kill kills the process on a call outside the filter
	// (SECCOMP_RET_KILL_PROCESS): the default.
	Kill Mode = "true"
	// Log lets such a call through and has the kernel log it
	// (SECCOMP_RET_LOG).
	Log Mode = "log"
)

// ParseMode reads --seccomp's value: true, false or log.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Off, Kill, Log:
		return m, nil
	}
	return "", fmt.Errorf("--seccomp %q: want true, false or log", s)
}

// Kind is a kind of thread with a filter of its own.
type Kind string

// The kinds of thread.
const (
	// Process is every thread of the process: the HTTP API's goroutines,
	// the VMM's event loop, the host side of vsock connections and the Go
	// runtime's threads run on any of them. Installed first, on all
	// threads; the other kinds stack on it.
	Process Kind = "vmm"
	// VCPU is a vCPU thread: KVM_RUN and the exits it handles (port and
	// MMIO accesses to the emulated devices).
	VCPU Kind = "vcpu"
	// Virtio is a virtio device's worker thread: it serves a queue's
	// notifications, or moves frames and packets from the host into the
	// guest's queues (a network card's receive side, a vsock's), reading
	// and writing guest memory as the driver's descriptors say.
	Virtio Kind = "virtio"
	// Main is the main thread once the VM is set up: it waits for the VMM
	// to end and tears down.
	Main Kind = "main"
)

// Arg is a check on one argument of a call: the argument's low 32 bits,
// masked with Mask (all bits when zero), must equal Value.
type Arg struct {
	Index int // 0..5
	Mask  uint32
	Value uint32
	Doc   string // what the value is, e.g. "KVM ioctls (type 0xAE)"
}

// Rule allows one system call, with any arguments when Args is empty and
// otherwise when one of Args holds.
type Rule struct {
	Name string
	Args []Arg
}

// Group is a set of rules with the reason the thread needs them.
type Group struct {
	Why   string
	Rules []Rule
	// Cgo groups apply only to a vmm built with cgo.
	Cgo bool
}

// Filter is the filter of one kind of thread.
type Filter struct {
	Kind   Kind
	Doc    string
	Groups []Group
}

// Rules are the filter's rules for this build of vmm, in order.
func (f Filter) Rules() []Rule { return f.rules(withCgo) }

// rules are the filter's rules with or without the cgo groups.
func (f Filter) rules(cgo bool) []Rule {
	var rs []Rule
	for _, g := range f.Groups {
		if !g.Cgo || cgo {
			rs = append(rs, g.Rules...)
		}
	}
	return rs
}

// Names are the names of the calls the filter allows, in order.
func (f Filter) Names() []string {
	var ns []string
	for _, r := range f.Rules() {
		ns = append(ns, r.Name)
	}
	return ns
}

// Lookup returns kind's filter.
func Lookup(kind Kind) (Filter, bool) {
	for _, f := range Filters() {
		if f.Kind == kind {
			return f, true
		}
	}
	return Filter{}, false
}

// Name is system call nr's name on x86-64 ("syscall_N" for a number
// outside the table).
func Name(nr int) string {
	if nr >= 0 && nr < len(amd64Names) && amd64Names[nr] != "" {
		return amd64Names[nr]
	}
	return fmt.Sprintf("syscall_%d", nr)
}

// Number is system call name's number on x86-64.
func Number(name string) (int, bool) {
	for nr, n := range amd64Names {
		if n == name {
			return nr, true
		}
	}
	return 0, false
}

// allow is a rule for each name, without argument checks.
func allow(names string) []Rule {
	var rs []Rule
	for _, n := range strings.Fields(names) {
		rs = append(rs, Rule{Name: n})
	}
	return rs
}
