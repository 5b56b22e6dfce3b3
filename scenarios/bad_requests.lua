-- Bad resize requests that the API refuses before any hot plug (its shape
-- checks; the limits of hot plug are in pending/bad_requests_hotplug.lua):
-- proves that each gets 400 and a message, and that nothing changed: the
-- API's view and the guest's view of the VM are as before.
local vm = step("boot at 2 vCPUs, max 4", function()
  return vmm.start{cpus = {boot = 2, max = 4}, memory = "512M"}
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

step("nothing changed", function()
  local info = vm:info()
  expect.eq(info.state, "Running")
  expect.eq(info.config.cpus.boot_vcpus, 2, "boot_vcpus")
  expect.eq(info.config.cpus.max_vcpus, 4, "max_vcpus")
  expect.eq(info.config.memory.size, vmm.size("512M"), "memory.size")
  expect.eq(vm:cpus().online, {0, 1}, "online CPUs in the guest")
end)
