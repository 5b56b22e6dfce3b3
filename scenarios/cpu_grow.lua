-- CPU grow and online: boot at 4 of max 8, resize to 8 through the API.
-- Proves that the 4 new vCPUs appear in the guest as present but offline
-- (the kernel does not bring hot-added CPUs up by itself), that onlining
-- them from inside the guest works, and that the API reports 8.
local vm = step("boot at 4 vCPUs, max 8", function()
  return vmm.start{cpus = {boot = 4, max = 8}, memory = "1G"}
end)

step("before: 4 online, 4 more possible", function()
  local cpus = vm:cpus()
  expect.eq(cpus.online, {0, 1, 2, 3}, "online CPUs")
  expect.eq(cpus.present, {0, 1, 2, 3}, "present CPUs")
  expect.eq(cpus.offline, {4, 5, 6, 7}, "offline (possible, not online) CPUs")
end)

step("resize to 8 vCPUs", function()
  local status, err = vm:resize{vcpus = 8}
  expect.eq(err, nil, "resize error")
  expect.within(status, 200, 204, "resize status")
end)

step("the new CPUs are present and offline", function()
  local cpus = vm:wait_for(function()
    local c = vm:cpus()
    return #c.present == 8 and c
  end, 60)
  expect.eq(cpus.present, {0, 1, 2, 3, 4, 5, 6, 7}, "present CPUs")
  expect.eq(cpus.online, {0, 1, 2, 3}, "online CPUs before onlining")
end)

step("online them from inside the guest", function()
  for id = 4, 7 do
    vm:run(string.format("echo 1 > /sys/devices/system/cpu/cpu%d/online", id))
  end
  local cpus = vm:cpus()
  expect.eq(cpus.online, {0, 1, 2, 3, 4, 5, 6, 7}, "online CPUs")
  expect.eq(cpus.offline, {}, "offline CPUs")
  expect.eq(vm:run("grep -c ^processor /proc/cpuinfo"), "8")
end)

step("the API reports 8 vCPUs", function()
  local info = vm:info()
  expect.eq(info.config.cpus.boot_vcpus, 8, "boot_vcpus")
  expect.eq(info.active_vcpus, 8, "active_vcpus")
end)
