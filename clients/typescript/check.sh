#!/usr/bin/env bash
# Checks the TypeScript client (clients/typescript): a clean install from the
# lockfile, no drift between openapi.yaml and the checked-in src/schema.d.ts, a
# type check, and the end-to-end test against a freshly built hookferry.
# Works from any directory; needs node/npm, go and openssl.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
root=$(cd "$here/../.." && pwd -P)
cd "$here"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hookferry-ts-check.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

step() { printf '\n== ts-client: %s\n' "$*"; }

step "npm ci"
npm ci --no-audit --no-fund </dev/null

step "generate drift (openapi.yaml -> src/schema.d.ts)"
# The same command as `npm run generate`, into a temp file, so a check never
# rewrites the checked-in file. --default-non-nullable false: a request property
# with a default (registerWebhook's ordered) stays optional for the caller;
# responses say what is present with `required`.
npx --no-install openapi-typescript ../../openapi.yaml --default-non-nullable false -o "$tmp/schema.d.ts" </dev/null
if ! diff -u src/schema.d.ts "$tmp/schema.d.ts" >"$tmp/schema.diff"; then
	head -n 60 "$tmp/schema.diff" >&2
	echo "ts-client: src/schema.d.ts is stale against openapi.yaml; run npm run generate in clients/typescript and commit the result" >&2
	exit 1
fi
echo "src/schema.d.ts matches openapi.yaml"

step "typecheck (tsc --noEmit)"
npm run --silent typecheck </dev/null
echo "typecheck: ok"

step "build hookferry"
(cd "$root" && go build -buildvcs=false -o "$tmp/hookferry" ./cmd/hookferry)
echo "built $tmp/hookferry"

step "npm test (end to end against hookferry)"
HOOKFERRY_BIN="$tmp/hookferry" npm test </dev/null

echo
echo "ts-client: ok"
