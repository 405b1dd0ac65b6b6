#!/usr/bin/env bash
# make test: every test with the race detector, then a last line that says
# whether the PostgreSQL tests ran or were skipped (go test ./... hides the
# skips of passing packages). Exits with go test's status.
set -uo pipefail
cd "$(dirname "$0")/.."

skips=$(mktemp)
trap 'rm -f "$skips"' EXIT
HOOKFERRY_TEST_SKIP_LOG="$skips" "${GO:-go}" test -race -count=1 "$@" ./...
rc=$?

if [ -s "$skips" ]; then
	summary="PostgreSQL tests SKIPPED in $(wc -l <"$skips") packages: $(head -n 1 "$skips" | sed 's/^!!! SKIPPING PostgreSQL test: //; s/ !!!.*//')"
else
	summary="PostgreSQL tests ran"
fi
if [ "$rc" -eq 0 ]; then
	echo "test: PASS; $summary"
else
	echo "test: FAIL (exit $rc); $summary" >&2
fi
exit "$rc"
