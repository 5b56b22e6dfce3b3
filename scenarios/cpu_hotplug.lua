-- CPU hot plug end to end on one VM, as Cloud Hypervisor's hot plug guide
-- tells it: boot at 4 of max 8, grow to 8 (the new CPUs come up present and
-- offline, the guest onlines them), shrink to 2 (the guest offlines and
-- ejects 6 CPUs by itself; the vmm keeps exactly 2 threads named vcpuN),
-- bad requests (including one during the pending eject) are refused with
-- the documented codes while the guest keeps running, and after a reboot
-- the guest boots with 2 CPUs and grows to 8 again. busybox has no lscpu:
-- the guest's view is read from /sys/devices/system/cpu and /proc/cpuinfo.

local vm = step("boot at 4 vCPUs, max 8", function()
  return vmm.start{cpus = {boot = 4, max = 8}, memory = "512M"}
end)

step("before: online 0-3, present 0-3, 4 vCPU threads", function()
  local cpus = vm:cpus()
  expect.eq(cpus.online, {0, 1, 2, 3}, "online CPUs")
  expect.eq(cpus.present, {0, 1, 2, 3}, "present CPUs")
  expect.eq(vm:process().vcpu_threads, 4, "vcpuN threads")
end)

step("resize to 8: present 0-7 with 4-7 offline", function()
  expect.ok(vm:resize{vcpus = 8})
  local cpus = vm:wait_cpus(8, 60, 0.2)
  expect.eq(cpus.present, {0, 1, 2, 3, 4, 5, 6, 7}, "present CPUs")
  expect.eq(cpus.online, {0, 1, 2, 3}, "online CPUs")
  expect.eq(vm:info().active_vcpus, 8, "active_vcpus")
  expect.eq(vm:process().vcpu_threads, 8, "vcpuN threads")
end)

step("echo 1 | tee cpu[4-7]/online: online 0-7, /proc/cpuinfo agrees", function()
  vm:run("echo 1 | tee /sys/devices/system/cpu/cpu[4-7]/online >/dev/null")
  local cpus = vm:cpus()
  expect.eq(cpus.online, {0, 1, 2, 3, 4, 5, 6, 7}, "online CPUs")
  expect.eq(vm:run("cat /sys/devices/system/cpu/online"), "0-7", "/sys/devices/system/cpu/online")
  expect.eq(vm:run("grep -c ^processor /proc/cpuinfo"), "8", "processors in /proc/cpuinfo")
end)

step("resize to 2: a resize during the pending eject gets 429", function()
  local status, err = vm:resize{vcpus = 2}
  expect.ok(status, err, "resize to 2")
  status, err = vm:resize{vcpus = 3}
  expect.eq(status, 429, "resize during the pending eject: status")
  say("resize during the pending eject -> " .. status .. " " .. tostring(err))
end)

step("with no guest command, present shrinks to 0-1; 2 vCPU threads", function()
  local cpus = vm:wait_cpus(2, 120, 0.5)
  expect.eq(cpus.present, {0, 1}, "present CPUs")
  expect.eq(cpus.online, {0, 1}, "online CPUs")
  vm:wait_for(function() return vm:info().active_vcpus == 2 end, 30)
  expect.eq(vm:info().config.cpus.boot_vcpus, 2, "boot_vcpus")
  expect.eq(vm:process().vcpu_threads, 2, "vcpuN threads")
end)

step("bad requests are refused and change nothing", function()
  for _, c in ipairs{
    {body = '{"desired_vcpus":0}', code = 400},
    {body = '{"desired_vcpus":9}', code = 400},
    {body = '{"desired_vcpus":-1}', code = 400},
    {body = '{"desired_vcpus":"eight"}', code = 400},
  } do
    local status, reply = vm:api("PUT", "vm.resize", c.body)
    expect.eq(status, c.code, c.body .. ": status")
    say(c.body .. " -> " .. status .. " " .. reply)
  end
  expect.eq(vm:info().config.cpus.boot_vcpus, 2, "boot_vcpus")
  expect.eq(vm:cpus().present, {0, 1}, "present CPUs")
  expect.eq(vm:run("echo alive"), "alive", "the guest still runs")
end)

step("reboot: the guest boots with 2 CPUs", function()
  vm:reboot()
  local cpus = vm:cpus()
  expect.eq(cpus.online, {0, 1}, "online CPUs")
  expect.eq(cpus.present, {0, 1}, "present CPUs")
  expect.eq(vm:process().vcpu_threads, 2, "vcpuN threads")
end)

step("resize to 8 again and online: 8", function()
  expect.ok(vm:resize{vcpus = 8})
  vm:wait_cpus(8, 60, 0.2)
  vm:run("echo 1 | tee /sys/devices/system/cpu/cpu[2-7]/online >/dev/null")
  expect.eq(vm:cpus().online, {0, 1, 2, 3, 4, 5, 6, 7}, "online CPUs")
  expect.eq(vm:run("grep -c ^processor /proc/cpuinfo"), "8", "processors in /proc/cpuinfo")
  expect.eq(vm:process().vcpu_threads, 8, "vcpuN threads")
end)
