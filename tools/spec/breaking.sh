#!/usr/bin/env bash
# Fail on a breaking change of the contract: compare the released contract,
# api/released/v1.yaml, with openapi.yaml in the working tree, using oasdiff
# pinned as a tool in go.mod (`go tool oasdiff`).
#
# Usage: tools/spec/breaking.sh [BASE_REF [REVISION]]
#   BASE_REF  empty or absent (the default, and what CI runs): the base is
#             api/released/v1.yaml in the working tree. Otherwise a branch, tag
#             or commit, whose openapi.yaml is the base instead (to review a
#             change against, say, main).
#   REVISION  the spec file to check against the base; default the repository's
#             openapi.yaml.
#
# Every ERR-level change fails. tools/spec/breaking-levels.txt (oasdiff
# --severity-levels; that file cannot hold comments, so the reasons are here)
# changes oasdiff's defaults for two classes:
#   - an enum value added to a response (response-property-enum-value-added,
#     response-mediatype-enum-value-added) is lowered to INFO and passes,
#     because the contract (info.description of openapi.yaml) tells clients to
#     accept enum values they do not know. That covers a new ErrorCode,
#     PauseReason or DeliveryStatus value. INFO, not WARN: one new ErrorCode
#     is reported once per operation and status (64 lines), which would drown
#     real warnings; `go tool oasdiff changelog api/released/v1.yaml openapi.yaml
#     --severity-levels tools/spec/breaking-levels.txt` lists them. Adding or
#     removing an enum value in a request is judged as oasdiff does: removing
#     fails.
#   - an optional response property removed (response-optional-property-removed)
#     is raised from INFO to ERR: a client that reads, say, `authentication`
#     breaks when it can never come back.
#
# Exit status: 0 no breaking change (changes at WARN level are printed but pass),
# 1 a breaking change (ERR level) or a failure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
released=api/released/v1.yaml

base_ref=${1:-}
revision=${2:-$root/openapi.yaml}
# A relative REVISION is taken from the caller's directory.
case $revision in
/*) ;;
*) revision="$PWD/$revision" ;;
esac
[ -f "$revision" ] || { echo "breaking: $revision: no such file" >&2; exit 1; }

cd "$root"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -z "$base_ref" ]; then
	[ -f "$released" ] || { echo "breaking: $released: no such file; it is the released contract to compare with" >&2; exit 1; }
	base="$root/$released"
	label=$released
else
	if ! git rev-parse --verify --quiet "$base_ref^{commit}" >/dev/null </dev/null; then
		echo "breaking: $base_ref: not a commit, branch or tag of this repository" >&2
		exit 1
	fi
	if ! git cat-file -e "$base_ref:openapi.yaml" 2>/dev/null </dev/null; then
		echo "breaking: $base_ref has no openapi.yaml" >&2
		exit 1
	fi
	base="$tmp/openapi.base.yaml"
	git show "$base_ref:openapi.yaml" >"$base" </dev/null
	label="openapi.yaml at $base_ref ($(git rev-parse --short "$base_ref^{commit}"))"
fi

echo "breaking: $label -> ${revision#"$root"/}"
rc=0
go tool oasdiff breaking "$base" "$revision" --fail-on ERR --color never \
	--severity-levels "$here/breaking-levels.txt" </dev/null || rc=$?
if [ "$rc" -ne 0 ]; then
	echo "breaking: FAIL: the contract has breaking changes against $label (or oasdiff failed, exit $rc)" >&2
	exit 1
fi
echo "breaking: ok: no breaking change against $label"
