#!/usr/bin/env bash
# make test: every test with the race detector, those of the Go SDK's module
# (clients/go, which ./... at the root does not enter) too, then a last line
# that says whether the PostgreSQL tests ran or were skipped (go test ./...
# hides the skips of passing packages). Exits non-zero if either go test failed.
set -uo pipefail
cd "$(dirname "$0")/.."

skips=$(mktemp)
trap 'rm -f "$skips"' EXIT
HOOKFERRY_TEST_SKIP_LOG="$skips" "${GO:-go}" test -race -count=1 "$@" ./...
rc=$?
(cd clients/go && "${GO:-go}" test -race -count=1 "$@" ./...)
sdk=$?
[ "$rc" -ne 0 ] || rc=$sdk

if [ -s "$skips" ]; then
	summary="PostgreSQL tests SKIPPED in $(wc -l <"$skips") packages: $(head -n 1 "$skips" | sed 's/^!!! SKIPPING PostgreSQL test: //; s/ !!!.*//')"
else
	summary="PostgreSQL tests ran"
fi
if [ "$sdk" -ne 0 ]; then
	summary="$summary; clients/go FAILED"
fi
if [ "$rc" -eq 0 ]; then
	echo "test: PASS; $summary"
else
	echo "test: FAIL (exit $rc); $summary" >&2
fi
exit "$rc"
