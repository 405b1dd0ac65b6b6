#!/usr/bin/env bash
# make sdk-deps: fail if the Go SDK's module graph (clients/go, what `go get
# github.com/hookferry/hookferry/clients/go` brings) holds a server dependency:
# Echo, kin-openapi, GORM, or the hookferry server module itself.
set -euo pipefail
cd "$(dirname "$0")/../clients/go"

graph=$("${GO:-go}" mod graph)
# Each line is "module dependency"; the dependency column is what gets pulled in.
forbidden=$(printf '%s\n' "$graph" | awk '{ print $2 }' | sort -u |
	grep -E '^(github\.com/labstack/|github\.com/getkin/|gorm\.io/|github\.com/hookferry/hookferry@)' || true)
modules=$(printf '%s\n' "$graph" | awk '{ print $1; print $2 }' | grep -v -E '^(go|toolchain)@' | sort -u | wc -l)
if [ -n "$forbidden" ]; then
	echo 'sdk-deps: clients/go must not depend on the server'"'"'s modules; its graph holds:' >&2
	printf '%s\n' "$forbidden" | sed 's/^/  /' >&2
	printf '%s\n' "$graph" | grep -E ' (github\.com/labstack/|github\.com/getkin/|gorm\.io/|github\.com/hookferry/hookferry@)' | sed 's/^/  via: /' >&2
	exit 1
fi
echo "sdk-deps: ok ($modules module versions in the graph of clients/go, none of Echo, kin-openapi, GORM or the server)"
