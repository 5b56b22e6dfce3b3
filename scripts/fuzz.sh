#!/usr/bin/env bash
# Runs every Go fuzz target in the module for a fixed time each.
# Usage: scripts/fuzz.sh DURATION
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
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		echo "fuzz: $pkg $f for $t"
		n=$((n + 1))
		go test -run='^$' -fuzz="^$f\$" -fuzztime="$t" "$pkg" 2>&1 | tee "$out" && continue
		if ! grep -qx '    context deadline exceeded' "$out" || grep -q 'Failing input written' "$out"; then
			exit 1
		fi
		execs=$(grep -o 'execs: [0-9]*' "$out" | tail -1 | grep -o '[0-9]*$' || true)
		echo "fuzz: $f: Go's fuzz coordinator reported its own deadline (go.dev/issue/75804), no failing input; again for ${execs:-10000} executions"
		go test -run='^$' -fuzz="^$f\$" -fuzztime="${execs:-10000}x" "$pkg"
	done
done
echo "fuzz: $n target(s) ran"
