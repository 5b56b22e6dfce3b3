-- Memory grow: boot with 1G and 8G of hot plug space, let the guest online
-- new memory by itself, resize to 3G. Proves that the guest's MemTotal grows
-- by the 2G added and that the API reports 3G.
local vm = step("boot with 1G, hotplug_size 8G", function()
  return vmm.start{cpus = {boot = 2}, memory = {size = "1G", hotplug_size = "8G"}}
end)

local before
step("the guest onlines hot-added memory by itself", function()
  vm:run("echo online > /sys/devices/system/memory/auto_online_blocks")
  expect.eq(vm:run("cat /sys/devices/system/memory/auto_online_blocks"), "online")
  expect.eq(vm:run("cat /sys/devices/system/memory/block_size_bytes"), "8000000", "memory block size (hex)")
  before = vm:memory().total
end)

step("resize to 3G", function()
  local status, err = vm:resize{memory = "3G"}
  expect.eq(err, nil, "resize error")
  expect.within(status, 200, 204, "resize status")
end)

step("the guest has 2G more", function()
  local after = vm:wait_for(function()
    local t = vm:memory().total
    return t - before >= vmm.size("1G") and t
  end, 60)
  -- Hot-added memory counts in MemTotal in full; its struct pages come
  -- out of boot memory, which can take a little back.
  expect.within(after - before, vmm.size("2G") - vmm.size("64M"), vmm.size("2G"), "MemTotal growth")
  expect.eq(vm:info().memory_actual_size, vmm.size("3G"), "memory_actual_size")
end)
