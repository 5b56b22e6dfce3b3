#!/usr/bin/env bash
# Builds the guest (L2) kernel and initramfs and the KVM host (L1) initramfs
# into CACHE/guest and CACHE/kvmhost, from Debian's packages only. Each image
# is rebuilt only when its inputs change: the kernel package that
# linux-image-amd64 depends on today, busybox, the init script, the module
# list and these scripts.
# Usage: images/build.sh CACHE_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=$(mkdir -p "${1:?cache dir}" && cd "$1" && pwd)
kdir=$("$here/../scripts/fetch-kernel.sh" "$cache")
kernel=$(echo "$kdir"/boot/vmlinuz-*)

# Modules each image loads at boot (dependencies are added by the builder).
guest_modules="virtio_mmio virtio_blk virtio_net virtio_rng virtio_console crc32c_generic ext4"
kvmhost_modules="irqbypass ccp kvm kvm_amd tun"

# build NAME INIT OUT MODULES [BINARIES]: one image, skipped when its input hash is unchanged.
build() {
	local name=$1 init=$2 out=$3 mods=$4 bins=${5:-} sum
	sum=$( { echo "$kdir $mods $bins"; dpkg-query -W busybox-static $bins 2>/dev/null; cat "$init" "$here/build-initramfs.sh" "$0"; } | sha256sum | cut -c1-16)
	mkdir -p "$cache/$name"
	if [ -f "$out" ] && [ "$(cat "$cache/$name/.inputs" 2>/dev/null)" = "$sum" ]; then
		return 0
	fi
	# shellcheck disable=SC2086
	BINARIES="$bins" "$here/build-initramfs.sh" "$kdir" "$init" "$out" $mods
	cp "$kernel" "$cache/$name/bzImage"
	echo "$sum" >"$cache/$name/.inputs"
}
build guest "$here/guest-init" "$cache/guest/initramfs.cpio.gz" "$guest_modules"
build kvmhost "$here/kvmhost-init" "$cache/kvmhost/initramfs.cpio" "$kvmhost_modules" "curl"
