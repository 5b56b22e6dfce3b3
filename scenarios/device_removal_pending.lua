-- A device removal the guest never completes: a guest booted with
-- acpiphp.disable=1 reads the eject request and acts on none. vm.info
-- names the removal in pending_removals (and device_tree still lists the
-- device), every other operation goes on (a disk added meanwhile takes a
-- slot of its own, the VM pauses and resumes), and a reboot ends it: the
-- device left the configuration when its removal was asked, and the disk
-- added meanwhile is there, alone at its own address.
local vm = step("boot with two disks and ACPI PCI hot plug off in the guest", function()
  return vmm.start{cpus = 2, memory = "512M", cmdline = vmm.default_cmdline .. " acpiphp.disable=1",
    disks = {{path = vmm.root_disk("a")}, {path = vmm.root_disk("b")}}}
end)

local bdf = step("the guest has the disk", function()
  expect.eq(vm:run("cat /sys/module/acpiphp/parameters/disable"), "Y")
  local d = vm:info().device_tree["_virtio-pci-_disk1"]
  expect.truthy(d, "device_tree's _disk1")
  expect.eq(vm:run("ls /sys/bus/pci/devices/" .. d.pci_bdf .. "/virtio*/block"), "vdb")
  return d.pci_bdf
end)

step("vm.remove-device: 204; the guest reads the request and keeps the disk", function()
  local status, err = vm:remove_device("_disk1")
  expect.eq(status, 204, err)
  local p
  vm:wait_for(function()
    p = (vm:info().pending_removals or {})[1]
    return p ~= nil and p.guest_notified
  end, 60, 1)
  expect.eq(p.id, "_disk1")
  expect.eq(p.bdf, bdf)
  sleep(5)
  expect.eq(vm:run("ls /sys/bus/pci/devices/" .. bdf .. "/virtio*/block"), "vdb", "the guest kept it")
  local info = vm:info()
  expect.truthy(info.device_tree._disk1, "device_tree lists it")
  expect.eq(#info.config.disks, 1, "the configuration dropped it")
  say("pending for", info.pending_removals[1].waiting_ms, "ms")
end)

step("everything else goes on", function()
  local status, _, err = vm:add_disk{path = vmm.root_disk("c"), id = "_disk1"}
  expect.eq(status, 409, "its id stays taken")
  expect.match(err, "not unique")
  status, err = vm:remove_device("_disk1")
  expect.eq(status, 204, err)
  expect.ok(vm:resize{vcpus = 2})
  expect.eq(vm:run("echo alive"), "alive")
end)

local hot = step("a disk added meanwhile takes a slot of its own", function()
  local status, d, err = vm:add_disk{path = vmm.root_disk("hot"), id = "hot"}
  expect.eq(err, nil, "add_disk error")
  expect.eq(status, 200, "add_disk status")
  expect.eq(d.id, "hot")
  expect.ne(d.bdf, bdf, "the added disk's address: not the slot the guest still holds")
  -- The guest, without acpiphp, sees it only at its next boot.
  local info = vm:info()
  expect.truthy(info.device_tree.hot, "device_tree lists the added disk")
  expect.eq(#(info.pending_removals or {}), 1, "pending removals")
  expect.eq(info.pending_removals[1].id, "_disk1", "the removal still pending")
  return d
end)

step("pause and resume while the removal is pending", function()
  local status, reply = vm:api("PUT", "vm.pause")
  expect.eq(status, 204, "vm.pause: " .. reply)
  expect.eq(vm:info().state, "Paused", "state after vm.pause")
  status, reply = vm:api("PUT", "vm.resume")
  expect.eq(status, 204, "vm.resume: " .. reply)
  local info = vm:info()
  expect.eq(info.state, "Running", "state after vm.resume")
  local p = (info.pending_removals or {})[1]
  expect.truthy(p, "pending_removals after vm.resume")
  expect.eq(p.id, "_disk1", "the removal still pending")
  expect.eq(vm:run("echo alive"), "alive")
end)

step("a reboot ends it; the disk added meanwhile is alone at its address", function()
  vm:reboot()
  expect.eq(vm:info().pending_removals, nil)
  expect.eq(vm:run("ls /sys/bus/pci/devices/" .. bdf .. "/virtio*/block 2>/dev/null; true"), "", "a disk at " .. bdf)
  expect.match(vm:run("ls /sys/bus/pci/devices/" .. hot.bdf .. "/virtio*/block"), "^vd[a-z]+$",
    "the disk added meanwhile, alone at " .. hot.bdf)
  expect.eq(vm:run("ls /sys/block | grep -c vd"), "2", "disks: _disk0 and the one added meanwhile")
  local ids = {}
  for _, d in ipairs(vm:info().config.disks) do ids[#ids + 1] = d.id end
  expect.eq(ids, {"_disk0", "hot"}, "the configuration's disks")
end)
