-- A scenario that must fail: it proves that a failing script fails its
-- Ginkgo spec with the script's message, file and line, and that its VM is
-- stopped anyway. e2e/scenarios_test.go checks the message; keep the
-- "FAILS HERE" marker on the failing line.
local vm = step("boot at 4 vCPUs", function()
  return vmm.start{cpus = {boot = 4}, memory = "512M"}
end)

step("the guest has a fifth CPU", function()
  local cpus = vm:cpus()
  expect.eq(cpus.online, {0, 1, 2, 3, 4}, "online CPUs") -- FAILS HERE
end)

fail("not reached: the step above fails")
