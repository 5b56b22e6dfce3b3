#!/usr/bin/env bash
# Runs the e2e suite as one KVM-host boot per label group (see Makefile).
# Usage: E2E_RETRY=0|1 scripts/e2e.sh GROUP...
# A group that fails is run once more when E2E_RETRY=1; a pass on the second
# run is reported loudly as FLAKY, never silently. Within a run, Ginkgo gives
# a failing spec up to E2E_FLAKE_ATTEMPTS tries and marks one that needed
# more than one "[FLAKEY TEST - TOOK N ATTEMPTS TO PASS]" in its report.
# Both are stopgaps while an intermittent guest fault is open (a vCPU triple
# fault and a stalled serial console; see issues 3 and 7): set
# E2E_RETRY=0 E2E_FLAKE_ATTEMPTS=1 to see every failure.
set -uo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-.build} C=${CACHE:-.cache}
files=(-file "$B/e2e.test:bin/e2e.test" -file "$C/guest/bzImage:guest/bzImage"
	-file "$C/guest/initramfs.cpio.gz:guest/initramfs.cpio.gz")
for f in "$B/vmm" "$B/vmmctl"; do [ -f "$f" ] && files+=(-file "$f:bin/${f##*/}"); done
run_group() { # n filter
	"$B/kvmhost" -mode "${KVMHOST_MODE:-auto}" -timeout "${E2E_TIMEOUT:-25m}" -results "$B/results/$1" \
		"${files[@]}" -dir scenarios:scenarios -dir e2e/testdata:testdata \
		-env 'VMM_BIN=$PAYLOAD/bin/vmm' -env 'VMMCTL_BIN=$PAYLOAD/bin/vmmctl' \
		-env 'VMM_GUEST_KERNEL=$PAYLOAD/guest/bzImage' \
		-env 'VMM_GUEST_INITRAMFS=$PAYLOAD/guest/initramfs.cpio.gz' \
		-env 'VMM_SCENARIOS=$PAYLOAD/scenarios' -env 'VMM_TESTDATA=$PAYLOAD/testdata' \
		-- ./bin/e2e.test -test.v -ginkgo.v -ginkgo.no-color -ginkgo.timeout=20m \
		'-ginkgo.junit-report=$RESULTS/junit.xml' "-ginkgo.label-filter=$2" \
		"-ginkgo.flake-attempts=${E2E_FLAKE_ATTEMPTS:-3}" ${GINKGO_FLAGS:-}
}
fail=0 n=0 flaky=()
for group in "$@"; do
	n=$((n + 1))
	filter=$group
	[ "$group" = core ] && filter='!api && !devices && !scenarios && !benchmark'
	echo "=== e2e group $n: $group"
	if run_group "$n" "$filter"; then continue; fi
	if [ "${E2E_RETRY:-1}" = 1 ]; then
		echo "=== e2e group $n ($group) failed; running it once more"
		if run_group "$n-retry" "$filter"; then
			flaky+=("$group")
			continue
		fi
	fi
	echo "=== e2e group $n ($group) FAILED"
	fail=1
done
grep -h -o 'FLAKEY TEST[^]]*\]\? *[^|]*' "$B"/results/*/console.log 2>/dev/null | sed 's/^/=== FLAKY spec: /' | sort -u
for g in "${flaky[@]}"; do
	echo "=== FLAKY: e2e group $g failed, then passed on its second run (see $B/results)"
done
exit $fail
