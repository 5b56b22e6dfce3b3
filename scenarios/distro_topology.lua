-- cpus.topology in a stock Debian 12 guest: 2 sockets of 2 cores of 2
-- threads (--cpus boot=4,max=8,topology=2:2:1:2). At boot the first socket
-- is there; a hot plug grow to 8 brings the second, and lscpu and
-- /sys/devices/system/cpu/cpu*/topology show the whole topology; a reboot
-- boots all 8 with it.
local disk = vmm.distro_disk()

local vm = step("boot Debian 12 with --cpus boot=4,max=8,topology=2:2:1:2", function()
  return vmm.start{
    name = "debian-topology",
    initramfs = vmm.distro.initramfs,
    cmdline = vmm.distro.cmdline,
    cpus = {boot = 4, max = 8, topology = "2:2:1:2"},
    memory = "1024M",
    disks = {{path = disk}},
    boot_timeout = 300,
  }
end)

-- lscpu's field, as "Socket(s):      2" gives it.
local function lscpu_field(out, name)
  return out:match(name:gsub("[%(%)]", "%%%0") .. ":%s*(%S+)")
end

-- The sysfs topology of the online CPUs, one line a CPU:
-- "cpu5 package=1 core=0 threads=4-5".
local function sysfs_topology()
  return vm:run([[for c in /sys/devices/system/cpu/cpu[0-9]*; do
    [ -e $c/topology/physical_package_id ] || continue
    echo "${c##*/} package=$(cat $c/topology/physical_package_id) core=$(cat $c/topology/core_id) threads=$(cat $c/topology/thread_siblings_list)"
  done | sort -V]])
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
  local out = vm:run("lscpu")
  say(out)
  expect.eq(lscpu_field(out, "Thread(s) per core"), "2", "lscpu Thread(s) per core")
  expect.eq(lscpu_field(out, "Core(s) per socket"), "2", "lscpu Core(s) per socket")
end)

step("grow to 8 and online cpu4-7: lscpu shows 2 sockets x 2 cores x 2 threads", function()
  local status, err = vm:resize{vcpus = 8}
  expect.eq(err, nil, "resize error")
  expect.eq(status, 204, "resize status")
  vm:wait_for(function() return vm:run("cat /sys/devices/system/cpu/present") == "0-7" end, 120, 0.5)
  vm:run("echo 1 | tee /sys/devices/system/cpu/cpu[4-7]/online >/dev/null")
  expect.eq(vm:run("cat /sys/devices/system/cpu/online"), "0-7", "online CPUs")
  expect.eq(sysfs_topology(), expected(8), "sysfs topology of cpu0-7")
  local out = vm:run("lscpu")
  say(out)
  expect.eq(lscpu_field(out, "Socket(s)"), "2", "lscpu Socket(s)")
  expect.eq(lscpu_field(out, "Core(s) per socket"), "2", "lscpu Core(s) per socket")
  expect.eq(lscpu_field(out, "Thread(s) per core"), "2", "lscpu Thread(s) per core")
end)

step("reboot: all 8 vCPUs boot with the topology", function()
  vm:reboot{via = "api", timeout = 300}
  expect.eq(vm:run("cat /sys/devices/system/cpu/online"), "0-7", "online CPUs after the reboot")
  expect.eq(sysfs_topology(), expected(8), "sysfs topology after the reboot")
  local out = vm:run("lscpu")
  expect.eq(lscpu_field(out, "Socket(s)"), "2", "lscpu Socket(s) after the reboot")
  expect.eq(lscpu_field(out, "Core(s) per socket"), "2", "lscpu Core(s) per socket after the reboot")
  expect.eq(lscpu_field(out, "Thread(s) per core"), "2", "lscpu Thread(s) per core after the reboot")
end)
