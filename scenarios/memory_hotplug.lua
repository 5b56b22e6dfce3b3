-- RAM hot plug end to end on one VM, as Cloud Hypervisor's hot plug guide
-- tells it: 1G with 8G of hot plug space. Proves that the guide's
-- {"desired_vcpus":4, "desired_ram":3221225472} gives the guest ~3G
-- (MemTotal and free -h) it can allocate and touch, that lowering
-- desired_ram changes nothing until the reboot (then ~1G, and the vmm's RSS
-- drops by what the guest had touched), that vCPUs and RAM resize together,
-- that 16 successive +128M resizes land, that a request valid in vCPUs but
-- not in RAM changes nothing, that exactly size + hotplug_size works and
-- one block more is refused.
local G, M = vmm.size("1G"), vmm.size("1M")

local vm = step("boot at 4 of 8 vCPUs, 1G with 8G of hot plug space", function()
  return vmm.start{cpus = {boot = 4, max = 8}, memory = {size = "1G", hotplug_size = "8G"}}
end)

local function refused(what, body)
  local status, reply = vm:api("PUT", "vm.resize", body)
  expect.eq(status, 400, what .. ": status")
  say(what .. " " .. body .. " -> " .. status .. " " .. reply)
end

-- memtotal waits until MemTotal is within [lo, hi] and returns it.
local function memtotal(lo, hi, what)
  local t = vm:wait_for(function()
    local n = vm:memory().total
    return n >= lo and n <= hi and n
  end, 60, 0.5)
  say(string.format("%s: MemTotal %.0f MiB", what, t / M))
  return t
end

step("the guide's resize: 4 vCPUs and 3G; MemTotal 90-100% of 3G", function()
  vm:run("echo online > /sys/devices/system/memory/auto_online_blocks")
  local status, reply = vm:api("PUT", "vm.resize", '{"desired_vcpus": 4, "desired_ram" : 3221225472}')
  expect.eq(status, 204, "the guide's resize: status (" .. reply .. ")")
  memtotal(0.9 * 3 * G, 3 * G, "after the guide's resize")
  expect.eq(vm:info().memory_actual_size, 3 * G, "memory_actual_size")
end)

step("free -h agrees: about 3G", function()
  local total = vm:run("free -h | awk '/^Mem:/ {print $2}'")
  expect.match(total, "^(2\\.[7-9]|3\\.0)G$", "free -h total")
end)

step("the guest allocates and touches 1.5G", function()
  vm:fill_tmpfs("1536M", {timeout = 300})
end)

step("resize to 1G: MemTotal unchanged until the reboot, then ~1G", function()
  local before = vm:memory().total
  expect.ok(vm:resize{memory = "1G"})
  expect.eq(vm:memory().total, before, "MemTotal right after the shrink")
  local rss_before = vm:process().rss
  vm:reboot()
  memtotal(0.85 * G, G, "after the reboot")
  -- The hot-added RAM the guest touched (1.5G of tmpfs) went back to the
  -- host with the reboot.
  local rss_after = vm:process().rss
  say(string.format("vmm RSS %.0f MiB before the reboot, %.0f MiB after", rss_before / M, rss_after / M))
  expect.truthy(rss_after < rss_before - G / 2, "the vmm's RSS dropped by more than 512M")
  expect.eq(vm:info().memory_actual_size, G, "memory_actual_size")
  vm:run("echo online > /sys/devices/system/memory/auto_online_blocks")
end)

step("vCPUs and RAM together: 8 vCPUs and 2G", function()
  expect.ok(vm:resize{vcpus = 8, memory = "2G"})
  vm:wait_cpus(8, 60, 0.5)
  memtotal(0.9 * 2 * G, 2 * G, "after the combined resize")
  local info = vm:info()
  expect.eq(info.config.cpus.boot_vcpus, 8, "boot_vcpus")
  expect.eq(info.memory_actual_size, 2 * G, "memory_actual_size")
end)

step("16 successive +128M resizes land", function()
  for i = 1, 16 do
    local status, err = vm:resize{memory = 2 * G + i * 128 * M}
    expect.ok(status, err, "+128M #" .. i)
  end
  expect.eq(vm:info().memory_actual_size, 4 * G, "memory_actual_size")
  memtotal(0.9 * 4 * G, 4 * G, "after 16 x 128M")
end)

step("bad requests change nothing, not even a valid vCPU half", function()
  refused("valid vcpus, RAM not in 128M blocks", '{"desired_vcpus":2,"desired_ram":' .. (4 * G + 64 * M) .. '}')
  refused("RAM 0", '{"desired_ram":0}')
  refused("RAM -1", '{"desired_ram":-1}')
  refused("RAM as a word", '{"desired_ram":"eight"}')
  refused("RAM beyond size + hotplug_size", '{"desired_ram":' .. (9 * G + 128 * M) .. '}')
  local info = vm:info()
  expect.eq(info.config.cpus.boot_vcpus, 8, "boot_vcpus")
  expect.eq(info.memory_actual_size, 4 * G, "memory_actual_size")
  expect.eq(#vm:cpus().present, 8, "present CPUs")
end)

step("exactly size + hotplug_size works; one block more is refused", function()
  expect.ok(vm:resize{memory = 9 * G})
  expect.eq(vm:info().memory_actual_size, 9 * G, "memory_actual_size")
  refused("one block past size + hotplug_size", '{"desired_ram":' .. (9 * G + 128 * M) .. '}')
  memtotal(0.9 * 9 * G, 9 * G, "at size + hotplug_size")
end)
