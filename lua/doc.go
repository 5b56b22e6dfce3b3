// Package lua runs scenario scripts: Lua (gopher-lua) programs that start
// real VMs, drive them over the API and inside the guest, and check what
// happens. `vmmctl run` and the e2e suite run them with a Runner.
//
// A script's globals:
//
//	vmm.start{...} -> vm      start a VM (the real vmm binary, its own API socket)
//	                          and wait for its guest to be ready; fields mirror
//	                          the command line and VmConfig, all optional:
//	    name = "vm1"                       label in reports (default vm1, vm2, ...)
//	    kernel, initramfs, cmdline         default: the project's guest, guest.DefaultCmdline
//	    cpus = {boot = 4, max = 8}         or cpus = 4; max defaults to boot;
//	                                       topology = "2:2:1:2" (threads:cores:dies:packages)
//	    memory = {size = "1G", hotplug_size = "8G"}   or memory = "1G"; bytes or K/M/G;
//	                                       shared, prefault, mergeable, hugepages = true;
//	                                       hotplug_method = "acpi" | "virtio-mem",
//	                                       hotplugged_size = SIZE (virtio-mem)
//	    disks = {{path = P, readonly = true}}, net = {{tap =, mac =, ip =, mask =}}
//	    rng = true | {src = P}
//	    vsock = true | false | {cid = N}   default true: a virtio-vsock device (guest
//	                                       CID 3), so vm:sh and vm:run go through the
//	                                       guest agent; false: the serial console
//	    landlock = {P, {path = P, access = "r"}}  confine vmm with Landlock (--landlock):
//	                                       the VM's own files and these paths (default
//	                                       access "rw"); {} for none besides the VM's
//	    wait = true                        false: return before the guest is ready
//	    boot_timeout = 300                 seconds
//	vmm.size("1G") -> bytes; vmm.format_size(bytes) -> "1G"
//	vmm.root_disk([name]) -> path       a fresh writable copy of the guest's root file
//	                          system (ext4), removed when the script ends; boot it
//	                          as the first disk with cmdline = vmm.root_cmdline
//	vmm.distro_disk([name]) -> path: a fresh copy of the distro guest's disk
//	                          (Debian 12), booted with vmm.distro.initramfs and
//	                          vmm.distro.cmdline
//	vmm.script, vmm.default_cmdline, vmm.root_cmdline, vmm.distro
//	vmm.vmlinux                          the project's guest kernel as an ELF vmlinux
//	                          (PVH entry): kernel = vmm.vmlinux boots it
//	vmm.kernel                           the project's guest kernel, the bzImage
//	vmm.kernel_version([path]) -> release, build
//	                          the version string of the bzImage's setup header
//	                          (default vmm.kernel), split as uname -r and -v show it
//	step("name", fn) -> fn's results     a named, timed, reported part of the run
//	say(...), print(...)                 narration in the report
//	sleep(seconds)
//	fail(msg)
//	expect.eq(a, b [, msg])              tables compare by contents
//	expect.ne, expect.lt, expect.le, expect.gt, expect.ge (a, b [, msg])
//	expect.within(a, lo, hi [, msg])
//	expect.match(s, re [, msg]), expect.no_match   Go regexp (RE2) syntax
//	expect.contains(list_or_string, item [, msg])
//	expect.truthy(v [, msg]), expect.falsy(v [, msg])
//	expect.ok(status, err [, msg])       an API call succeeded: no error, a 2xx status
//
// A VM's fields and methods:
//
//	vm.name, vm.pid
//	vm:resize{vcpus = N, memory = SIZE, balloon = SIZE} -> status, err
//	                                   err is nil for 2xx, else the API's message;
//	                                   memory is desired_ram with either hot plug
//	                                   method (virtio-mem shrinks live)
//	vm:add_disk{path = F, id = ID, ...} -> status, dev, err   vm.add-disk; the table
//	vm:add_net{tap = T, ...}, vm:add_vsock{cid = N, socket = P}  is Cloud Hypervisor's
//	                                   DiskConfig/NetConfig/VsockConfig; dev is
//	                                   {id = ..., bdf = ...} (nil before boot, on error)
//	vm:remove_device(id) -> status, err
//	vm:api(method, route [, body]) -> status, reply   raw request; body string or table
//	vm:info(), vm:ping() -> tables     vm.info / vmm.ping replies, JSON names
//	vm:reboot{via = "api"|"guest", wait = true, timeout = s}
//	vm:shutdown{via = "api"|"guest"}   vm.shutdown, or poweroff -f in the guest
//	vm:stop()                          end the vmm process now
//	vm:wait_exit([timeout]) -> status  the vmm's exit status
//	vm:sh(cmd [, {timeout = s}]) -> output, status
//	vm:run(cmd [, {timeout = s}]) -> output         fails on a non-zero status
//	                                   both through the guest agent over vsock when it
//	                                   answers (each command a fresh sh -c in /root),
//	                                   else typed into the serial console's shell
//	vm:fill_tmpfs(size [, {timeout = s}])
//	                                   the guest writes size (whole MiB) of zeros to
//	                                   /tmp/fill on its tmpfs, so it allocates and
//	                                   touches that much RAM; fails unless all of it
//	                                   landed with no OOM kill in dmesg; removes it
//	vm:wait_for(pattern | fn [, timeout [, interval]])
//	                                   a regexp on console output after the previous
//	                                   match, or fn polled until its first result is
//	                                   true; returns the match or fn's results
//	vm:wait_ready([timeout])
//	vm:cpus() -> {online = {...}, offline = {...}, present = {...}}
//	vm:wait_cpus(n [, timeout [, interval]]) -> cpus
//	                                   wait_for until n CPUs are present; returns
//	                                   vm:cpus() of that moment
//	vm:wait_block(bdf [, timeout [, interval]]) -> name
//	                                   wait_for until the guest has a block device
//	                                   at PCI address bdf; returns its name (vdb)
//	vm:memory() -> {total = bytes}     MemTotal
//	vm:wait_memory(bytes [, timeout [, interval]]) -> total
//	                                   wait_for until MemTotal is at least bytes
//	vm:process() -> {threads = n, vcpu_threads = n, files = n, sockets = n, rss = bytes}
//	                                   the vmm process's threads, fds and resident
//	                                   memory (/proc)
//	vm:threads() -> {{tid = n, name = s, seccomp = n, seccomp_filters = n}, ...}
//	                                   each of the vmm's threads, with its Seccomp
//	                                   mode and filters (/proc/PID/task/*/status;
//	                                   -1 when the kernel shows none)
//	vm:console() -> text
//	vm:ready_markers() -> n            the guest's ready markers on the console: one
//	                                   per boot
//	vm:log() -> text                   the vmm's own log (its standard error; the
//	                                   last 64 KiB)
//
// A failure (a failed expectation, an error, a timeout) ends the script; its
// message names the file and line, the innermost step and, for
// expectations, both values. Whatever happens, including an interrupt,
// every VM the script started is stopped before RunFile returns.
//
// All Lua runs on the goroutine that calls RunFile; a script's Lua state is
// never shared.
package lua
