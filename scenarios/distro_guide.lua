-- Cloud Hypervisor's hot plug guide's walkthrough in a stock Debian 12 system (systemd, udev,
-- util-linux, procps; images/debian/build.sh), booted from its own disk with
-- its own initramfs-tools initrd, driven with the guide's own commands:
--   lscpu | grep list:
--   echo 1 | tee /sys/devices/system/cpu/cpu[4,5,6,7]/online
--   echo online | tee /sys/devices/system/memory/auto_online_blocks
--   free -h
-- Then a shrink of both, and a reboot that keeps the vCPU count and applies
-- the RAM shrink.
local disk = vmm.distro_disk()

local vm = step("boot Debian 12 from its disk: --cpus boot=4,max=8 --memory size=1024M,hotplug_size=8192M", function()
  return vmm.start{
    name = "debian",
    initramfs = vmm.distro.initramfs,
    cmdline = vmm.distro.cmdline,
    cpus = {boot = 4, max = 8},
    memory = {size = "1024M", hotplug_size = "8192M"},
    disks = {{path = disk}},
    net = {{tap = "", mac = "", ip = "", mask = ""}},
    rng = true,
    boot_timeout = 300,
  }
end)

-- lscpu's "On-line CPU(s) list" and "Off-line CPU(s) list" (absent when
-- none), as the guide reads them.
local function lscpu()
  local out = vm:run("lscpu | grep list:")
  say(out)
  return out:match("On%-line CPU%(s%) list:%s*(%S+)"), out:match("Off%-line CPU%(s%) list:%s*(%S+)")
end

-- free -h's total memory in MiB, from the same command the guide runs.
local function free_total_mib()
  local out = vm:run("free -h")
  say(out)
  local kib = tonumber(vm:run("free -k | awk '/^Mem:/ {print $2}'"))
  return kib / 1024
end

step("it is Debian's own system: systemd as PID 1, root on /dev/vda, an initramfs-tools boot", function()
  expect.match(vm:run("grep PRETTY_NAME /etc/os-release"), "Debian GNU/Linux 12", "os-release")
  expect.eq(vm:run("cat /proc/1/comm"), "systemd", "PID 1")
  expect.match(vm:run("findmnt -n -o SOURCE,FSTYPE /"), "^/dev/vda\\s+ext4", "the root mount")
  vm:run("test -d /run/initramfs")
  expect.eq(vm:run("systemctl is-system-running --wait >/dev/null; systemctl is-active systemd-udevd"), "active", "udev")
  local online = lscpu()
  expect.eq(online, "0-3", "on-line CPUs at boot")
end)

step("desired_vcpus 8: the new CPUs come up off-line, the guide's tee onlines them", function()
  local status, err = vm:resize{vcpus = 8}
  expect.eq(err, nil, "resize error")
  expect.eq(status, 204, "resize status")
  vm:wait_for(function() return vm:run("cat /sys/devices/system/cpu/present") == "0-7" end, 60, 0.5)
  local online, offline = lscpu()
  expect.eq(online, "0-3", "on-line before the guest onlines them")
  expect.eq(offline, "4-7", "off-line before the guest onlines them")
  vm:run("echo 1 | tee /sys/devices/system/cpu/cpu[4,5,6,7]/online")
  online, offline = lscpu()
  expect.eq(online, "0-7", "on-line after tee")
  expect.eq(offline, nil, "no off-line CPU left")
end)

step("auto_online_blocks, then desired_vcpus 4 with desired_ram 3G in one request", function()
  vm:run("echo online | tee /sys/devices/system/memory/auto_online_blocks")
  local status, body = vm:api("PUT", "vm.resize", {desired_vcpus = 4, desired_ram = vmm.size("3G")})
  expect.eq(status, 204, "resize status (" .. tostring(body) .. ")")
  vm:wait_for(function() return vm:run("cat /sys/devices/system/cpu/online") == "0-3" end, 120, 0.5)
  local total = vm:wait_for(function()
    local t = free_total_mib()
    return t >= 3072 * 0.9 and t
  end, 120, 1)
  expect.within(total, 3072 * 0.9, 3072, "free's total (MiB)")
  expect.eq(lscpu(), "0-3", "on-line after the guest offlined 4-7 by itself")
end)

step("shrink: desired_vcpus 2 now, desired_ram 2G at the next reboot", function()
  local status, err = vm:resize{vcpus = 2}
  expect.eq(err, nil, "resize error")
  expect.eq(status, 204, "resize status")
  vm:wait_for(function() return vm:run("cat /sys/devices/system/cpu/present") == "0-1" end, 120, 0.5)
  expect.eq(lscpu(), "0,1", "on-line at 2 (lscpu lists two CPUs with a comma)")
  status, err = vm:resize{memory = "2G"}
  expect.eq(err, nil, "RAM shrink error")
  expect.eq(status, 204, "RAM shrink status")
  expect.truthy(free_total_mib() >= 3072 * 0.9, "RAM stays until the reboot")
end)

step("reboot: 2 vCPUs and 2G, kept by the new boot", function()
  vm:reboot{via = "api", timeout = 300}
  expect.eq(vm:run("cat /proc/1/comm"), "systemd", "PID 1 after the reboot")
  local online, offline = lscpu()
  expect.eq(online, "0,1", "on-line after the reboot")
  expect.eq(offline, nil, "no off-line CPU after the reboot")
  expect.within(free_total_mib(), 2048 * 0.85, 2048, "free's total after the reboot (MiB)")
end)
