#!/usr/bin/env bash
# Runs make stress's two specs (30 cycles of 2 -> 8 -> 2 vCPUs, 100 MiB over
# TCP) N times with each emulator of the KVM host, interleaved (stock,
# patched, stock, ...), each run in a fresh KVM host with no retry of any
# kind, and writes one line per run to OUT (TSV): emulator, spec, run,
# kvmhost exit (0 pass, 1 fail, 3 broken host), seconds, and the first line
# that says why it failed. docs/testing.md holds the table it gave.
# Usage: scripts/compare-emulators.sh [N] [OUT]   (after make images build emulator)
set -uo pipefail
cd "$(dirname "$0")/.."
n=${1:-8} out=${2:-.build/compare-emulators.tsv}
# A frozen copy of the binaries, so that building meanwhile changes nothing.
B=.build/compare/bin
rm -rf "$B" && mkdir -p "$B" && cp .build/vmm .build/vmmctl .build/e2erun .build/e2e.test "$B"/
stock=$(VMM_EMULATOR=stock images/emulator/build.sh)
patched=$(images/emulator/build.sh)
[ "$stock" != "$patched" ] || { echo "compare-emulators: no patched emulator was built" >&2; exit 1; }
mkdir -p .build/compare
[ -f "$out" ] || printf 'emulator\tspec\trun\texit\tseconds\twhy\n' >"$out"
for i in $(seq 1 "$n"); do
	for emu in stock patched; do
		q=$stock
		[ $emu = patched ] && q=$patched
		for spec in cpu_stress tcp; do
			case $spec in
			cpu_stress) group=cpu focus='cpu_stress' ;;
			tcp) group=devices focus='MiB.over.TCP' ;;
			esac
			t0=$SECONDS
			BUILD=$B KVMHOST_QEMU=$q VMM_STRESS_CYCLES=30 VMM_STRESS_MAX=8 VMM_NET_MIB=100 \
				E2E_EMULATION_RETRIES=0 E2E_HOST_ATTEMPTS=1 GINKGO_FLAGS="-ginkgo.focus=$focus" \
				"$B/e2erun" "$group" >".build/compare/$emu-$spec-$i.log" 2>&1
			rc=$?
			log=$B/results/$group/console.log
			cp "$log" ".build/compare/$emu-$spec-$i.console.log" 2>/dev/null
			code=0 why=""
			if [ "$rc" != 0 ]; then
				code=1
				grep -q 'every KVM host broke' ".build/compare/$emu-$spec-$i.log" && code=3
				why=$(grep -m1 -E '===   (failed|a KVM host broke)' ".build/compare/$emu-$spec-$i.log" | cut -c1-240 | tr '\t' ' ')
			fi
			printf '%s\t%s\t%d\t%s\t%d\t%s\n' "$emu" "$spec" "$i" "${code:-?}" $((SECONDS - t0)) "$why" | tee -a "$out"
		done
	done
done
