-- The guest has its say in CPU hot plug, within limits. Its own eject of a
-- CPU the vmm did not ask to remove (through sysfs) is refused, as Cloud
-- Hypervisor refuses it: the CPU comes back to the guest, offline, and
-- vm.info keeps counting it. It may refuse an eject the vmm asked for
-- (here: Linux's processor hot plug is switched off in
-- /sys/firmware/acpi/hotplug): the guest's _OST answer withdraws the
-- removal at once, so the CPUs stay counted and the next resize is not
-- kept waiting behind a 429.

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

-- cpus_are waits until the guest has CPUs 0 to 3 present and exactly
-- online online.
local function cpus_are(vm, online)
  return vm:wait_for(function()
    local cpus = vm:cpus()
    return #cpus.present == 4 and table.concat(cpus.online, ",") == table.concat(online, ","), cpus
  end, 60, 0.2)
end

step("the guest's own eject of CPU 3 is refused: it comes back, offline; still 4", function()
  -- Linux offlines the CPU and forgets it before its _EJ0, which the vmm
  -- refuses (as Cloud Hypervisor does): the vmm then announces the CPU
  -- again, and the guest finds it, offline.
  vm:run("echo 1 > /sys/devices/system/cpu/cpu3/firmware_node/eject")
  cpus_are(vm, {0, 1, 2})
  counts(vm, 4)
  vm:run("echo 1 > /sys/devices/system/cpu/cpu3/online")
  expect.eq(vm:cpus().online, {0, 1, 2, 3}, "online CPUs")
end)

step("an eject of CPU 1 is refused alike; a resize to 3 then removes CPU 3", function()
  vm:run("echo 1 > /sys/devices/system/cpu/cpu1/firmware_node/eject")
  cpus_are(vm, {0, 2, 3})
  counts(vm, 4)
  vm:run("echo 1 > /sys/devices/system/cpu/cpu1/online")
  expect.ok(vm:resize{vcpus = 3})
  expect.eq(vm:wait_cpus(3, 60, 0.2).present, {0, 1, 2}, "present CPUs")
  counts(vm, 3)
  expect.ok(vm:resize{vcpus = 4})
  vm:wait_cpus(4, 60, 0.2)
  vm:run("echo 1 > /sys/devices/system/cpu/cpu3/online")
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
