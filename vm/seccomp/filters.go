package seccomp

import "golang.org/x/sys/unix"

// Argument values the rules check.
const (
	ioctlTypeMask = 0xff00 // an ioctl request's type byte
	kvmIoctlType  = 0xae00 // KVMIO
	ttyIoctlType  = 0x5400 // 'T': terminals, ptys, TUN/TAP
	sockIoctlType = 0x8900 // SIOC*: a tap's address and flags
	blkIoctlType  = 0x1200 // BLK*: a block device's size
	cloneThread   = 0x10000
	prSetName     = 15
	prSetNoNewPrv = 38
	prSetVMA      = 0x53564d41
	afUnix        = 1
	afInet        = 2
	// kvmSetGSIRouting is KVM_SET_GSI_ROUTING, _IOW(KVMIO, 0x6a, 8) (Linux's
	// include/uapi/linux/kvm.h).
	kvmSetGSIRouting = 0x4008ae6a
)

// ioctlRule allows ioctl with requests of the given types.
func ioctlRule(types ...Arg) Rule { return Rule{Name: "ioctl", Args: types} }

// ioctlType is an ioctl request check on the type byte.
func ioctlType(value uint32, doc string) Arg {
	return Arg{Index: 1, Mask: ioctlTypeMask, Value: value, Doc: doc}
}

// prctlRule allows prctl for naming the thread, for no_new_privs (which
// Landlock sets on every thread) and for naming memory mappings (the Go
// runtime names the ones it maps, on any thread).
func prctlRule() Rule {
	return Rule{Name: "prctl", Args: []Arg{
		{Index: 0, Value: prSetName, Doc: "PR_SET_NAME"},
		{Index: 0, Value: prSetNoNewPrv, Doc: "PR_SET_NO_NEW_PRIVS"},
		{Index: 0, Value: prSetVMA, Doc: "PR_SET_VMA"},
	}}
}

// runtimeGroup is what the Go runtime may call on any thread it runs
// goroutines or itself on: memory, scheduling, signals (preemption is a
// signal), timers, the network poller. Thread creation is not in it: a
// thread locked to a goroutine never creates threads (the runtime has a
// template thread do it), and the process filter allows it.
func runtimeGroup() Group {
	return Group{
		Why: "the Go runtime on this thread: memory, scheduler, signals, timers, poller",
		Rules: allow("read write close mmap munmap madvise mincore brk " +
			"futex sched_yield nanosleep clock_nanosleep restart_syscall " +
			"rt_sigaction rt_sigprocmask rt_sigreturn sigaltstack getpid gettid tgkill " +
			"clock_gettime clock_getres gettimeofday getrandom " +
			"epoll_ctl epoll_pwait epoll_wait fcntl exit exit_group"),
	}
}

// landlockGroup lets Landlock be applied to this thread after the filter
// (Go applies it to every thread, this one included).
func landlockGroup() Group {
	return Group{
		Why:   "naming the thread and the Go runtime's memory mappings; Landlock, which vmm applies on every thread at vm.create",
		Rules: append([]Rule{prctlRule()}, allow("landlock_restrict_self")...),
	}
}

