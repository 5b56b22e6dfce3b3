#!/usr/bin/env bash
# Installs what the build and the tests need and is missing: Debian packages
# (with apt) and Go modules (from the module proxy). Safe to run every time.
set -euo pipefail
pkgs=(qemu-system-x86 busybox-static cpio acpica-tools file curl gzip e2fsprogs iproute2 xz-utils zstd binutils)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "deps: installing ${missing[*]}" >&2
	sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
command -v go >/dev/null || { echo "deps: Go is not installed (see README)" >&2; exit 1; }
go mod download
