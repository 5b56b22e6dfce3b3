-- Landlock: a vmm started with landlock confines itself at vm.create; a
-- disk beneath its rules can be hot-added and the guest reads it, a disk
-- outside them is refused with "permission denied" while the guest runs
-- on, and a reboot (which reads the payload and opens the disks again)
-- works under the confinement.
local allowed = vmm.root_disk("allowed")
local other = vmm.root_disk("other")

local vm = step("boot confined, with one more path allowed", function()
  return vmm.start{cpus = 2, memory = "512M", landlock = {allowed}}
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
  local name
  vm:wait_for(function()
    name = vm:run("ls /sys/bus/pci/devices/" .. d.bdf .. "/virtio*/block 2>/dev/null; true")
    return name ~= ""
  end, 60, 0.2)
  -- An ext4 image: its superblock's magic (0xEF53) at byte 1080.
  expect.eq(vm:run("dd if=/dev/" .. name .. " bs=1 skip=1080 count=2 2>/dev/null | od -An -tx1 | tr -d ' '"), "53ef")
end)

step("a reboot works under the confinement", function()
  vm:reboot()
  expect.eq(vm:run("echo alive"), "alive")
end)
