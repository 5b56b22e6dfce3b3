-- The vCPU count is kept after a reboot: grow 2 -> 6 and reboot, then
-- shrink to 3 and reboot. Proves that a reboot rebuilds the VM from the
-- resized configuration, with every vCPU online from boot.
local vm = step("boot at 2 vCPUs, max 8", function()
  return vmm.start{cpus = {boot = 2, max = 8}, memory = "1G"}
end)

step("grow to 6 and reboot", function()
  local status, err = vm:resize{vcpus = 6}
  expect.eq(err, nil, "resize error")
  expect.within(status, 200, 204, "resize status")
  vm:wait_for(function() return #vm:cpus().present == 6 end, 60)
  vm:reboot()
  local cpus = vm:cpus()
  expect.eq(cpus.online, {0, 1, 2, 3, 4, 5}, "online CPUs after the reboot")
  expect.eq(cpus.present, {0, 1, 2, 3, 4, 5}, "present CPUs after the reboot")
  expect.eq(vm:info().config.cpus.boot_vcpus, 6, "boot_vcpus")
end)

step("shrink to 3 and reboot from inside", function()
  local status, err = vm:resize{vcpus = 3}
  expect.eq(err, nil, "resize error")
  expect.within(status, 200, 204, "resize status")
  vm:wait_for(function() return #vm:cpus().online == 3 end, 60)
  vm:reboot{via = "guest"}
  local cpus = vm:cpus()
  expect.eq(cpus.online, {0, 1, 2}, "online CPUs after the reboot")
  expect.eq(cpus.present, {0, 1, 2}, "present CPUs after the reboot")
end)
