-- A combined resize: vCPUs and RAM in one request, as the seed's
-- {"desired_vcpus": 4, "desired_ram": 3221225472} example. Proves that both
-- parts apply: 6 vCPUs present and 2G more memory in the guest.
local vm = step("boot at 4 vCPUs, max 8, 1G with 8G of hot plug space", function()
  return vmm.start{cpus = {boot = 4, max = 8}, memory = {size = "1G", hotplug_size = "8G"}}
end)

local before
step("resize to 6 vCPUs and 3G at once", function()
  vm:run("echo online > /sys/devices/system/memory/auto_online_blocks")
  before = vm:memory().total
  local status, err = vm:resize{vcpus = 6, memory = vmm.size("3G")}
  expect.eq(err, nil, "resize error")
  expect.within(status, 200, 204, "resize status")
end)

step("the guest sees both", function()
  vm:wait_for(function() return #vm:cpus().present == 6 end, 60)
  local grown = vm:wait_for(function()
    local d = vm:memory().total - before
    return d >= vmm.size("1G") and d
  end, 60)
  expect.within(grown, vmm.size("2G") - vmm.size("64M"), vmm.size("2G"), "MemTotal growth")
  local info = vm:info()
  expect.eq(info.config.cpus.boot_vcpus, 6, "boot_vcpus")
  expect.eq(info.memory_actual_size, vmm.size("3G"), "memory_actual_size")
end)
