#!/usr/bin/env bash
# make bench: the benchmarks (Ginkgo label "benchmark") in two KVM hosts,
# vmm and QEMU taking turns on the same kernel and initramfs, then
# cmd/benchreport: bench/results.md (the table), bench/results.json and
# bench/chart.png. A measurement that could not be taken fails the run.
# VMM_BENCH_RUNS sets the runs per VMM (5). The device benchmark measures
# both virtio transports, vmm's PCI beside QEMU q35's virtio-pci and its
# virtio-mmio beside QEMU microvm's (half the runs); VMM_BENCH_TRANSPORT
# (pci or mmio) keeps one, and then the other's metrics are not required.
set -euo pipefail
cd "$(dirname "$0")/.."
# The KVM host's emulator that make emulator chose (empty: none needed).
export KVMHOST_QEMU=${KVMHOST_QEMU:-$(cat "${BUILD:-.build}/emulator" 2>/dev/null)}
B=${BUILD:-.build} C=${CACHE:-.cache}
scripts/qemu-payload.sh "$C/qemu"
go build -o "$B/benchreport" ./cmd/benchreport
rm -rf "$B/bench" "$B/bench-io"
# bench_host RESULTS FILTER: one KVM host running the benchmarks FILTER picks.
bench_host() {
	"$B/kvmhost" -mode "${KVMHOST_MODE:-auto}" -timeout 55m -results "$1" -attempts "${BENCH_HOST_ATTEMPTS:-3}" \
		-file "$B/e2e.test:bin/e2e.test" -file "$B/vmm:bin/vmm" -file "$B/vmmctl:bin/vmmctl" \
		-file "$C/guest/bzImage:guest/bzImage" -file "$C/guest/initramfs.cpio.gz:guest/initramfs.cpio.gz" \
		-file "$C/guest/vmlinux:guest/vmlinux" -env 'VMM_GUEST_VMLINUX=$PAYLOAD/guest/vmlinux' \
		-dir "$C/qemu:qemu" \
		-env 'VMM_BIN=$PAYLOAD/bin/vmm' -env 'VMMCTL_BIN=$PAYLOAD/bin/vmmctl' \
		-env 'VMM_GUEST_KERNEL=$PAYLOAD/guest/bzImage' \
		-env 'VMM_GUEST_INITRAMFS=$PAYLOAD/guest/initramfs.cpio.gz' \
		-env 'VMM_QEMU=$PAYLOAD/qemu/run' -env VMM_BENCH=1 -env "VMM_BENCH_RUNS=${VMM_BENCH_RUNS:-5}" \
		-env "VMM_BENCH_TRANSPORT=${VMM_BENCH_TRANSPORT:-}" \
		-- ./bin/e2e.test -test.v -ginkgo.v -ginkgo.no-color -ginkgo.timeout=53m \
		"-ginkgo.label-filter=$2" || true
}
# Boot and hot plug first; the device benchmark's bulk traffic is what most
# often breaks the emulated KVM host, so it gets a KVM
# host of its own and cannot cost the others their samples.
bench_host "$B/bench" 'benchmark && !io'
bench_host "$B/bench-io" 'benchmark && io'
# Every metric of the report must have samples from both VMMs, except vmm's
# own time to its first KVM_RUN, which QEMU reports only when traced.
req="boot: process start to ready marker,boot: process start to first KVM_RUN"
req+=",boot: process start to ready marker (vmlinux; PVH),boot: process start to first KVM_RUN (vmlinux; PVH)@vmm"
req+=",CPU hot add (4): request to present,CPU hot add (4): request to online,CPU hot remove (4): request to gone"
req+=",memory hot add 128M: request to MemTotal grown,memory hot add 2G: request to MemTotal grown"
# virtio-mem: vmm's device beside QEMU's virtio-mem-pci, both with 2 MiB blocks.
req+=",virtio-mem +2G: request to MemTotal grown,virtio-mem -2G: request to MemTotal back"
req+=",VMM overhead: RSS minus guest memory; idle,API round trip p50 (vmm.ping; QMP query-status),API round trip p99"
req+=",VMM overhead: RSS minus guest memory; idle; 1 vCPU; 128 MiB"
req+=",add-disk: request to block device in the guest (vm.add-disk; device_add virtio-blk-pci)"
# Scale: vmm alone (QEMU is not laid out for it here).
req+=",scale: VMM overhead; max 8 vCPUs and 8 GiB hot plug space@vmm"
req+=",scale: VMM overhead; max 254 vCPUs and 512 GiB hot plug space@vmm"
req+=",scale: resize 1 -> 64 vCPUs: request to present@vmm,scale: VMM overhead with 64 vCPUs@vmm"
for t in PCI virtio-mmio; do
	case ${VMM_BENCH_TRANSPORT:-} in pci) [ $t = PCI ] || continue ;; mmio) [ $t = virtio-mmio ] || continue ;; esac
	req+=",disk write on $t (dd 1M blocks; fsync),disk read on $t (dd 1M blocks; cold cache)"
	req+=",network TCP guest to host on $t,network TCP host to guest on $t"
done
# vsock: vmm's hybrid vsock beside QEMU's vhost-vsock (the KVM host loads vhost_vsock).
req+=",vsock guest to host (one stream),vsock host to guest (one stream)"
req+=",guest command round trip: agent over vsock,guest command round trip: serial shell"
mkdir -p bench
"$B/benchreport" -require "$req" -md bench/results.md -json bench/results.json -png bench/chart.png \
	"$B/bench/console.log" "$B/bench-io/console.log"
