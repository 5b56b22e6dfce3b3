-- Boot at 4 vCPUs and 1 GiB: proves that the guest comes up with exactly
-- the CPUs and memory it was given, as the guest itself sees them
-- (/sys/devices/system/cpu, /proc/meminfo), and that the API agrees.
local vm = step("boot at 4 vCPUs and 1G", function()
  return vmm.start{cpus = {boot = 4, max = 4}, memory = {size = "1G"}}
end)

step("the guest sees 4 online CPUs", function()
  local cpus = vm:cpus()
  expect.eq(cpus.online, {0, 1, 2, 3}, "online CPUs")
  expect.eq(cpus.present, {0, 1, 2, 3}, "present CPUs")
  expect.eq(cpus.offline, {}, "offline CPUs")
  expect.eq(vm:run("grep -c ^processor /proc/cpuinfo"), "4", "processors in /proc/cpuinfo")
end)

step("the guest sees about 1G of memory", function()
  local total = vm:memory().total
  -- MemTotal is RAM minus what the kernel keeps for itself.
  expect.within(total, vmm.size("1G") - vmm.size("128M"), vmm.size("1G"), "MemTotal")
  say(string.format("MemTotal is %.0f MiB", total / vmm.size("1M")))
end)

step("the API reports the same VM", function()
  local info = vm:info()
  expect.eq(info.state, "Running", "state")
  expect.eq(info.config.cpus.boot_vcpus, 4, "boot_vcpus")
  expect.eq(info.config.cpus.max_vcpus, 4, "max_vcpus")
  expect.eq(info.config.memory.size, vmm.size("1G"), "memory.size")
  expect.eq(info.memory_actual_size, vmm.size("1G"), "memory_actual_size")
  local ping = vm:ping()
  expect.ne(ping.version, nil, "vmm.ping version")
end)
