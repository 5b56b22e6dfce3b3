#!/usr/bin/env bash
# Runs every Go fuzz target in the module for a fixed time each.
# Usage: scripts/fuzz.sh DURATION
#
# Each target starts from its seeds and testdata/fuzz only, in a fresh
# corpus cache: the inputs a longer run found (kept in GOCACHE) would each
# run again first, and a slow target (FuzzACPITables runs iasl) would spend
# more than its time on them. Fuzz for longer with
# go test -run='^$' -fuzz=NAME -fuzztime=1m PACKAGE.
#
# Go 1.26's fuzz coordinator can report its own -fuzztime deadline as a
# failure: a bare "context deadline exceeded" at the end of the time, with
# no failing input written (https://go.dev/issue/75804, fixed in Go 1.27;
# it shows on a loaded machine). A run that fails with exactly that
# signature is said so and taken again with a count budget (the executions
# it reached, "-fuzztime Nx"), which has no deadline to race; every other
# failure fails at once.
set -euo pipefail
t=${1:-10s}
n=0
cache=$(mktemp -d)
out=$(mktemp)
trap 'rm -rf "$cache" "$out"' EXIT
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		echo "fuzz: $pkg $f for $t"
		n=$((n + 1))
		go test -run='^$' -fuzz="^$f\$" -fuzztime="$t" "$pkg" -test.fuzzcachedir="$cache/$f" 2>&1 | tee "$out" && continue
		if ! grep -qx '    context deadline exceeded' "$out" || grep -q 'Failing input written' "$out"; then
			exit 1
		fi
		execs=$(grep -o 'execs: [0-9]*' "$out" | tail -1 | grep -o '[0-9]*$' || true)
		echo "fuzz: $f: Go's fuzz coordinator reported its own deadline (go.dev/issue/75804), no failing input; again for ${execs:-10000} executions"
		go test -run='^$' -fuzz="^$f\$" -fuzztime="${execs:-10000}x" "$pkg" -test.fuzzcachedir="$cache/$f"
	done
done
echo "fuzz: $n target(s) ran"
