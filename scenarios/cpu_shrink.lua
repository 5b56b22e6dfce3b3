-- CPU shrink with the guest offlining by itself: boot at 4 of max 8,
-- resize to 2. Proves that the guest takes CPUs 2 and 3 offline on its own
-- (no command inside the guest), that they stop being present, that the
-- API reports 2, and that the VM can grow again afterwards.
local vm = step("boot at 4 vCPUs, max 8", function()
  return vmm.start{cpus = {boot = 4, max = 8}, memory = "1G"}
end)

step("resize to 2 vCPUs", function()
  local status, err = vm:resize{vcpus = 2}
  expect.eq(err, nil, "resize error")
  expect.within(status, 200, 204, "resize status")
end)

step("the guest offlines and ejects CPUs 2 and 3 by itself", function()
  local cpus = vm:wait_for(function()
    local c = vm:cpus()
    return #c.online == 2 and #c.present == 2 and c
  end, 60)
  expect.eq(cpus.online, {0, 1}, "online CPUs")
  expect.eq(cpus.present, {0, 1}, "present CPUs")
  expect.eq(vm:run("grep -c ^processor /proc/cpuinfo"), "2")
end)

step("the API reports 2 vCPUs", function()
  vm:wait_for(function() return vm:info().active_vcpus == 2 end, 30)
  expect.eq(vm:info().config.cpus.boot_vcpus, 2, "boot_vcpus")
end)

step("the VM grows again to 3", function()
  local status, err = vm:resize{vcpus = 3}
  expect.eq(err, nil, "resize error")
  expect.within(status, 200, 204, "resize status")
  vm:wait_for(function() return #vm:cpus().present == 3 end, 60)
  vm:run("echo 1 > /sys/devices/system/cpu/cpu2/online")
  expect.eq(vm:cpus().online, {0, 1, 2}, "online CPUs")
end)
