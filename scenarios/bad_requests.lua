-- Bad resize requests: malformed ones, and ones beyond what the VM was set
-- up for. Proves that each gets 400 and a message giving the reason, and
-- that nothing changed, not even the valid half of a combined request: the
-- API's view and the guest's view of the VM are as before.
local vm = step("boot at 2 vCPUs, max 4, 1G with 1G of hot plug space", function()
  return vmm.start{cpus = {boot = 2, max = 4}, memory = {size = "1G", hotplug_size = "1G"}}
end)

local function refused(status, err, what)
  expect.eq(status, 400, what .. ": status")
  expect.truthy(err and #err > 0, what .. ": an error message")
  say(what .. " -> " .. status .. " " .. tostring(err))
end

step("typed requests the API must refuse", function()
  local status, err = vm:resize{vcpus = 0}
  refused(status, err, "desired_vcpus 0")
  status, err = vm:resize{vcpus = -1}
  refused(status, err, "desired_vcpus -1")
  status, err = vm:resize{memory = 0}
  refused(status, err, "desired_ram 0")
  status, err = vm:resize{balloon = -1}
  refused(status, err, "desired_balloon -1")
end)

step("malformed bodies", function()
  for _, body in ipairs{
    '{"desired_vcpus":"eight"}',
    '{"desired_vcpus":2.5}',
    '{"desired_vcpus":',
    'not json',
    '',
  } do
    local status, reply = vm:api("PUT", "vm.resize", body)
    expect.eq(status, 400, "PUT vm.resize " .. body)
    say(string.format("%q -> %d %s", body, status, reply))
  end
end)

step("unknown routes", function()
  local status = vm:api("GET", "vm.no-such-thing")
  expect.eq(status, 404, "GET vm.no-such-thing")
end)

-- beyond checks the status and that the message gives the reason: a
-- pattern (Go regexp) it must match.
local function beyond(what, req, reason)
  local status, err = vm:resize(req)
  expect.eq(status, 400, what .. ": status")
  expect.match(err, reason, what .. ": the message gives the reason")
  expect.no_match(err, "not supported", what .. ": refused for its values, not as unsupported")
  say(what .. " -> " .. status .. " " .. tostring(err))
end

step("beyond the VM's limits", function()
  beyond("vcpus above max", {vcpus = 5}, "(?i)max")
  beyond("memory beyond hotplug_size", {memory = "3G"}, "(?i)hotplug|hot plug")
  beyond("memory not a multiple of 128M", {memory = vmm.size("1G") + vmm.size("64M")}, "128")
  beyond("a valid vcpus with a bad memory", {vcpus = 3, memory = "3G"}, "(?i)hotplug|hot plug|memory|ram")
end)

step("nothing changed", function()
  local info = vm:info()
  expect.eq(info.state, "Running")
  expect.eq(info.config.cpus.boot_vcpus, 2, "boot_vcpus")
  expect.eq(info.config.cpus.max_vcpus, 4, "max_vcpus")
  expect.eq(info.config.memory.size, vmm.size("1G"), "memory.size")
  expect.eq(info.memory_actual_size, vmm.size("1G"), "memory_actual_size")
  local cpus = vm:cpus()
  expect.eq(cpus.online, {0, 1}, "online CPUs in the guest")
  expect.eq(cpus.present, {0, 1}, "present CPUs in the guest")
end)
