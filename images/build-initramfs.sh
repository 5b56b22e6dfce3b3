#!/usr/bin/env bash
# Builds a busybox initramfs from Debian's packages.
# Usage: [BINARIES="..."] build-initramfs.sh KERNEL_DIR INIT_SCRIPT OUT.cpio[.gz] MODULE...
#   KERNEL_DIR   the extracted linux-image package (from fetch-kernel.sh)
#   INIT_SCRIPT  becomes /init
#   MODULE       module names to load at boot; their depends= are added
#                first, in dependency order, into /etc/modules (one path a
#                line), since the package ships no modules.dep.
#   BINARIES     programs of this machine to add, with the shared libraries
#                ldd names for them (for the KVM host: curl), or paths of
#                static programs (the guest agent), into /usr/bin.
set -euo pipefail
kdir=${1:?kernel dir}; init=${2:?init script}; out=${3:?output}; shift 3
busybox=/bin/busybox
[ -x "$busybox" ] && [[ "$(file -L "$busybox")" == *"statically linked"* ]] || {
	echo "build-initramfs: $busybox is not a static busybox: apt-get install busybox-static" >&2; exit 1; }

moddir=$(echo "$kdir"/lib/modules/*)
[ -d "$moddir/kernel" ] || { echo "build-initramfs: no modules in $kdir" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,root,lib/modules,usr/bin,usr/sbin,run,mnt}

# modfile NAME: the .ko path of a module (file names may use - for _).
modfile() {
	local pat=${1//_/[-_]}
	find "$moddir/kernel" -name "$pat.ko" -print -quit
}
declare -A seen=()
order=()
add() {
	local name=${1//-/_} f deps d
	[ -n "${seen[$name]:-}" ] && return 0
	seen[$name]=1
	f=$(modfile "$name")
	[ -n "$f" ] || { echo "build-initramfs: module $name not found" >&2; exit 1; }
	deps=$(tr '\0' '\n' <"$f" | sed -n 's/^depends=//p' | tr ',' ' ')
	for d in $deps; do add "$d"; done
	cp "$f" "$root/lib/modules/$name.ko"
	order+=("/lib/modules/$name.ko")
}
for m in "$@"; do add "$m"; done
printf '%s\n' "${order[@]}" >"$root/etc/modules"

cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
	[ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
for b in ${BINARIES:-}; do
	p=$(command -v "$b") || { echo "build-initramfs: $b not found (make deps installs it)" >&2; exit 1; }
	install -D -m 0755 "$p" "$root/usr/bin/$(basename "$b")"
	case "$(file -L "$p")" in *'statically linked'*) continue ;; esac
	for lib in $(ldd "$p" | grep -o '/[^ ]*'); do
		[ -e "$root$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
	done
done
install -m 0755 "$init" "$root/init"
echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"

tmp="$out.tmp"
case "$out" in
*.gz) (cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -6 -n) >"$tmp" ;;
*) (cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$tmp" ;;
esac
mv "$tmp" "$out"
echo "build-initramfs: $out (${#order[@]} modules)" >&2
