-- Landlock: a vmm started with landlock confines itself at vm.create (its
-- log says "Landlock applied") and every one of its threads keeps its
-- seccomp filter; a disk beneath its rules can be hot-added and the guest
-- reads it, a disk outside them is refused with "permission denied" while
-- the guest runs on, and a reboot (which reads the payload and opens the
-- disks again) works under the confinement: the guest reads its boot disk
-- after it.
local boot_disk = vmm.root_disk("boot")
local allowed = vmm.root_disk("allowed")
local other = vmm.root_disk("other")

local vm = step("boot confined, with a disk and one more path allowed", function()
  return vmm.start{cpus = 2, memory = "512M", disks = {{path = boot_disk}}, landlock = {allowed}}
end)

-- ext4_magic waits for the guest's block device at PCI address bdf and
-- reads its ext4 superblock's magic (0xEF53 at byte 1080): "53ef" for the
-- copies of the guest's root file system this script uses as disks.
local function ext4_magic(bdf)
  local name = vm:wait_block(bdf, 60, 0.2)
  return vm:run("dd if=/dev/" .. name .. " bs=1 skip=1080 count=2 2>/dev/null | od -An -tx1 | tr -d ' '")
end

step("the vmm says Landlock applied; seccomp filters every one of its threads", function()
  expect.match(vm:log(), "Landlock applied", "the vmm's log")
  local threads = vm:threads()
  expect.gt(#threads, 0, "the vmm's threads")
  for _, t in ipairs(threads) do
    expect.eq(t.seccomp, 2, string.format("Seccomp of thread %d (%s)", t.tid, t.name))
  end
end)

step("a disk outside the rules is refused; the guest runs on", function()
  local status, _, err = vm:add_disk{path = other}
  expect.truthy(status >= 400, "status " .. tostring(status))
  expect.match(err, "permission denied")
  expect.eq(vm:run("echo alive"), "alive")
end)

step("a disk beneath the rules is hot-added and read", function()
  local status, d, err = vm:add_disk{path = allowed, id = "hot"}
  expect.eq(err, nil, "add_disk error")
  expect.eq(status, 200)
  expect.eq(ext4_magic(d.bdf), "53ef", "the hot-added disk's ext4 magic")
end)

step("a reboot works under the confinement: the guest reads its boot disk", function()
  vm:reboot()
  expect.eq(vm:run("echo alive"), "alive")
  local transport = vm:info().device_tree["_virtio-pci-_disk0"]
  expect.truthy(transport, "device_tree's _disk0, the boot disk")
  expect.eq(ext4_magic(transport.pci_bdf), "53ef", "the boot disk's ext4 magic after the reboot")
end)
