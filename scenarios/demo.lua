-- Cloud Hypervisor's hot plug guide as a walkthrough, narrated for
-- `make demo`: boot at 4 of max 8 vCPUs with 1G and 8G of hot plug space,
-- grow to 8 vCPUs and online them, shrink to 2 with the guest offlining by
-- itself, grow memory to 3G, then reboot and find the counts kept. Each
-- step says what it does and what the guest sees.
local function show_cpus(vm)
  local c = vm:cpus()
  local function list(t) return #t == 0 and "none" or table.concat(t, ",") end
  say(string.format("guest: online CPUs %s; offline %s", list(c.online), list(c.offline)))
  return c
end

local function show_memory(vm)
  local total = vm:memory().total
  say(string.format("guest: MemTotal %.0f MiB", total / vmm.size("1M")))
  return total
end

local vm = step("start: --cpus boot=4,max=8 --memory size=1024M,hotplug_size=8192M --rng", function()
  say("Starting vmm with its API on a private socket; waiting for the guest's shell.")
  return vmm.start{cpus = {boot = 4, max = 8}, memory = {size = "1024M", hotplug_size = "8192M"}, rng = true}
end)

step("look inside", function()
  say("The guest booted with 4 of a possible 8 CPUs and 1 GiB.")
  show_cpus(vm)
  show_memory(vm)
end)

step("grow to 8 vCPUs", function()
  say('PUT /api/v1/vm.resize {"desired_vcpus":8}')
  local status, err = vm:resize{vcpus = 8}
  expect.eq(err, nil, "resize error")
  say("The API answered " .. status .. ". The kernel sees 4 new CPUs but leaves them offline:")
  vm:wait_cpus(8, 60)
  show_cpus(vm)
  say("Onlining them from inside the guest: echo 1 > /sys/devices/system/cpu/cpuN/online")
  for id = 4, 7 do
    vm:run(string.format("echo 1 > /sys/devices/system/cpu/cpu%d/online", id))
  end
  expect.eq(show_cpus(vm).online, {0, 1, 2, 3, 4, 5, 6, 7}, "online CPUs")
end)

step("shrink to 2 vCPUs", function()
  say('PUT /api/v1/vm.resize {"desired_vcpus":2} -- no command in the guest this time')
  local _, err = vm:resize{vcpus = 2}
  expect.eq(err, nil, "resize error")
  vm:wait_for(function() return #vm:cpus().online == 2 end, 60)
  say("The guest offlined 6 CPUs by itself:")
  expect.eq(show_cpus(vm).online, {0, 1}, "online CPUs")
end)

local before
step("grow memory to 3G", function()
  say("First the guest is told to online new memory blocks by itself:")
  vm:run("echo online > /sys/devices/system/memory/auto_online_blocks")
  before = show_memory(vm)
  say('PUT /api/v1/vm.resize {"desired_ram":3221225472}')
  local _, err = vm:resize{memory = "3G"}
  expect.eq(err, nil, "resize error")
  local after = vm:wait_for(function()
    local t = vm:memory().total
    return t - before >= vmm.size("1G") and t
  end, 60)
  say(string.format("guest: MemTotal %.0f MiB, %.0f MiB more", after / vmm.size("1M"), (after - before) / vmm.size("1M")))
  say("free -m in the guest:\n" .. vm:run("free -m"))
end)

step("reboot: the new sizes are kept", function()
  say("PUT /api/v1/vm.reboot")
  vm:reboot()
  expect.eq(show_cpus(vm).online, {0, 1}, "online CPUs after the reboot")
  expect.within(show_memory(vm), vmm.size("3G") - vmm.size("192M"), vmm.size("3G"), "MemTotal after the reboot")
  local info = vm:info()
  say(string.format("vm.info: state %s, boot_vcpus %d, memory_actual_size %.0f MiB",
    info.state, info.config.cpus.boot_vcpus, info.memory_actual_size / vmm.size("1M")))
end)
