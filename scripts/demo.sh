#!/usr/bin/env bash
# make demo: boots the default guest on real KVM, resizes it live and shows
# the guest's view, narrated step by step (scenarios/demo.lua).
set -euo pipefail
cd "$(dirname "$0")/.."
# The KVM host's emulator that make emulator chose (empty: none needed).
export KVMHOST_QEMU=${KVMHOST_QEMU:-$(cat "${BUILD:-.build}/emulator" 2>/dev/null)}
if [ ! -f scenarios/demo.lua ]; then
	echo "make demo: not yet (the walkthrough lands with the Lua scenarios and hot plug issues)"
	exit 0
fi
exec .build/kvmhost -mode "${KVMHOST_MODE:-auto}" -timeout 20m -results .build/demo \
	-file .build/vmm:bin/vmm -file .build/vmmctl:bin/vmmctl \
	-file .cache/guest/bzImage:guest/bzImage \
	-file .cache/guest/initramfs.cpio.gz:guest/initramfs.cpio.gz \
	-dir scenarios:scenarios \
	-env 'VMM_BIN=$PAYLOAD/bin/vmm' -env 'VMMCTL_BIN=$PAYLOAD/bin/vmmctl' \
	-env 'VMM_GUEST_KERNEL=$PAYLOAD/guest/bzImage' \
	-env 'VMM_GUEST_INITRAMFS=$PAYLOAD/guest/initramfs.cpio.gz' \
	-- ./bin/vmmctl run scenarios/demo.lua
