#!/usr/bin/env bash
# Builds the guest (L2) kernel and initramfs, the same kernel as an ELF
# vmlinux (images/extract-vmlinux.sh), the distro guest (a Debian
# system, images/debian) and the KVM host (L1) initramfs
# into CACHE/guest and CACHE/kvmhost, from Debian's packages only. Each image
# is rebuilt only when its inputs change: the kernel package that
# linux-image-amd64 depends on today, busybox, the init script, the module
# list, the guest agent (cmd/vmm-agent) and these scripts.
# Usage: images/build.sh CACHE_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=$(mkdir -p "${1:?cache dir}" && cd "$1" && pwd)
kdir=$("$here/../scripts/fetch-kernel.sh" "$cache")
kernel=$(echo "$kdir"/boot/vmlinuz-*)

# Modules each image loads at boot (dependencies are added by the builder,
# from the .ko files' depends=: virtio_pci brings virtio_pci_modern_dev and
# virtio_pci_legacy_dev). The transports come before the devices' drivers:
# the disks, nets and rng are on PCI by default, on virtio-mmio with
# --virtio-transport mmio.
# vmw_vsock_virtio_transport (with its depends= vsock and
# vmw_vsock_virtio_transport_common) serves the vsock device, where the
# guest agent listens. virtio_mem and virtio_balloon serve the RAM that
# changes live (docs/hotplug.md); virtio_mem comes last, after the init
# has told the kernel how to online what it adds (images/guest-init).
guest_modules="virtio_mmio virtio_pci virtio_blk virtio_net virtio_rng virtio_console crc32c_generic ext4 vmw_vsock_virtio_transport virtio_balloon virtio_mem"
# vhost_vsock (with vhost and the vsock core) gives QEMU's guest in the vsock
# benchmark its vhost-vsock-pci device, and the KVM host AF_VSOCK to reach it.
kvmhost_modules="irqbypass ccp kvm kvm_amd tun vhost_vsock"

# The guest agent (cmd/vmm-agent): a static Go program, built again only
# when the Go files it is made of, go.mod, go.sum or the Go version change.
agent() {
	local out=$cache/agent/vmm-agent sum files
	files=$(cd "$here/.." && go list -deps -f '{{if not .Standard}}{{range .GoFiles}}{{$.Dir}}/{{.}} {{end}}{{end}}' ./cmd/vmm-agent)
	# shellcheck disable=SC2086
	sum=$( { go version; cat $files "$here/../go.mod" "$here/../go.sum"; } | sha256sum | cut -c1-16)
	mkdir -p "$cache/agent"
	if [ -f "$out" ] && [ "$(cat "$cache/agent/.inputs" 2>/dev/null)" = "$sum" ]; then
		return 0
	fi
	(cd "$here/.." && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out.tmp" ./cmd/vmm-agent)
	mv "$out.tmp" "$out"
	echo "$sum" >"$cache/agent/.inputs"
	echo "images: $out (the guest agent)" >&2
}
agent

# build NAME INIT OUT MODULES [BINARIES]: one image, skipped when its input hash is unchanged.
build() {
	local name=$1 init=$2 out=$3 mods=$4 bins=${5:-} sum
	sum=$( { echo "$kdir $mods $bins"; dpkg-query -W busybox-static $bins 2>/dev/null; cat "$init" "$here/build-initramfs.sh" "$0"; } | sha256sum | cut -c1-16)
	case " $bins " in *" $cache/agent/vmm-agent "*) sum="$sum $(cut -c1-16 "$cache/agent/.inputs")" ;; esac
	mkdir -p "$cache/$name"
	if [ -f "$out" ] && [ "$(cat "$cache/$name/.inputs" 2>/dev/null)" = "$sum" ]; then
		return 0
	fi
	# shellcheck disable=SC2086
	BINARIES="$bins" "$here/build-initramfs.sh" "$kdir" "$init" "$out" $mods
	cp "$kernel" "$cache/$name/bzImage"
	echo "$sum" >"$cache/$name/.inputs"
}
build guest "$here/guest-init" "$cache/guest/initramfs.cpio.gz" "$guest_modules" "$cache/agent/vmm-agent"

# The guest's root disk for root=/dev/vda (disk specs, benchmarks and
# scenarios that boot from it): an ext4 file system
# holding the guest initramfs's tree plus /etc/vmm-rootfs, shipped gzipped
# (it is mostly empty) and rebuilt with the initramfs.
rootfs() {
	local out=$cache/guest/rootfs.ext4.gz sum tree mkfs
	mkfs=$(command -v mkfs.ext4 || echo /sbin/mkfs.ext4)
	sum="$(cat "$cache/guest/.inputs") $("$mkfs" -V 2>&1 | sed -n 1p)"  # sed reads it all: no SIGPIPE under pipefail
	if [ -f "$out" ] && [ "$(cat "$cache/guest/.rootfs-inputs" 2>/dev/null)" = "$sum" ]; then
		return 0
	fi
	tree=$(mktemp -d)
	(cd "$tree" && gzip -dc "$cache/guest/initramfs.cpio.gz" | cpio -id --quiet --no-absolute-filenames)
	echo "vmm guest root file system" >"$tree/etc/vmm-rootfs"
	rm -f "$out.img"
	"$mkfs" -q -F -L vmmroot -E root_owner=0:0 -d "$tree" "$out.img" 64M >/dev/null
	rm -rf "$tree"
	gzip -6 -n <"$out.img" >"$out.tmp" && rm -f "$out.img" && mv "$out.tmp" "$out"
	echo "$sum" >"$cache/guest/.rootfs-inputs"
	echo "images: $out (ext4, 64 MiB)" >&2
}
rootfs

# The same guest kernel as an uncompressed ELF vmlinux, booted
# through its PVH entry: extracted from the bzImage, and again whenever the
# bzImage or the extraction changes.
vmlinux() {
	local out=$cache/guest/vmlinux sum
	sum=$(cat "$cache/guest/bzImage" "$here/extract-vmlinux.sh" | sha256sum | cut -c1-16)
	if [ -f "$out" ] && [ "$(cat "$cache/guest/.vmlinux-inputs" 2>/dev/null)" = "$sum" ]; then
		return 0
	fi
	"$here/extract-vmlinux.sh" "$cache/guest/bzImage" "$out"
	echo "$sum" >"$cache/guest/.vmlinux-inputs"
	echo "images: $out (ELF with a PVH entry, from $cache/guest/bzImage)" >&2
}
vmlinux
build kvmhost "$here/kvmhost-init" "$cache/kvmhost/initramfs.cpio" "$kvmhost_modules" "curl"

# The distro guest: a Debian 12 system on its own disk (images/debian).
"$here/debian/build.sh" "$cache"
