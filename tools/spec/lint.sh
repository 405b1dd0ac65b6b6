#!/usr/bin/env bash
# Lint the contract, openapi.yaml, with Redocly CLI under the repository's
# redocly.yaml. The CLI is the version pinned in tools/spec/package-lock.json,
# installed with `npm ci`. Fails on any problem, error or warning.
#
# Usage: tools/spec/lint.sh        (from any directory; needs node and npm)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

# No telemetry, no update check, no prompts.
export REDOCLY_TELEMETRY=off
export REDOCLY_SUPPRESS_UPDATE_NOTICE=true
export npm_config_update_notifier=false

command -v npm >/dev/null || { echo 'lint: npm not found: Node.js 20.19+ (or 22.12+) is required' >&2; exit 1; }

# Quietly: only npm's errors are shown.
npm ci --prefix "$here" --no-audit --no-fund --ignore-scripts --loglevel=error </dev/null >/dev/null

redocly="$here/node_modules/.bin/redocly"
out=$(mktemp)
trap 'rm -f "$out"' EXIT

cd "$root"
rc=0
"$redocly" lint openapi.yaml --config redocly.yaml --lint-config=error --max-problems=1000 </dev/null >"$out" 2>&1 || rc=$?
cat "$out"
if [ "$rc" -ne 0 ]; then
	echo "lint: FAIL: openapi.yaml has lint errors (exit $rc)" >&2
	exit 1
fi
# Redocly exits 0 on warnings; a warning fails here as well.
if grep -Eq 'You have [0-9]+ warnings?' "$out"; then
	echo 'lint: FAIL: openapi.yaml has lint warnings' >&2
	exit 1
fi
echo 'lint: ok'
