#!/usr/bin/env bash
# Extracts the uncompressed ELF vmlinux from a bzImage, the way the kernel's
# scripts/extract-vmlinux does, but from the payload the setup header
# locates (payload_offset at 0x248 and payload_length at 0x24c, boot
# protocol 2.08 and later, after the (setup_sects+1)*512 bytes of setup)
# rather than by scanning for a magic; the payload's magic picks the
# decompressor (XZ, ZSTD or gzip: Debian's 6.1 kernels use XZ). Keeps the
# ELF up to its section headers (a relocatable kernel appends its
# relocations after it) and checks the result: an ELF64 with the PVH entry
# note (owner "Xen", type 0x12 XEN_ELFNOTE_PHYS32_ENTRY), which vmm boots.
# Usage: images/extract-vmlinux.sh BZIMAGE OUT
set -euo pipefail
bz=${1:?bzImage} out=${2:?output file}
die() { echo "extract-vmlinux: $bz: $*" >&2; rm -f "$out.tmp"; exit 1; }
# u8/u32 FILE OFFSET: a little-endian unsigned number in FILE.
u8() { od -An -tu1 -j "$2" -N1 "$1" | tr -d ' \n'; }
u32() { od -An -tu4 -j "$2" -N4 "$1" | tr -d ' \n'; }
u64() { od -An -tu8 -j "$2" -N8 "$1" | tr -d ' \n'; }
u16() { od -An -tu2 -j "$2" -N2 "$1" | tr -d ' \n'; }

[ "$(od -An -tx1 -j $((0x202)) -N4 "$bz" | tr -d ' \n')" = 48647253 ] || die 'no "HdrS" setup header: not a bzImage'
[ "$(u16 "$bz" $((0x206)))" -ge $((0x0208)) ] || die "boot protocol older than 2.08 has no payload_offset"
setup_sects=$(u8 "$bz" $((0x1f1)))
[ "$setup_sects" -ne 0 ] || setup_sects=4
start=$(((setup_sects + 1) * 512 + $(u32 "$bz" $((0x248)))))
len=$(u32 "$bz" $((0x24c)))
magic=$(od -An -tx1 -j "$start" -N6 "$bz" | tr -d ' \n')
# XZ and ZSTD payloads end with the decompressed size, 4 bytes the kernel's
# build appends (scripts/Makefile.lib: size_append); gzip's own trailer
# holds it.
case $magic in
fd377a585a00) dec=(xz -dc) trailer=4 ;;
28b52ffd*) dec=(zstd -dcq) trailer=4 ;;
1f8b08*) dec=(gzip -dc) trailer=0 ;;
*) die "payload at $start starts with $magic: not XZ, ZSTD or gzip" ;;
esac
dd if="$bz" iflag=skip_bytes,count_bytes skip="$start" count=$((len - trailer)) status=none |
	"${dec[@]}" >"$out.tmp" || die "${dec[0]} failed"
if [ "$trailer" = 4 ]; then
	want=$(u32 "$bz" $((start + len - 4)))
	[ "$(stat -c %s "$out.tmp")" = "$want" ] || die "decompressed $(stat -c %s "$out.tmp") bytes, the payload says $want"
fi
[ "$(od -An -tx1 -N5 "$out.tmp" | tr -d ' \n')" = 7f454c4602 ] || die "the payload is not an ELF64 image"
# The ELF ends with its section header table: e_shoff + e_shnum * e_shentsize.
end=$(($(u64 "$out.tmp" 40) + $(u16 "$out.tmp" 60) * $(u16 "$out.tmp" 58)))
[ "$end" -le "$(stat -c %s "$out.tmp")" ] || die "section headers end at $end, past the decompressed payload"
truncate -s "$end" "$out.tmp"
readelf -h "$out.tmp" >/dev/null || die "readelf cannot read the extracted vmlinux"
# binutils does not name Xen's note types: it prints type 0x12 as
# "Unknown note type: (0x00000012)".
notes=$(readelf -nW "$out.tmp") || die "readelf cannot read the extracted vmlinux's notes"
grep -Eq '^[[:space:]]*Xen[[:space:]]+0x[0-9a-f]+[[:space:]].*(\(0x00000012\)|PHYS32_ENTRY)' <<<"$notes" ||
	die "the vmlinux has no PVH entry note (Xen, XEN_ELFNOTE_PHYS32_ENTRY): a kernel without CONFIG_PVH"
mv "$out.tmp" "$out"
