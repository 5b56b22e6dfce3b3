#!/usr/bin/env bash
# Builds the distro guest: a stock Debian 12 system (debootstrap from
# Debian's archive: systemd, udev, util-linux, procps) with the same Debian
# kernel package as the busybox guest, booted from its own disk with its own
# initramfs-tools initrd. Outputs, in CACHE/debian:
#   rootfs.ext4.gz  the root file system (ext4, gzipped; root=/dev/vda)
#   initrd.img      the initrd Debian's initramfs-tools made for the kernel
# The kernel is CACHE/guest/bzImage. The console (ttyS0) logs root in
# automatically; root's login prints the ready marker (VMM-GUEST-READY) that
# the guest package waits for, and its shell's prompt is "# ".
# Rebuilt only when this script or the kernel package changes.
# Usage: images/debian/build.sh CACHE_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=$(mkdir -p "${1:?cache dir}" && cd "$1" && pwd)
kdir=$("$here/../../scripts/fetch-kernel.sh" "$cache")
kpkg=$(basename "$kdir")
debs=("$cache/debs/${kpkg}"_*.deb)
kdeb=${debs[0]}
out=$cache/debian
sum=$( { echo "$kpkg"; cat "$0"; } | sha256sum | cut -c1-16)
if [ -f "$out/rootfs.ext4.gz" ] && [ -f "$out/initrd.img" ] && [ "$(cat "$out/.inputs" 2>/dev/null)" = "$sum" ]; then
	exit 0
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
for p in debootstrap e2fsprogs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$p" >&2
done
mkdir -p "$out"
root=$(mktemp -d "$out/root.XXXXXX")
cleanup() {
	for m in dev/pts dev proc sys; do $sudo umount "$root/$m" 2>/dev/null || true; done
	$sudo rm -rf "$root"
}
trap cleanup EXIT
echo "images: debootstrap of Debian 12 (bookworm) for the distro guest" >&2
# The packages the hot plug guide's walkthrough needs (lscpu, free, tee) and a real
# boot (systemd, udev, kmod, initramfs-tools for the initrd).
$sudo debootstrap --variant=minbase --merged-usr \
	--include=systemd,systemd-sysv,udev,util-linux,procps,kmod,initramfs-tools,linux-base,e2fsprogs,iproute2 \
	bookworm "$root" http://deb.debian.org/debian >"$out/debootstrap.log" 2>&1 ||
	{ tail -n 20 "$out/debootstrap.log" >&2; exit 1; }

# The guest's kernel package, the one the busybox guest runs: its postinst
# makes the initrd with initramfs-tools.
for m in proc sys dev dev/pts; do $sudo mkdir -p "$root/$m"; done
$sudo mount -t proc proc "$root/proc"
$sudo mount -t sysfs sysfs "$root/sys"
$sudo mount --bind /dev "$root/dev"
$sudo mount --bind /dev/pts "$root/dev/pts"
# virtio-mmio devices (the transport vmm gives its disks) and the root's
# file system, in the initrd whatever the build host has.
printf '%s\n' virtio_mmio virtio_blk ext4 | $sudo tee -a "$root/etc/initramfs-tools/modules" >/dev/null
$sudo cp "$kdeb" "$root/tmp/kernel.deb"
$sudo chroot "$root" env DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/kernel.deb >"$out/kernel-install.log" 2>&1 ||
	{ tail -n 20 "$out/kernel-install.log" >&2; exit 1; }
$sudo rm -f "$root/tmp/kernel.deb"
# Modules for hardware a vmm guest never has (graphics, sound, wireless,
# USB, SCSI, ...) leave the root file system, which shrinks by two thirds;
# the initrd keeps what initramfs-tools put in it.
kver=${kpkg#linux-image-}
mods=$root/usr/lib/modules/$kver/kernel
for d in sound drivers/gpu drivers/media drivers/net/wireless drivers/net/ethernet drivers/infiniband \
	drivers/staging drivers/isdn drivers/usb drivers/scsi drivers/bluetooth drivers/iio drivers/hid \
	drivers/mtd drivers/mmc drivers/input drivers/nfc drivers/video drivers/target drivers/thermal \
	drivers/hwmon drivers/platform drivers/ata drivers/misc net/wireless net/mac80211 net/bluetooth; do
	$sudo rm -rf "${mods:?}/$d"
done
$sudo chroot "$root" depmod -a "$kver"
for m in dev/pts dev sys proc; do $sudo umount "$root/$m"; done

# The system's own configuration: the root disk, a name, root without a
# password, logged in on the serial console at boot.
echo "/dev/vda / ext4 defaults 0 1" | $sudo tee "$root/etc/fstab" >/dev/null
echo debian | $sudo tee "$root/etc/hostname" >/dev/null
$sudo chroot "$root" passwd -d root >/dev/null
$sudo mkdir -p "$root/etc/systemd/system/serial-getty@ttyS0.service.d"
$sudo tee "$root/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf" >/dev/null <<'EOF'
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200,57600,38400,9600 %I $TERM
EOF
# A plain prompt and no bracketed paste, so that a program can drive the
# shell (the guest package wraps each command in markers).
$sudo tee "$root/root/.bash_profile" >/dev/null <<'EOF'
# Written by images/debian/build.sh: tells the test driver the shell is up.
export PS1='# '
echo VMM-GUEST-READY
EOF
echo 'set enable-bracketed-paste off' | $sudo tee -a "$root/etc/inputrc" >/dev/null
# Timers that would start work in the middle of a test.
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer man-db.timer; do
	$sudo ln -sf /dev/null "$root/etc/systemd/system/$u"
done
echo "vmm distro guest (Debian 12)" | $sudo tee "$root/etc/vmm-rootfs" >/dev/null
$sudo rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc "$root"/usr/share/man

$sudo cp "$root/boot/initrd.img-$kver" "$out/initrd.img.tmp"
# The file system: what the tree takes plus room to work in.
mb=$(($($sudo du -sm "$root" | cut -f1) * 13 / 10 + 256))
rm -f "$out/rootfs.ext4"
mkfs.ext4 -q -F -L debian -E root_owner=0:0 -d "$root" "$out/rootfs.ext4" "${mb}M" >/dev/null
gzip -1 -n <"$out/rootfs.ext4" >"$out/rootfs.ext4.gz.tmp"
rm -f "$out/rootfs.ext4"
mv "$out/rootfs.ext4.gz.tmp" "$out/rootfs.ext4.gz"
mv "$out/initrd.img.tmp" "$out/initrd.img"
echo "$sum" >"$out/.inputs"
echo "images: $out/rootfs.ext4.gz (Debian 12, ext4, $mb MiB) and initrd.img" >&2
