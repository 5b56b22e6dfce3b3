-- Boot the guest's Debian kernel as an uncompressed ELF vmlinux
-- (images/build.sh extracts it from the bzImage) through its PVH entry, at
-- 4 of 8 vCPUs and 1G with 1G of hot plug space. Proves that the guest
-- came up through PVH (Linux's PVH code writes boot protocol 2.12 and
-- loader type 0xb0 into the boot_params that /sys/kernel/boot_params
-- shows; a bzImage boot shows Debian's 2.15 and vmm's 0xff) running the
-- bzImage's kernel (uname as its setup header names it), that it sees
-- exactly the CPUs and memory it was given, the MADT found through the
-- RSDP hvm_start_info gives and the 16550A serial port, that it grows to 8
-- vCPUs it onlines itself and to 2G, and that a reboot brings it back the
-- same way.
local G = vmm.size("1G")

local vm = step("boot the vmlinux at 4 of 8 vCPUs, 1G with 1G of hot plug space", function()
  local f = io.open(vmm.vmlinux, "rb")
  expect.truthy(f, "the vmlinux '" .. vmm.vmlinux .. "' (make images, or set VMM_GUEST_VMLINUX)")
  f:close()
  return vmm.start{kernel = vmm.vmlinux, cpus = {boot = 4, max = 8}, memory = {size = "1G", hotplug_size = "1G"}}
end)

-- entered_through_pvh checks what Linux's PVH entry leaves in boot_params.
local function entered_through_pvh()
  expect.eq(vm:run("cat /sys/kernel/boot_params/version"), "0x020c", "boot protocol in boot_params")
  expect.eq(vm:run("od -An -tx1 -j 528 -N1 /sys/kernel/boot_params/data | tr -d ' '"), "b0",
    "type_of_loader in boot_params (PVH outside Xen)")
  expect.eq(vm:run("cat /proc/cmdline"), vmm.default_cmdline, "the command line from hvm_start_info")
end

-- four_cpus_one_g checks the guest's and the API's view of the boot.
local function four_cpus_one_g()
  local cpus = vm:cpus()
  expect.eq(cpus.online, {0, 1, 2, 3}, "online CPUs")
  expect.eq(cpus.present, {0, 1, 2, 3}, "present CPUs")
  expect.eq(vm:run("grep -c ^processor /proc/cpuinfo"), "4", "processors in /proc/cpuinfo")
  -- MemTotal is RAM minus what the kernel keeps for itself.
  expect.within(vm:memory().total, G - vmm.size("128M"), G, "MemTotal")
  expect.eq(vm:process().vcpu_threads, 4, "vcpuN threads")
  local info = vm:info()
  expect.eq(info.state, "Running", "state")
  expect.eq(info.config.payload.kernel, vmm.vmlinux, "payload.kernel")
  expect.eq(info.memory_actual_size, G, "memory_actual_size")
end

step("the guest came up through PVH with 4 CPUs and about 1G", function()
  entered_through_pvh()
  four_cpus_one_g()
end)

step("the guest runs the bzImage's kernel: uname is what its setup header names", function()
  local release, build = vmm.kernel_version()
  say("kernel " .. release .. " " .. build .. " (" .. vmm.kernel .. ")")
  expect.eq(vm:run("uname -r"), release, "uname -r: the release the bzImage's header names")
  expect.eq(vm:run("uname -v"), build, "uname -v: the build the bzImage's header names")
end)

step("dmesg: SMP from the MADT, the 16550A on ttyS0, no ACPI errors", function()
  local dmesg = vm:run("dmesg")
  expect.match(dmesg, "ACPI: Using ACPI \\(MADT\\) for SMP configuration information", "the MADT in dmesg")
  expect.match(dmesg, "ttyS0 at I/O 0x3f8 .* is a 16550A", "the serial port in dmesg")
  expect.no_match(dmesg, "ACPI (BIOS )?Error", "ACPI errors in dmesg")
end)

step("resize to 8 vCPUs: 4-7 come up present and offline; the guest onlines them", function()
  expect.ok(vm:resize{vcpus = 8})
  local cpus = vm:wait_cpus(8, 60, 0.2)
  expect.eq(cpus.online, {0, 1, 2, 3}, "online CPUs before the guest onlines them")
  vm:run("echo 1 | tee /sys/devices/system/cpu/cpu[4-7]/online >/dev/null")
  expect.eq(vm:cpus().online, {0, 1, 2, 3, 4, 5, 6, 7}, "online CPUs")
  expect.eq(vm:run("grep -c ^processor /proc/cpuinfo"), "8", "processors in /proc/cpuinfo")
  expect.eq(vm:process().vcpu_threads, 8, "vcpuN threads")
  expect.eq(vm:info().active_vcpus, 8, "active_vcpus")
end)

step("add 1G of RAM: MemTotal grows to about 2G", function()
  vm:run("echo online > /sys/devices/system/memory/auto_online_blocks")
  expect.ok(vm:resize{memory = "2G"})
  local total = vm:wait_memory(0.9 * 2 * G, 60, 0.5)
  say(string.format("MemTotal %.0f MiB", total / vmm.size("1M")))
  expect.le(total, 2 * G, "MemTotal")
  expect.eq(vm:info().memory_actual_size, 2 * G, "memory_actual_size")
end)

step("reboot: the vmlinux boots again through PVH, with 8 vCPUs and 2G", function()
  vm:run("echo before-reboot > /tmp/marker")
  vm:reboot()
  local _, status = vm:sh("test -e /tmp/marker")
  expect.eq(status, 1, "/tmp/marker must not survive a reboot (exit status of test -e)")
  entered_through_pvh()
  expect.eq(vm:cpus().present, {0, 1, 2, 3, 4, 5, 6, 7}, "present CPUs after the reboot")
  expect.within(vm:memory().total, 0.9 * 2 * G, 2 * G, "MemTotal after the reboot")
end)