// Filters are the filters of every kind of thread.
func Filters() []Filter {
	return []Filter{
		{
			Kind: Process,
			Doc: "Every thread: the VMM's event loop, the HTTP API, the virtio devices' workers " +
				"and the Go runtime's threads. It allows what building, rebooting and changing the VM needs.",
			// ioctl comes first: KVM_RUN is the hot call, and the only one
			// whose arguments are checked on every call (the kernel caches
			// the verdict on the calls allowed whatever their arguments).
			Groups: []Group{
				{Why: "ioctls: KVM, terminals and TUN/TAP, a tap's address, block device sizes",
					Rules: []Rule{ioctlRule(
						ioctlType(kvmIoctlType, "KVM (type 0xAE)"),
						ioctlType(ttyIoctlType, "terminals, ptys and TUN/TAP (type 'T')"),
						ioctlType(sockIoctlType, "network interfaces (SIOC*)"),
						ioctlType(blkIoctlType, "block devices (BLK*)"))}},
				runtimeGroup(),
				{Why: "the Go runtime's threads and timers",
					Rules: append([]Rule{{Name: "clone", Args: []Arg{{Index: 0, Mask: cloneThread, Value: cloneThread, Doc: "threads (CLONE_THREAD), not processes"}}}},
						allow("sched_getaffinity setitimer timer_create timer_settime timer_delete epoll_create1 pipe2 eventfd2 kill prlimit64 uname")...)},
				{Why: "files: payload, disks, consoles, logs, /proc and /sys reads, guest memory (memfd); a net's receive thread waits for its tap (ppoll)",
					Rules: allow("ppoll openat newfstatat fstat statx statfs fstatfs lseek getdents64 readlinkat faccessat faccessat2 " +
						"pread64 pwrite64 readv writev preadv pwritev preadv2 pwritev2 fsync fdatasync ftruncate fallocate flock " +
						"dup dup3 linkat unlinkat mkdirat fchmod fchmodat renameat memfd_create mremap")},
				{Why: "unix sockets (API, vsock, serial socket); an AF_INET socket configures a tap",
					Rules: append([]Rule{{Name: "socket", Args: []Arg{
						{Index: 0, Value: afUnix, Doc: "AF_UNIX"},
						{Index: 0, Value: afInet, Doc: "AF_INET"},
					}}}, allow("socketpair bind listen accept4 connect getsockname getpeername setsockopt getsockopt "+
						"sendto recvfrom sendmsg recvmsg shutdown")...)},
				{Why: "glibc's threads, in a vmm built with cgo (clone3 cannot be limited to threads: build with CGO_ENABLED=0)",
					Cgo: true, Rules: allow("clone3 mprotect rseq set_robust_list")},
				{Why: "naming threads and the Go runtime's memory mappings; the vCPU and main threads' filters; Landlock",
					Rules: append([]Rule{prctlRule()}, allow("seccomp landlock_create_ruleset landlock_add_rule landlock_restrict_self")...)},
			},
		},
		{
			Kind: VCPU,
			Doc:  "A vCPU thread, from its start: it runs KVM_RUN and the exits (port and MMIO accesses to the emulated devices, MSI-X set up).",
			Groups: []Group{
				{Why: "KVM_RUN and the vCPU's and VM's KVM ioctls; a virtio-net driver's offloads, given to its tap when the driver starts or resets",
					Rules: []Rule{ioctlRule(ioctlType(kvmIoctlType, "KVM (type 0xAE)"),
						Arg{Index: 1, Value: unix.TUNSETOFFLOAD, Doc: "TUNSETOFFLOAD"})}},
				runtimeGroup(),
				{Why: "device exits: serial and console output, interrupts (irqfds), logs, events",
					Rules: allow("readv writev sendmsg sendto eventfd2")},
				{Why: "a PCI device the guest ejects is closed on this thread: its backend, a vsock's sockets and socket file",
					Rules: allow("shutdown unlinkat")},
				landlockGroup(),
			},
		},
		{
			Kind: Virtio,
			Doc: "A virtio device's worker, from its start: it serves one queue's notifications (its eventfd), or moves " +
				"frames and packets from the host into the guest's queues (a network card's receive side, a vsock's), " +
				"reading and writing guest memory as the driver's descriptors say.",
			Groups: []Group{
				runtimeGroup(),
				{Why: "the backends: disk images (positioned reads and writes, flushes), taps (a net's receive thread waits for the tap and its eventfd in ppoll), vsock's host sockets, console output",
					Rules: allow("pread64 pwrite64 readv writev preadv pwritev preadv2 pwritev2 fsync fdatasync " +
						"sendmsg sendto recvfrom recvmsg shutdown ppoll")},
				{Why: "interrupts: an irqfd is written; an MSI-X vector whose message the driver changed is routed again first",
					Rules: []Rule{{Name: "ioctl", Args: []Arg{{Index: 1, Value: kvmSetGSIRouting, Doc: "KVM_SET_GSI_ROUTING"}}}}},
				landlockGroup(),
			},
		},
		{
			Kind: Main,
			Doc:  "The main thread once the VM and the API are set up: it waits for the VMM to end, then closes the API socket and the logs.",
			Groups: []Group{
				runtimeGroup(),
				{Why: "tear-down: the API socket (checked to be vmm's, then removed), the terminal's mode, logs",
					Rules: append([]Rule{ioctlRule(ioctlType(ttyIoctlType, "terminals (type 'T')"))},
						allow("writev newfstatat fstat statx unlinkat shutdown fsync")...)},
				landlockGroup(),
			},
		},
	}
}
