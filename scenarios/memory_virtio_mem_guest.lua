-- virtio-mem with a guest that does not give what it is asked: a guest
-- whose virtio_mem driver is unloaded plugs nothing (the resize is taken,
-- hotplugged_size holds it, memory_actual_size stays the boot RAM, the VM
-- runs on) until the driver comes back; a shrink the guest can honour
-- only in part (1100M of tmpfs, no swap) leaves memory_actual_size at what
-- the guest kept, and once the file is gone a new request gets the rest.
local M = vmm.size("1M")
local boot = vmm.size("512M")

local vm = step("boot 512M with 2G of virtio-mem space", function()
  return vmm.start{cpus = 2, memory = {size = "512M", hotplug_size = "2G", hotplug_method = "virtio-mem"}}
end)

local function resize(size)
  local status, err = vm:resize{memory = size}
  expect.eq(status, 204, err)
end

local function actual(n, what, timeout)
  vm:wait_for(function() return vm:info().memory_actual_size == n end, timeout or 120, 1)
  say(string.format("%s: memory_actual_size %.0f MiB", what, n / M))
end

local module = step("unload the driver; ask for 1.5G", function()
  local ko = vm:run("grep /virtio_mem.ko /etc/modules")
  vm:run("rmmod virtio_mem")
  resize(boot + vmm.size("1G"))
  sleep(10)
  local info = vm:info()
  expect.eq(info.memory_actual_size, boot, "memory_actual_size without the driver")
  expect.eq(info.config.memory.hotplugged_size, vmm.size("1G"), "hotplugged_size: what was asked")
  expect.le(vm:memory().total, boot, "the guest's MemTotal")
  expect.eq(vm:run("echo alive"), "alive")
  return ko
end)

step("the driver back plugs what was asked", function()
  vm:run("cd / && insmod " .. module)
  actual(boot + vmm.size("1G"), "with the driver")
  local want = boot + vmm.size("1G")
  vm:wait_for(function() return vm:memory().total >= 0.9 * want end, 60, 1)
  expect.le(vm:memory().total, want, "the guest's MemTotal with the driver back")
end)

step("a shrink the guest cannot honour whole", function()
  vm:run("mount -o remount,size=1200M /tmp")
  vm:run("dd if=/dev/zero of=/tmp/x bs=1M count=1100 2>/dev/null", {timeout = 600})
  resize("512M")
  sleep(30)
  local info = vm:info()
  say(string.format("asked 512 MiB, memory_actual_size %.0f MiB", info.memory_actual_size / M))
  expect.ge(info.memory_actual_size, 1100 * M, "memory_actual_size: the guest holds 1100M")
  expect.ge(vm:memory().total, 1100 * M, "the guest's MemTotal: it holds 1100M")
  expect.eq(vm:run("echo alive"), "alive")
  expect.eq(info.config.memory.hotplugged_size or 0, 0, "hotplugged_size: the target (left out at 0)")
end)

step("freed, the rest goes at the next request", function()
  vm:run("rm /tmp/x")
  resize(boot + 2 * M)
  resize("512M")
  actual(boot, "after the file was freed", 300)
end)
