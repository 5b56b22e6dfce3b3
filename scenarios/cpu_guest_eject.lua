-- The guest has its say in CPU hot plug. It may eject a CPU on its own
-- (through sysfs): the vmm parks that vCPU and counts one fewer, in vm.info
-- and across a reboot, and a later resize fills the hole it left. It may
-- refuse an eject the vmm asked for (here: Linux's processor hot plug is
-- switched off in /sys/firmware/acpi/hotplug): the guest's _OST answer
-- withdraws the removal at once, so the CPUs stay counted and the next
-- resize is not kept waiting behind a 429.

-- counts waits until vm.info's boot_vcpus and active_vcpus are both n.
local function counts(vm, n)
  vm:wait_for(function()
    local info = vm:info()
    return info.config.cpus.boot_vcpus == n and info.active_vcpus == n
  end, 60, 0.2)
  expect.eq(vm:process().vcpu_threads, n, "vcpuN threads")
end

local vm = step("boot at 2 vCPUs, max 4; grow to 4 and online them", function()
  local vm = vmm.start{cpus = {boot = 2, max = 4}, memory = "512M"}
  expect.ok(vm:resize{vcpus = 4})
  vm:wait_cpus(4, 60, 0.2)
  vm:run("echo 1 | tee /sys/devices/system/cpu/cpu[2-3]/online >/dev/null")
  expect.eq(vm:cpus().online, {0, 1, 2, 3}, "online CPUs")
  return vm
end)

step("the guest ejects CPU 3 itself: 3 vCPUs, in the guest and in vm.info", function()
  vm:run("echo 1 > /sys/devices/system/cpu/cpu3/firmware_node/eject")
  expect.eq(vm:wait_cpus(3, 60, 0.2).present, {0, 1, 2}, "present CPUs")
  counts(vm, 3)
end)

step("the guest ejects CPU 1, a hole: 2 vCPUs; a resize to 4 fills it", function()
  vm:run("echo 1 > /sys/devices/system/cpu/cpu1/firmware_node/eject")
  expect.eq(vm:wait_cpus(2, 60, 0.2).present, {0, 2}, "present CPUs")
  counts(vm, 2)
  expect.ok(vm:resize{vcpus = 4})
  vm:wait_cpus(4, 60, 0.2)
  vm:run("echo 1 | tee /sys/devices/system/cpu/cpu1/online /sys/devices/system/cpu/cpu3/online >/dev/null")
  expect.eq(vm:cpus().online, {0, 1, 2, 3}, "online CPUs")
  counts(vm, 4)
end)

step("with processor hot plug off, the guest refuses a shrink to 2: still 4, no 429", function()
  vm:run("echo 0 > /sys/firmware/acpi/hotplug/processor/enabled")
  expect.ok(vm:resize{vcpus = 2})
  -- boot_vcpus says 2 while the removal is pending, 4 again once the
  -- guest's refusal arrived.
  counts(vm, 4)
  expect.eq(vm:cpus().online, {0, 1, 2, 3}, "online CPUs")
  expect.ok(vm:resize{vcpus = 3})
  counts(vm, 4)
end)

step("with hot plug back on, the shrink to 2 works; a reboot keeps 2", function()
  vm:run("echo 1 > /sys/firmware/acpi/hotplug/processor/enabled")
  expect.ok(vm:resize{vcpus = 2})
  vm:wait_cpus(2, 120, 0.2)
  counts(vm, 2)
  vm:reboot()
  local cpus = vm:cpus()
  expect.eq(cpus.present, {0, 1}, "present CPUs after the reboot")
  expect.eq(cpus.online, {0, 1}, "online CPUs after the reboot")
  counts(vm, 2)
end)
