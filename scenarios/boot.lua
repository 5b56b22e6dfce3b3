-- Boot at 4 vCPUs and 1 GiB, then reboot: proves that the guest comes up
-- with exactly the CPUs and memory it was given, as the guest itself sees
-- them (/sys/devices/system/cpu, /proc/meminfo), that the API agrees, and
-- that a reboot through the API and one from inside the guest each really
-- restart it (a file in its tmpfs is gone, the console shows one more ready
-- marker: one boot per reboot) with the same CPUs, vCPU threads and memory
-- while the vmm keeps serving the API.
local vm = step("boot at 4 vCPUs and 1G", function()
  return vmm.start{cpus = {boot = 4, max = 4}, memory = {size = "1G"}}
end)

-- looks_as_booted checks the guest's and the API's view of the VM.
local function looks_as_booted()
  local cpus = vm:cpus()
  expect.eq(cpus.online, {0, 1, 2, 3}, "online CPUs")
  expect.eq(cpus.present, {0, 1, 2, 3}, "present CPUs")
  expect.eq(cpus.offline, {}, "offline CPUs")
  expect.eq(vm:run("grep -c ^processor /proc/cpuinfo"), "4", "processors in /proc/cpuinfo")
  local total = vm:memory().total
  -- MemTotal is RAM minus what the kernel keeps for itself.
  expect.within(total, vmm.size("1G") - vmm.size("128M"), vmm.size("1G"), "MemTotal")
  say(string.format("MemTotal is %.0f MiB", total / vmm.size("1M")))
  local info = vm:info()
  expect.eq(info.state, "Running", "state")
  expect.eq(info.config.cpus.boot_vcpus, 4, "boot_vcpus")
  expect.eq(info.config.cpus.max_vcpus, 4, "max_vcpus")
  expect.eq(info.config.memory.size, vmm.size("1G"), "memory.size")
  expect.eq(info.memory_actual_size, vmm.size("1G"), "memory_actual_size")
  expect.eq(vm:process().vcpu_threads, 4, "the vmm's vcpuN threads")
end

step("the guest sees 4 online CPUs and about 1G; the API agrees", function()
  looks_as_booted()
  expect.ne(vm:ping().version, nil, "vmm.ping version")
end)

for i, how in ipairs{"api", "guest"} do
  step("reboot via " .. how .. ": one more boot, a fresh guest with the same CPUs and memory", function()
    vm:run("echo before-reboot > /tmp/marker")
    vm:reboot{via = how}
    expect.eq(vm:ready_markers(), 1 + i, "ready markers on the console: one per boot")
    local _, status = vm:sh("test -e /tmp/marker")
    expect.eq(status, 1, "/tmp/marker must not survive a reboot (exit status of test -e)")
    looks_as_booted()
  end)
end
