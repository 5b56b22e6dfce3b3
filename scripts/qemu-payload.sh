#!/usr/bin/env bash
# Builds a self-contained QEMU payload directory from this machine's
# qemu-system-x86_64 (Debian's qemu-system-x86, which scripts/deps.sh
# installs), for the KVM host, which has no C library:
#   DEST/qemu-system-x86_64  the binary
#   DEST/lib/                every library ldd lists, and the dynamic loader
#   DEST/share/              the firmware the x86 machines load
#   DEST/version             what `qemu-system-x86_64 -version` said
#   DEST/run                 runs QEMU with those: DEST/run -M microvm ...
# Nothing is done when DEST/run is newer than the qemu binary.
# Usage: qemu-payload.sh DEST
set -euo pipefail
dest=${1:?usage: qemu-payload.sh DEST}
dest=${dest%/}
die() { echo "qemu-payload: $*" >&2; exit 1; }

qemu=$(command -v qemu-system-x86_64) || die "qemu-system-x86_64 is not installed (scripts/deps.sh installs it)"
qemu=$(readlink -f "$qemu")
if [ -f "$dest/run" ] && [ "$dest/run" -nt "$qemu" ]; then
	exit 0
fi

# Firmware: bios-256k.bin (SeaBIOS, pc and q35), bios-microvm.bin (microvm),
# qboot.rom, kvmvapic.bin, linuxboot_dma.bin (-kernel boot). Searched in the
# order Debian's QEMU itself searches (see `qemu-system-x86_64 -L help`), so
# the payload loads what the installed QEMU loads: Debian's
# /usr/share/qemu/bios-microvm.bin is a link to qboot.rom.
firmware=(bios-256k.bin bios-microvm.bin qboot.rom kvmvapic.bin linuxboot_dma.bin)
firmware_dirs=(/usr/share/qemu /usr/share/seabios)
# The loader that the wrapper runs; ldd must name it.
loader_name=ld-linux-x86-64.so.2

parent=$(dirname "$dest")
mkdir -p "$parent"
tmp=$(mktemp -d "$parent/.qemu-payload.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/lib" "$tmp/share"
cp "$qemu" "$tmp/qemu-system-x86_64"

# ldd prints "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" per
# library, "/lib64/ld-linux-x86-64.so.2 (0x...)" for the loader and
# "linux-vdso.so.1 (0x...)" for the kernel's vDSO, which needs no file.
ldd_out=$(ldd "$qemu") || die "ldd $qemu failed: $ldd_out"
loader=""
while read -r line; do
	case $line in
	*"not found"*) die "a library of $qemu is missing: $line" ;;
	*" => /"*)
		name=${line%% =>*}
		path=${line#* => }
		path=${path%% (*}
		cp -L "$path" "$tmp/lib/$name" || die "cannot copy $path"
		;;
	/*)
		loader=${line%% (*}
		;;
	esac
done <<<"$ldd_out"
[ -n "$loader" ] || die "ldd names no dynamic loader for $qemu"
[ "$(basename "$loader")" = "$loader_name" ] || die "dynamic loader is $loader, not $loader_name"
cp -L "$loader" "$tmp/lib/$loader_name"
chmod 0755 "$tmp/lib/$loader_name"

for f in "${firmware[@]}"; do
	src=""
	for d in "${firmware_dirs[@]}"; do
		if [ -e "$d/$f" ]; then src="$d/$f"; break; fi
	done
	[ -n "$src" ] || die "firmware $f is in none of ${firmware_dirs[*]}"
	cp -L "$src" "$tmp/share/$f" || die "cannot copy $src"
done

"$qemu" -version | head -n1 >"$tmp/version"

# Written last: its presence and time say the payload is complete.
cat >"$tmp/run" <<'WRAPPER'
#!/bin/sh
# Runs Debian's QEMU with its own libraries and firmware (the KVM host has no C library).
d=$(cd "$(dirname "$0")" && pwd)
exec "$d/lib/ld-linux-x86-64.so.2" --library-path "$d/lib" "$d/qemu-system-x86_64" -L "$d/share" "$@"
WRAPPER
chmod 0755 "$tmp/run"

rm -rf "$dest"
mv "$tmp" "$dest"
chmod 0755 "$dest"
trap - EXIT
echo "qemu-payload: $(cat "$dest/version") with $(ls "$dest/lib" | wc -l) libraries in $dest" >&2
