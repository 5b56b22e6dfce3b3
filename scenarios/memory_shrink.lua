-- Memory shrink applied at reboot: boot with 2G, resize to 1G. Proves that
-- the running guest keeps its memory (a shrink only changes the
-- configuration), and that after a reboot it has 1G.
local vm = step("boot with 2G", function()
  return vmm.start{cpus = {boot = 2}, memory = {size = "2G", hotplug_size = "2G"}}
end)

local before
step("resize to 1G", function()
  before = vm:memory().total
  local status, err = vm:resize{memory = "1G"}
  expect.eq(err, nil, "resize error")
  expect.within(status, 200, 204, "resize status")
end)

step("nothing changes until the reboot", function()
  sleep(2)
  expect.eq(vm:memory().total, before, "MemTotal right after the shrink")
end)

step("after a reboot the guest has 1G", function()
  vm:reboot()
  expect.within(vm:memory().total, vmm.size("1G") - vmm.size("128M"), vmm.size("1G"), "MemTotal after the reboot")
  local info = vm:info()
  expect.eq(info.memory_actual_size, vmm.size("1G"), "memory_actual_size")
end)
