-- Device hot plug: a disk added to a running guest through vm.add-disk
-- appears as a new /dev/vdX under the PCI address the reply gives, takes a
-- synced write that is in the image file afterwards, survives a reboot at
-- the same address, and disappears on vm.remove-device; bad requests get
-- their answers while the guest runs on; add/remove cycles leave the vmm's
-- threads and descriptors where they were. (A hot-added net is the e2e
-- spec's: it needs a tap, e2e/device_hotplug_test.go.)
local cycles = tonumber(os.getenv("VMM_HOTPLUG_CYCLES") or "") or 5
local marker = "hot-plugged-write"

local vm = step("boot with one disk", function()
  return vmm.start{cpus = 2, memory = "512M", disks = {{path = vmm.root_disk("boot")}}}
end)
local image = vmm.root_disk("hot")

local function gone(bdf, id)
  vm:wait_for(function()
    return vm:run("ls -d /sys/bus/pci/devices/" .. bdf .. " 2>/dev/null; true") == ""
  end, 60, 0.2)
  vm:wait_for(function() return vm:info().device_tree[id] == nil end, 30, 0.2)
end

local dev = step("vm:add_disk: the guest gets vdb at the returned address", function()
  local status, d, err = vm:add_disk{path = image, id = "hot"}
  expect.eq(err, nil, "add_disk error")
  expect.eq(status, 200)
  expect.match(d.bdf, "^0000:00:[0-9a-f]{2}\\.0$")
  expect.eq(vm:wait_block(d.bdf, 60, 0.2), "vdb")
  say("hot-added", d.id, "at", d.bdf)
  return d
end)

step("a synced write to vdb lands in the image file", function()
  vm:run("echo " .. marker .. " | dd of=/dev/vdb bs=512 seek=4096 conv=sync,fsync 2>/dev/null")
  local f = assert(io.open(image, "rb"))
  f:seek("set", 4096 * 512)
  local got = f:read(#marker)
  f:close()
  expect.eq(got, marker, "the image's bytes at 2 MiB")
end)

step("bad requests are answered; the guest runs on", function()
  local status, _, err = vm:add_disk{path = image, id = "hot"}
  expect.eq(status, 409, "duplicate id")
  expect.match(err, "not unique")
  status, _, err = vm:add_disk{path = "/nonexistent.img"}
  expect.eq(status, 400, "missing image")
  status, err = vm:remove_device("nothing")
  expect.eq(status, 404, "unknown id")
  status = vm:api("PUT", "vm.add-disk", '{"path": 7}')
  expect.eq(status, 400, "wrong type")
  expect.eq(vm:run("echo alive"), "alive")
  expect.eq(#vm:info().config.disks, 2, "nothing half-added")
end)

step("a reboot keeps the disk at its address", function()
  vm:reboot()
  expect.eq(vm:wait_block(dev.bdf, 60, 0.2), "vdb")
  expect.eq(vm:run("dd if=/dev/vdb bs=512 skip=4096 count=1 2>/dev/null | head -c " .. #marker), marker)
end)

step("vm:remove_device: the guest lets it go", function()
  local status, err = vm:remove_device("hot")
  expect.eq(err, nil)
  expect.eq(status, 204)
  gone(dev.bdf, "hot")
  expect.eq(#vm:info().config.disks, 1)
end)

local base
for i = 1, cycles do
  step(string.format("cycle %d: add, bind, remove", i), function()
    local t0 = os.time()
    local status, d, err = vm:add_disk{path = image}
    expect.eq(err, nil)
    expect.eq(status, 200)
    vm:wait_block(d.bdf, 60, 0.2)
    status, err = vm:remove_device(d.id)
    expect.eq(status, 204, err)
    gone(d.bdf, d.id)
    local p = vm:process()
    if not base then
      base = p
    else
      expect.truthy(p.threads <= base.threads + 2, string.format("threads %d after cycle 1 -> %d", base.threads, p.threads))
      expect.eq(p.files, base.files, "open fds other than sockets")
    end
    say(string.format("cycle %d: %d s, %d threads, %d fds + %d sockets", i, os.time() - t0, p.threads, p.files, p.sockets))
  end)
end
