#!/usr/bin/env bash
# make demo: boots the default guest on real KVM, resizes it live and shows
# the guest's view, narrated step by step (scenarios/demo.lua). A run that
# fails with a fault recognised as the emulated KVM host's (a broken KVM
# host, or guest.EmulationFaultMarker in the failure) is run once more, and
# says so; any other failure fails at once.
set -uo pipefail
cd "$(dirname "$0")/.."
# The KVM host's emulator that make emulator chose (empty: none needed).
export KVMHOST_QEMU=${KVMHOST_QEMU:-$(cat "${BUILD:-.build}/emulator" 2>/dev/null)}
log=.build/demo.log
demo() {
	.build/kvmhost -mode "${KVMHOST_MODE:-auto}" -timeout 20m -results .build/demo -attempts 2 \
		-file .build/vmm:bin/vmm -file .build/vmmctl:bin/vmmctl \
		-file .cache/guest/bzImage:guest/bzImage \
		-file .cache/guest/initramfs.cpio.gz:guest/initramfs.cpio.gz \
		-dir scenarios:scenarios \
		-env 'VMM_BIN=$PAYLOAD/bin/vmm' -env 'VMMCTL_BIN=$PAYLOAD/bin/vmmctl' \
		-env 'VMM_GUEST_KERNEL=$PAYLOAD/guest/bzImage' \
		-env 'VMM_GUEST_INITRAMFS=$PAYLOAD/guest/initramfs.cpio.gz' \
		-- ./bin/vmmctl run scenarios/demo.lua 2>&1 | tee "$log"
	return "${PIPESTATUS[0]}"
}
demo && exit 0
why=$(grep -m1 -o 'EMULATION FAULT: .*' "$log")
[ -n "$why" ] || exit 1
echo "make demo: the emulated KVM host faulted (${why#EMULATION FAULT: }); running the demo once more"
demo
