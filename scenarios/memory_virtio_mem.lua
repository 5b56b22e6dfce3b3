-- RAM that grows and shrinks live through virtio-mem: 1G of boot RAM with
-- 8G of hot plug space behind a virtio-mem device (in vm.info's
-- device_tree under Cloud Hypervisor's id). Proves that a resize to 4G
-- gives the guest ~4G (MemTotal) it can fill with 3G of tmpfs with no OOM
-- kill, that a resize to 2G takes RAM back from the running guest
-- (MemTotal falls with no reboot, vm.info says what the guest gave back
-- and keeps memory.size the boot RAM) and the vmm's RSS falls by at least
-- 1.5G, that bad sizes are refused with 400 and change nothing, and that a
-- reboot keeps 2G.
local G, M = vmm.size("1G"), vmm.size("1M")

local vm = step("boot 1G with 8G of virtio-mem space", function()
  return vmm.start{memory = {size = "1G", hotplug_size = "8G", hotplug_method = "virtio-mem"}}
end)

-- memtotal waits until MemTotal is within [lo, hi] and returns it.
local function memtotal(lo, hi, what, timeout)
  local t = vm:wait_for(function()
    local n = vm:memory().total
    return n >= lo and n <= hi and n
  end, timeout or 120, 0.5)
  say(string.format("%s: MemTotal %.0f MiB", what, t / M))
  return t
end

-- actual waits until vm.info's memory_actual_size is n.
local function actual(n, what, timeout)
  vm:wait_for(function() return vm:info().memory_actual_size == n end, timeout or 120, 0.5)
  say(string.format("%s: memory_actual_size %.0f MiB", what, n / M))
end

local function refused(what, body)
  local status, reply = vm:api("PUT", "vm.resize", body)
  expect.eq(status, 400, what .. ": status")
  say(what .. " " .. body .. " -> " .. status .. " " .. reply)
end

step("the guest has the driver and 1G", function()
  expect.match(vm:run("ls /sys/bus/virtio/drivers/"), "virtio_mem", "the guest's virtio drivers")
  memtotal(0.85 * G, G, "at boot")
  expect.eq(vm:info().memory_actual_size, G, "memory_actual_size")
end)

step("vm.info's device_tree has the virtio-mem device, on PCI", function()
  local info = vm:info()
  -- Cloud Hypervisor's id: _mem and the counter the disks, nets and the
  -- vsock share. This VM has none of them but the guest agent's vsock
  -- (_vsock0), when the runner gives it one.
  local id = "_mem" .. (info.config.vsock and 1 or 0)
  local dev = (info.device_tree or {})[id]
  expect.truthy(dev, "device_tree's " .. id)
  expect.eq(dev.parent, "_virtio-pci-" .. id, id .. "'s parent: its PCI transport")
  expect.truthy(info.device_tree[dev.parent].pci_bdf, id .. "'s PCI address")
end)

step("grow to 4G live: MemTotal ~4G", function()
  local status, err = vm:resize{memory = "4G"}
  expect.eq(err, nil, "grow: error")
  expect.eq(status, 204, "grow: status")
  actual(4 * G, "after the grow")
  memtotal(0.9 * 4 * G, 4 * G, "after the grow")
  local info = vm:info()
  expect.eq(info.config.memory.size, G, "memory.size stays the boot RAM")
  expect.eq(info.config.memory.hotplugged_size, 3 * G, "hotplugged_size")
end)

step("the guest fills 3G of tmpfs with no OOM kill, then frees it", function()
  -- fill_tmpfs fails unless all 3072M land in /tmp and dmesg tells of no
  -- out-of-memory kill.
  vm:fill_tmpfs("3G", {timeout = 600})
end)

step("shrink to 2G live: MemTotal ~2G without a reboot, the vmm's RSS falls", function()
  local before = vm:process().rss
  local status, err = vm:resize{memory = "2G"}
  expect.eq(err, nil, "shrink: error")
  expect.eq(status, 204, "shrink: status")
  actual(2 * G, "after the shrink", 300)
  memtotal(0.9 * 2 * G, 2 * G, "after the shrink")
  local after = vm:process().rss
  say(string.format("vmm RSS %.0f MiB before the shrink, %.0f MiB after", before / M, after / M))
  expect.truthy(after <= before - 1.5 * G, "the vmm's RSS fell by at least 1.5G")
  local info = vm:info()
  expect.eq(info.config.memory.size, G, "memory.size stays the boot RAM")
  expect.eq(info.config.memory.hotplugged_size, G, "hotplugged_size")
end)

step("bad sizes are refused with 400 and change nothing", function()
  refused("below the boot RAM", '{"desired_ram":' .. (G - 2 * M) .. '}')
  refused("not in 2M blocks", '{"desired_ram":' .. (2 * G + M) .. '}')
  refused("beyond size + hotplug_size", '{"desired_ram":' .. (9 * G + 2 * M) .. '}')
  local info = vm:info()
  expect.eq(info.memory_actual_size, 2 * G, "memory_actual_size")
  expect.eq(info.config.memory.hotplugged_size, G, "hotplugged_size")
end)

step("a reboot keeps 2G", function()
  vm:reboot()
  actual(2 * G, "after the reboot")
  memtotal(0.9 * 2 * G, 2 * G, "after the reboot")
  local info = vm:info()
  expect.eq(info.config.memory.size, G, "memory.size")
  expect.eq(info.config.memory.hotplugged_size, G, "hotplugged_size")
end)
