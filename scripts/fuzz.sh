#!/usr/bin/env bash
# Runs every Go fuzz target in the module for a fixed time each.
# Usage: scripts/fuzz.sh DURATION
set -euo pipefail
t=${1:-10s}
n=0
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		echo "fuzz: $pkg $f for $t"
		go test -run='^$' -fuzz="^$f\$" -fuzztime="$t" "$pkg"
		n=$((n + 1))
	done
done
echo "fuzz: $n target(s) ran"
