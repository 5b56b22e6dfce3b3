-- A scenario that must fail: it proves that a failing script fails its
-- Ginkgo spec with the script's message, file and line, and that its VM is
-- stopped anyway. e2e/scenarios_test.go checks the message; keep the
-- "FAILS HERE" marker on the failing line.
-- One vCPU and little memory: the smallest guest boots fastest.
local vm = step("boot at 1 vCPU", function()
  return vmm.start{cpus = {boot = 1}, memory = "256M"}
end)

step("the guest has a second CPU", function()
  local cpus = vm:cpus()
  expect.eq(cpus.online, {0, 1}, "online CPUs") -- FAILS HERE
end)

fail("not reached: the step above fails")
