-- Reboot, through the API and from inside the guest: proves that each
-- reboot really restarts the guest (a file in its tmpfs is gone), that the
-- guest comes back with the same CPUs and memory, and that the vmm keeps
-- serving the API across reboots.
local vm = step("boot at 2 vCPUs", function()
  return vmm.start{cpus = {boot = 2, max = 2}, memory = "512M"}
end)

local function mark_and_check_fresh(how)
  vm:run("echo before-reboot > /tmp/marker")
  vm:reboot{via = how}
  local _, status = vm:sh("test -e /tmp/marker")
  expect.eq(status, 1, "/tmp/marker must not survive a reboot (exit status of test -e)")
  expect.eq(vm:cpus().online, {0, 1}, "online CPUs after the reboot")
  expect.within(vm:memory().total, vmm.size("384M"), vmm.size("512M"), "MemTotal after the reboot")
  expect.eq(vm:info().state, "Running", "state after the reboot")
end

step("reboot through the API", function()
  mark_and_check_fresh("api")
end)

step("reboot from inside the guest", function()
  mark_and_check_fresh("guest")
end)

step("reboot twice more in a row", function()
  for _ = 1, 2 do
    vm:reboot()
  end
  expect.eq(vm:run("cat /sys/devices/system/cpu/online"), "0-1")
end)
