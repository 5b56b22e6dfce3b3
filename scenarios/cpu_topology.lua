-- cpus.topology: 2 sockets of 2 cores of 2 threads (--cpus
-- boot=4,max=8,topology=2:2:1:2). At boot the first socket is there; a hot
-- plug grow to 8 brings the second, and /sys/devices/system/cpu/cpu*/topology
-- (what lscpu reads) shows the whole topology; a reboot boots all 8 with it.
local vm = step("boot with --cpus boot=4,max=8,topology=2:2:1:2", function()
  return vmm.start{cpus = {boot = 4, max = 8, topology = "2:2:1:2"}, memory = "1024M"}
end)

-- The sysfs topology of the online CPUs, one line a CPU:
-- "cpu5 package=1 core=0 threads=4-5".
local function sysfs_topology()
  return vm:run([[for c in /sys/devices/system/cpu/cpu[0-9]*; do
    [ -e $c/topology/physical_package_id ] || continue
    echo "${c##*/} package=$(cat $c/topology/physical_package_id) core=$(cat $c/topology/core_id) threads=$(cat $c/topology/thread_siblings_list)"
  done | sort]])
end

-- expected is that line for each of the first n CPUs: CPU i is thread i%2
-- of core (i/2)%2 of package i/4.
local function expected(n)
  local lines = {}
  for i = 0, n - 1 do
    local first = i - i % 2
    lines[#lines + 1] = string.format("cpu%d package=%d core=%d threads=%d-%d", i, math.floor(i / 4), math.floor(i / 2) % 2, first, first + 1)
  end
  return table.concat(lines, "\n")
end

step("at boot: socket 0's 2 cores of 2 threads", function()
  expect.eq(sysfs_topology(), expected(4), "sysfs topology of cpu0-3")
end)

step("grow to 8 and online cpu4-7: 2 sockets x 2 cores x 2 threads", function()
  expect.ok(vm:resize{vcpus = 8})
  vm:wait_cpus(8, 120, 0.5)
  vm:run("echo 1 | tee /sys/devices/system/cpu/cpu[4-7]/online >/dev/null")
  expect.eq(vm:run("cat /sys/devices/system/cpu/online"), "0-7", "online CPUs")
  expect.eq(sysfs_topology(), expected(8), "sysfs topology of cpu0-7")
end)

step("reboot: all 8 vCPUs boot with the topology", function()
  vm:reboot{via = "api", timeout = 300}
  expect.eq(vm:run("cat /sys/devices/system/cpu/online"), "0-7", "online CPUs after the reboot")
  expect.eq(sysfs_topology(), expected(8), "sysfs topology after the reboot")
end)
