#!/usr/bin/env bash
# Prints the path of the QEMU that runs the emulated KVM host: Debian's own
# qemu-system-x86_64 rebuilt from its source package with tcg-fixes.patch
# (fixes to its TCG emulation of x86 and nested SVM, see the patch and
# docs/testing.md), built once and cached outside the clone, so that later
# clones and CI runs on this machine reuse it. When it cannot be built, it
# says why on stderr and prints Debian's binary instead.
#
# Usage: images/emulator/build.sh            (build if needed, print the path)
#        VMM_EMULATOR=stock images/emulator/build.sh   (print Debian's binary)
# The cache is $VMM_EMULATOR_CACHE, by default ~/.cache/vmm/emulator, keyed
# by the source version, the patch and this script.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
stock=$(command -v qemu-system-x86_64 || echo /usr/bin/qemu-system-x86_64)
if [ "${VMM_EMULATOR:-patched}" = stock ]; then
	echo "$stock"
	exit 0
fi
fallback() {
	echo "emulator: $*; using Debian's unpatched $stock" >&2
	echo "$stock"
	exit 0
}

# The source of the installed binary package, so the patched build differs
# from Debian's only by the patch.
version=$(dpkg-query -W -f='${source:Version}' qemu-system-x86 2>/dev/null) || fallback "qemu-system-x86 is not installed"
key=$( { echo "$version"; cat "$here/tcg-fixes.patch" "$0"; } | sha256sum | cut -c1-12)
cache=${VMM_EMULATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmm/emulator}
out=$cache/qemu-${version#*:}-$key
bin=$out/qemu-system-x86_64
if [ -x "$bin" ] && [ -f "$out/.done" ]; then
	echo "$bin"
	exit 0
fi
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9 # one build at a time; the loser finds the winner's result
if [ -x "$bin" ] && [ -f "$out/.done" ]; then
	echo "$bin"
	exit 0
fi

sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
builddeps=(dpkg-dev gcc ninja-build meson pkg-config python3-venv flex bison libglib2.0-dev libpixman-1-dev libfdt-dev)
missing=()
for p in "${builddeps[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "emulator: installing the build's packages: ${missing[*]}" >&2
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
		{ $sudo apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; } ||
		fallback "cannot install ${missing[*]}"
fi

# Debian's source package, through a private apt configuration (deb-src
# lines for the suites the system's sources name), so that the system's
# own apt setup is left as it is.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/apt/parts" "$work/apt/lists/partial" "$work/apt/cache"
cat >"$work/apt/parts/src.sources" <<EOF
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
apt=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/apt/parts"
	-o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache" -o APT::Sandbox::User=root)
echo "emulator: building Debian's qemu $version with images/emulator/tcg-fixes.patch (a few minutes, once)" >&2
apt-get -qq "${apt[@]}" update >&2 || fallback "apt-get update of the source lists failed"
(cd "$work" && apt-get -qq "${apt[@]}" source --download-only "qemu=$version" >&2) || fallback "no source package qemu=$version"
(cd "$work" && dpkg-source -x qemu_*.dsc src >/dev/null) || fallback "dpkg-source -x failed"
(cd "$work/src" && patch -p1 -s <"$here/tcg-fixes.patch") || fallback "tcg-fixes.patch does not apply to $version"
mkdir -p "$work/src/build"
(
	cd "$work/src/build"
	# TCG only, x86_64 system emulation, the firmware from Debian's
	# packages (seabios, qemu-system-data) as Debian's build finds it.
	../configure --target-list=x86_64-softmmu --without-default-features --disable-docs \
		--enable-tcg --disable-kvm --disable-xen --disable-user --enable-fdt=system \
		--firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu >"$work/configure.log" 2>&1 &&
		ninja qemu-system-x86_64 >"$work/build.log" 2>&1
) || { tail -n 20 "$work"/*.log >&2; fallback "the build failed"; }
rm -rf "$out" && mkdir -p "$out"
cp "$work/src/build/qemu-system-x86_64" "$bin"
cp "$here/tcg-fixes.patch" "$out/"
echo "$version" >"$out/.done"
echo "emulator: $bin" >&2
echo "$bin"
