-- The whole command line of Cloud Hypervisor's hot plug guide, with a root
-- file system disk in place of the Clear Linux image and direct kernel boot
-- in place of the firmware:
--   --cpus boot=4,max=8 --memory size=1024M,hotplug_size=8192M
--   --disk path=ROOT --net "tap=,mac=,ip=,mask=" --rng --api-socket ...
-- Proves that the guest runs from the ext4 disk (root=/dev/vda, read-write)
-- found on PCI where vm.info says it is, as Kata looks a disk up by its PCI
-- address, finds a tap the vmm created and named and a generated MAC, reads entropy,
-- grows to 8 vCPUs and 3G live with all of that present, and that what it
-- wrote and synced is on the disk at the next boot after a power off.
local root = vmm.root_disk()

local function start(name)
  return vmm.start{
    name = name,
    cmdline = vmm.root_cmdline,
    cpus = {boot = 4, max = 8},
    memory = {size = "1024M", hotplug_size = "8192M"},
    disks = {{path = root}},
    net = {{tap = "", mac = "", ip = "", mask = ""}},
    rng = true,
  }
end

local vm = step("boot the guide's command line with an ext4 root disk", function()
  return start("guide")
end)

step("the root is /dev/vda, ext4, read-write, at vm.info's PCI address; net and rng are there", function()
  local mount = vm:run("grep ' / ' /proc/mounts")
  expect.match(mount, "^/dev/vda / ext4 rw[ ,]", "the root mount")
  vm:run("test -e /etc/vmm-rootfs")
  local bdf = vm:info().device_tree["_virtio-pci-_disk0"].pci_bdf
  expect.eq(bdf, "0000:00:01.0", "the root disk's PCI address in vm.info")
  expect.match(vm:run("readlink -f /sys/block/vda"), "^/sys/devices/pci0000:00/" .. bdf .. "/virtio[0-9]+/block/vda$",
    "where the guest found vda")
  local net = vm:info().config.net[1]
  expect.match(net.tap, "^.+$", "the tap's name, chosen by the kernel")
  expect.match(net.mac, "^52:54:00(:[0-9a-f][0-9a-f])+$", "the generated MAC")
  expect.eq(vm:run("cat /sys/class/net/eth0/address"), net.mac, "the guest's MAC")
  expect.eq(vm:run("head -c 32 /dev/hwrng | wc -c"), "32", "bytes from /dev/hwrng")
  say("tap " .. net.tap .. ", MAC " .. net.mac)
end)

step("resize to 8 vCPUs: the guest onlines 4-7", function()
  local status, err = vm:resize{vcpus = 8}
  expect.eq(err, nil, "resize to 8")
  expect.eq(status, 204, "status")
  vm:wait_for(function() return #vm:cpus().present == 8 end, 60, 0.2)
  vm:run("echo 1 | tee /sys/devices/system/cpu/cpu[4-7]/online >/dev/null")
  expect.eq(vm:cpus().online, {0, 1, 2, 3, 4, 5, 6, 7}, "online CPUs")
end)

step("resize to 3G: MemTotal grows to 90-100% of 3G", function()
  vm:run("echo online > /sys/devices/system/memory/auto_online_blocks")
  local status, err = vm:resize{memory = "3G"}
  expect.eq(err, nil, "resize to 3G")
  expect.eq(status, 204, "status")
  local total = vm:wait_for(function()
    local t = vm:memory().total
    return t >= vmm.size("3G") * 0.9 and t
  end, 60, 0.5)
  expect.within(total, vmm.size("3G") * 0.9, vmm.size("3G"), "MemTotal")
end)

step("write and sync a file on the root disk, then power off", function()
  vm:run("echo written-by-the-guest > /root/hello && sync")
  vm:shutdown{via = "guest"}
  expect.eq(vm:wait_exit(60), 0, "the vmm's exit status")
end)

step("a second boot from the same disk finds the file, with no ext4 error", function()
  local again = start("guide-again")
  expect.eq(again:run("cat /root/hello"), "written-by-the-guest", "the file the first boot wrote")
  local errors = again:sh("dmesg | grep -c 'EXT4-fs error'")
  expect.eq(errors, "0", "ext4 errors in dmesg")
end)
