#!/usr/bin/env bash
# Fail on a breaking change of the contract: compare openapi.yaml as it is at
# BASE_REF (a branch, tag or commit) with openapi.yaml in the working tree, using
# oasdiff pinned as a tool in go.mod (`go tool oasdiff`).
#
# Usage: tools/spec/breaking.sh [BASE_REF [REVISION]]
#   BASE_REF  the base to compare with; empty or absent: the newest tag matching
#             v* (git describe). With no such tag there is nothing to compare
#             with, and the script says so and exits 0.
#   REVISION  the spec file to check against the base; default the repository's
#             openapi.yaml.
#
# Breaking changes that are meant, and made safe for clients, are listed with
# their reasons in tools/spec/breaking-ignore.md (oasdiff --err-ignore); any
# other one fails.
#
# Exit status: 0 no breaking change (changes at WARN level are printed but pass),
# 1 a breaking change (ERR level) or a failure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

base_ref=${1:-}
revision=${2:-$root/openapi.yaml}
# A relative REVISION is taken from the caller's directory.
case $revision in
/*) ;;
*) revision="$PWD/$revision" ;;
esac
[ -f "$revision" ] || { echo "breaking: $revision: no such file" >&2; exit 1; }

cd "$root"
if [ -z "$base_ref" ]; then
	base_ref=$(git describe --tags --abbrev=0 --match 'v*' 2>/dev/null </dev/null || true)
	if [ -z "$base_ref" ]; then
		echo 'breaking: no base to compare with (no v* tag)'
		exit 0
	fi
fi
if ! git rev-parse --verify --quiet "$base_ref^{commit}" >/dev/null </dev/null; then
	echo "breaking: $base_ref: not a commit, branch or tag of this repository" >&2
	exit 1
fi
if ! git cat-file -e "$base_ref:openapi.yaml" 2>/dev/null </dev/null; then
	echo "breaking: $base_ref has no openapi.yaml; nothing to compare with"
	exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
base="$tmp/openapi.base.yaml"
git show "$base_ref:openapi.yaml" >"$base" </dev/null

echo "breaking: openapi.yaml at $base_ref ($(git rev-parse --short "$base_ref^{commit}")) -> ${revision#"$root"/}"
rc=0
go tool oasdiff breaking "$base" "$revision" --fail-on ERR --color never --err-ignore "$here/breaking-ignore.md" </dev/null || rc=$?
if [ "$rc" -ne 0 ]; then
	echo "breaking: FAIL: the contract has breaking changes against $base_ref (or oasdiff failed, exit $rc)" >&2
	exit 1
fi
echo "breaking: ok: no breaking change against $base_ref"
