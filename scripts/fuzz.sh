#!/usr/bin/env bash
# Runs every Go fuzz target in the module for a fixed time each.
# Usage: scripts/fuzz.sh DURATION
#
# Each target starts from its seeds and testdata/fuzz only, in a fresh
# corpus cache: the inputs a longer run found (kept in GOCACHE) would each
# run again first, and a slow target (FuzzACPITables runs iasl) would spend
# more than its time on them. Fuzz for longer with
# go test -run='^$' -fuzz=NAME -fuzztime=1m PACKAGE.
set -euo pipefail
t=${1:-10s}
n=0
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		echo "fuzz: $pkg $f for $t"
		go test -run='^$' -fuzz="^$f\$" -fuzztime="$t" "$pkg" -test.fuzzcachedir="$cache/$f"
		n=$((n + 1))
	done
done
echo "fuzz: $n target(s) ran"
