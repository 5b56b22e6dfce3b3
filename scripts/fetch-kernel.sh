#!/usr/bin/env bash
# Fetches Debian's stock kernel package (the one linux-image-amd64 depends on
# today) into the cache and extracts it. Prints the extraction directory.
# Usage: fetch-kernel.sh CACHE_DIR
set -euo pipefail
cache=${1:?usage: fetch-kernel.sh CACHE_DIR}
mkdir -p "$cache/debs"

resolve() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
pkg=$(resolve || true)
if [ -z "$pkg" ]; then
	echo "fetch-kernel: apt lists lack linux-image-amd64; running apt-get update" >&2
	apt-get update -qq >&2
	pkg=$(resolve)
fi
[ -n "$pkg" ] || { echo "fetch-kernel: cannot resolve the kernel package behind linux-image-amd64" >&2; exit 1; }

dir="$cache/kernel/$pkg"
if [ ! -f "$dir/.done" ]; then
	deb=$(ls "$cache/debs/${pkg}"_*.deb 2>/dev/null | head -n1 || true)
	if [ -z "$deb" ]; then
		echo "fetch-kernel: downloading $pkg" >&2
		(cd "$cache/debs" && apt-get download "$pkg" >&2) || {
			apt-get update -qq >&2 && (cd "$cache/debs" && apt-get download "$pkg" >&2)
		}
		debs=("$cache/debs/${pkg}"_*.deb)
		deb=${debs[0]}
	fi
	rm -rf "$dir" && mkdir -p "$dir"
	dpkg-deb -x "$deb" "$dir"
	touch "$dir/.done"
fi
echo "$dir"
