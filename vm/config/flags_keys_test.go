package config

import (
	"reflect"
	"strings"
	"testing"
)

// TestEveryKeyOfEveryFlagParses runs each of Cloud Hypervisor's keys of
// --cpus, --memory, --disk, --net, --rng, --platform, --serial, --console
// and --debug-console through its parser: a known key lands in its field,
// a mistake is refused naming the flag and the key.
func TestEveryKeyOfEveryFlagParses(t *testing.T) {
	yes, no := true, false
	u8 := func(n uint8) *uint8 { return &n }
	fd := 7
	for _, c := range []struct {
		name  string
		parse func() (any, error)
		want  any    // the parsed value, when accepted
		err   string // part of the error, when refused
	}{
		{"cpus boot and max", func() (any, error) { return ParseCPUs("boot=2,max=8") }, CPUs{BootVCPUs: 2, MaxVCPUs: 8}, ""},
		{"cpus max defaults to boot", func() (any, error) { return ParseCPUs("boot=3") }, CPUs{BootVCPUs: 3, MaxVCPUs: 3}, ""},
		{"cpus topology", func() (any, error) { return ParseCPUs("boot=8,topology=2:2:1:2") },
			CPUs{BootVCPUs: 8, MaxVCPUs: 8, Topology: &CPUTopology{ThreadsPerCore: 2, CoresPerDie: 2, DiesPerPackage: 1, Packages: 2}}, ""},
		{"cpus topology of three parts", func() (any, error) { return ParseCPUs("topology=2:2:2") }, nil, "--cpus: topology=2:2:2"},
		{"cpus kvm_hyperv, max_phys_bits, nested", func() (any, error) { return ParseCPUs("kvm_hyperv=on,max_phys_bits=40,nested=off") },
			CPUs{BootVCPUs: 1, MaxVCPUs: 1, KVMHyperV: true, MaxPhysBits: 40, Nested: &no}, ""},
		{"cpus affinity", func() (any, error) { return ParseCPUs("boot=2,affinity=[0@[0-2],1@[4,6]]") },
			CPUs{BootVCPUs: 2, MaxVCPUs: 2, Affinity: []CPUAffinity{{VCPU: 0, HostCPUs: []uint{0, 1, 2}}, {VCPU: 1, HostCPUs: []uint{4, 6}}}}, ""},
		{"cpus features", func() (any, error) { return ParseCPUs("features=amx") }, CPUs{BootVCPUs: 1, MaxVCPUs: 1, Features: CPUFeatures{AMX: true}}, ""},
		{"cpus unknown feature", func() (any, error) { return ParseCPUs("features=[avx]") }, nil, `--cpus: features=[avx]: unknown feature "avx"`},
		{"cpus core_scheduling and profile", func() (any, error) { return ParseCPUs("core_scheduling=vcpu,profile=host") },
			CPUs{BootVCPUs: 1, MaxVCPUs: 1, CoreScheduling: CoreSchedulingVCPU, Profile: ProfileHost}, ""},
		{"cpus unknown key", func() (any, error) { return ParseCPUs("boot=1,sockets=2") }, nil, "--cpus: Unknown option: sockets"},
		{"cpus bad number", func() (any, error) { return ParseCPUs("boot=two") }, nil, "--cpus: boot=two"},
		{"memory every toggle", func() (any, error) {
			return ParseMemory("size=1G,mergeable=on,shared=on,hugepages=on,hugepage_size=2M,prefault=on,thp=off,reserve=on,file=/ignored")
		}, Memory{Size: 1 << 30, Mergeable: true, Shared: true, Hugepages: true, HugepageSize: 2 << 20, Prefault: true, THP: &no, Reserve: true}, ""},
		{"memory hot plug", func() (any, error) {
			return ParseMemory("size=512M,hotplug_method=virtio-mem,hotplug_size=8G,hotplugged_size=1G")
		}, Memory{Size: 512 << 20, HotplugMethod: HotplugVirtioMem, HotplugSize: 8 << 30, HotpluggedSize: 1 << 30}, ""},
		{"memory lower-case size", func() (any, error) { return ParseMemory("size=1g") }, nil, "--memory: size=1g: invalid size"},
		{"memory toggle yes", func() (any, error) { return ParseMemory("shared=yes") }, nil, `--memory: shared=yes: "yes" is not on, off, true or false`},
		{"memory unknown method", func() (any, error) { return ParseMemory("hotplug_method=dimm") }, nil, "--memory: hotplug_method=dimm: unknown value"},
		{"disk every key", func() (any, error) {
			return ParseDisk(`path=/d.img,readonly=on,direct=on,id=root,image_type=raw,queue_size=64,num_queues=1,serial=abc,` +
				`_disable_io_uring=on,_disable_aio=true,backing_files=off,sparse=off,lock_granularity=full,pci_segment=0,pci_device_id=5,iommu=off,` +
				`bw_size=1000,bw_refill_time=10,rate_limit_group=g,queue_affinity=[0@[1]]`)
		}, Disk{Path: "/d.img", Readonly: true, Direct: true, PCIDevice: PCIDevice{ID: "root", PCIDeviceID: u8(5)}, ImageType: ImageRaw,
			QueueSize: 64, NumQueues: 1, Serial: "abc", DisableIOUring: true, DisableAIO: true, Sparse: &no, LockGranularity: "Full",
			RateLimiterConfig: &RateLimiter{Bandwidth: &TokenBucket{Size: 1000, RefillTime: 10}}, RateLimitGroup: "g",
			QueueAffinity: []VirtQueueAffinity{{QueueIndex: 0, HostCPUs: []uint{1}}}}, ""},
		{"disk vhost-user", func() (any, error) { return ParseDisk("vhost_user=on,socket=/s") }, Disk{VhostUser: true, VhostSocket: "/s"}, ""},
		{"disk qcow2", func() (any, error) { return ParseDisk("path=/d,image_type=qcow2") }, Disk{Path: "/d", ImageType: "Qcow2"}, ""},
		{"disk without path", func() (any, error) { return ParseDisk("readonly=on") }, nil, "--disk: path= is required"},
		{"disk unknown key", func() (any, error) { return ParseDisk("path=/d,cache=none") }, nil, "--disk: Unknown option: cache"},
		{"net every key", func() (any, error) {
			return ParseNet("tap=t0,ip=10.0.0.1,mask=255.255.255.0,mac=52:54:00:00:00:01,host_mac=52:54:00:00:00:02,mtu=1500," +
				"offload_tso=off,offload_ufo=off,offload_csum=on,num_queues=2,queue_size=256,vhost_mode=server,id=n0,fd=[3,4],ops_size=5,ops_refill_time=100")
		}, Net{Tap: "t0", IP: "10.0.0.1", Mask: "255.255.255.0", MAC: "52:54:00:00:00:01", HostMAC: "52:54:00:00:00:02", MTU: 1500,
			OffloadTSO: &no, OffloadUFO: &no, OffloadCSUM: &yes, NumQueues: 2, QueueSize: 256, VhostMode: "Server", PCIDevice: PCIDevice{ID: "n0"},
			FDs: []int{3, 4}, RateLimiterConfig: &RateLimiter{Ops: &TokenBucket{Size: 5, RefillTime: 100}}}, ""},
		{"net empty values", func() (any, error) { return ParseNet("tap=,mac=,ip=,mask=") }, Net{}, ""},
		{"net unknown key", func() (any, error) { return ParseNet("tap=t0,model=e1000") }, nil, "--net: Unknown option: model"},
		{"rng", func() (any, error) { return ParseRNG("src=/dev/hwrng,id=rng0,iommu=off") }, RNG{Src: "/dev/hwrng", PCIDevice: PCIDevice{ID: "rng0"}}, ""},
		{"rng default source", func() (any, error) { return ParseRNG("") }, RNG{Src: DefaultRNGSource}, ""},
		{"platform", func() (any, error) {
			return ParsePlatform(`num_pci_segments=2,iommu_segments=[1],iommu_address_width=48,serial_number=s,uuid=u,oem_strings=[a,b],` +
				`tdx=off,sev_snp=off,system_manufacturer=m,system_product_name=p,system_version=v,system_serial_number=sn,system_uuid=su,` +
				`system_sku_number=k,system_family=f,chassis_asset_tag=c,iommufd_fd=7,vfio_p2p_dma=off`)
		}, Platform{NumPCISegments: 2, IOMMUSegments: []uint16{1}, IOMMUAddressWidthBits: 48, SerialNumber: "s", UUID: "u",
			OEMStrings: []string{"a", "b"}, SystemManufacturer: "m", SystemProductName: "p", SystemVersion: "v", SystemSerialNumber: "sn",
			SystemUUID: "su", SystemSKUNumber: "k", SystemFamily: "f", ChassisAssetTag: "c", IOMMUFD: true, IOMMUFDFD: &fd, VFIOP2PDMA: &no}, ""},
		{"platform unknown key", func() (any, error) { return ParsePlatform("smbios=on") }, nil, "--platform: Unknown option: smbios"},
		{"serial pty", func() (any, error) { return ParseSerial("pty") }, Serial{Mode: ModePty}, ""},
		{"serial socket", func() (any, error) { return ParseSerial("socket=/tmp/s.sock") }, Serial{Mode: ModeSocket, Socket: "/tmp/s.sock"}, ""},
		{"serial socket without a path", func() (any, error) { return ParseSerial("socket=") }, nil, "Path missing when using socket console mode"},
		{"serial file without a path", func() (any, error) { return ParseSerial("file=") }, nil, "Path missing when using file console mode"},
		{"serial with iommu", func() (any, error) { return ParseSerial("null,iommu=off") }, Serial{Mode: ModeNull}, ""},
		{"serial two modes", func() (any, error) { return ParseSerial("tty,null") }, nil, "--serial: two modes"},
		{"serial bad mode", func() (any, error) { return ParseSerial("vga") }, nil, "--serial: \"vga\""},
		{"console tty", func() (any, error) { return ParseConsole("TTY") }, Console{Mode: ModeTty}, ""},
		{"console file with id", func() (any, error) { return ParseConsole("file=/c.log,id=con0") },
			Console{Mode: ModeFile, File: "/c.log", PCIDevice: PCIDevice{ID: "con0"}}, ""},
		{"console socket parses", func() (any, error) { return ParseConsole("socket=/c.sock") }, Console{Mode: ModeSocket, Socket: "/c.sock"}, ""},
		{"debug console", func() (any, error) { return ParseDebugConsole("file=/d.log,iobase=0xe9") }, DebugConsole{Mode: ModeFile, File: "/d.log", IOBase: 0xe9}, ""},
		{"debug console decimal iobase", func() (any, error) { return ParseDebugConsole("tty,iobase=233") }, nil, "a `0x` prefix is missing: 233"},
	} {
		got, err := c.parse()
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v, want an error with %q", c.name, err, c.err)
			}
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		case !reflect.DeepEqual(got, c.want):
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
}

func TestOptionSyntaxFollowsCloudHypervisors(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"a=1,b=2", []string{"a=1", "b=2"}},
		{"affinity=[0@[1,2],1@[3]],boot=2", []string{"affinity=[0@[1,2],1@[3]]", "boot=2"}},
		{`cmdline="a,b",x=1`, []string{`cmdline="a,b"`, "x=1"}},
		{"", nil},
	} {
		if got := splitOptions(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("splitOptions(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := unquote(`"a ""b"" c"`); got != `a "b" c` {
		t.Errorf("unquote = %q", got)
	}
	for in, want := range map[string]uint64{"1": 1, "4K": 4 << 10, "512M": 512 << 20, "2G": 2 << 30} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v", in, got, err)
		}
	}
	for _, bad := range []string{"1T", "1k", "1KiB", "1.5G", "-1", ""} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
	for in, want := range map[string]bool{"on": true, "ON": true, "true": true, "off": false, "False": false} {
		if got, err := ParseToggle(in); err != nil || got != want {
			t.Errorf("ParseToggle(%q) = %v, %v", in, got, err)
		}
	}
}
