-- Resize requests beyond what the VM was set up for: proves that each is
-- refused with 400 and a message, and that nothing was applied, not even
-- the valid half of a combined request.
local vm = step("boot at 2 vCPUs, max 4, 1G with 1G of hot plug space", function()
  return vmm.start{cpus = {boot = 2, max = 4}, memory = {size = "1G", hotplug_size = "1G"}}
end)

-- refused checks the status and that the message gives the reason: a
-- pattern (Go regexp) it must match.
local function refused(what, req, reason)
  local status, err = vm:resize(req)
  expect.eq(status, 400, what .. ": status")
  expect.match(err, reason, what .. ": the message gives the reason")
  expect.no_match(err, "not supported", what .. ": refused for its values, not as unsupported")
  say(what .. " -> " .. status .. " " .. tostring(err))
end

step("refused", function()
  refused("vcpus above max", {vcpus = 5}, "(?i)max")
  refused("memory beyond hotplug_size", {memory = "3G"}, "(?i)hotplug|hot plug")
  refused("memory not a multiple of 128M", {memory = vmm.size("1G") + vmm.size("64M")}, "128")
  refused("a valid vcpus with a bad memory", {vcpus = 3, memory = "3G"}, "(?i)hotplug|hot plug|memory|ram")
end)

step("nothing was applied", function()
  local info = vm:info()
  expect.eq(info.config.cpus.boot_vcpus, 2, "boot_vcpus")
  expect.eq(info.memory_actual_size, vmm.size("1G"), "memory_actual_size")
  expect.eq(vm:cpus().present, {0, 1}, "present CPUs")
end)
