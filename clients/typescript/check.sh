#!/usr/bin/env bash
# Checks the TypeScript client (clients/typescript): a clean install from the
# lockfile, no drift between openapi.yaml and the checked-in src/schema.d.ts, a
# type check, the packed tarball installed into a scratch project and the
# README's example type-checked there as a consumer would, and the unit and
# end-to-end tests against a freshly built hookferry.
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

step "npm pack, installed and type-checked as a consumer"
# What `npm install hookferry-client-<version>.tgz` gives a user: the tarball from
# a fresh dist/ (prepack builds it), its package.json entry points all present,
# installed beside the pinned typescript and @types/node into an empty ESM
# project, where the README's example (the ts block after its marker comment)
# must type-check under strict with node16 and with bundler resolution.
mkdir "$tmp/pack" "$tmp/consumer"
npm pack --silent --pack-destination "$tmp/pack" </dev/null >/dev/null
tarballs=("$tmp"/pack/*.tgz)
[ "${#tarballs[@]}" -eq 1 ] && [ -f "${tarballs[0]}" ] || { echo "ts-client: npm pack wrote ${tarballs[*]}, not one tarball" >&2; exit 1; }
tarball=${tarballs[0]}
tar -tzf "$tarball" >"$tmp/pack.files"
node -e '
const fs = require("node:fs");
const [pkgFile, listFile] = process.argv.slice(1);
const pkg = JSON.parse(fs.readFileSync(pkgFile, "utf8"));
const files = new Set(fs.readFileSync(listFile, "utf8").split("\n").filter(Boolean));
const wanted = new Set([pkg.main, pkg.types]);
for (const entry of Object.values(pkg.exports)) for (const target of Object.values(entry)) wanted.add(target);
const missing = [...wanted].filter((f) => !files.has("package/" + f.replace(/^\.\//, "")));
if (missing.length) { console.error("ts-client: the tarball lacks " + missing.join(", ")); process.exit(1); }
' "$here/package.json" "$tmp/pack.files"
echo "$(basename "$tarball"): $(wc -c <"$tarball") bytes, $(wc -l <"$tmp/pack.files") files, every entry point of package.json present"

ts_version=$(node -p 'require("./package.json").devDependencies.typescript')
types_node_version=$(node -p 'require("./package.json").devDependencies["@types/node"]')
node scripts/readme-snippet.mjs README.md >"$tmp/consumer/readme.ts"
(
	cd "$tmp/consumer"
	npm init -y >/dev/null
	npm pkg set type=module
	npm install --no-audit --no-fund --prefer-offline "$tarball" "typescript@$ts_version" "@types/node@$types_node_version" </dev/null
	common='"strict": true, "noEmit": true, "target": "ES2022", "lib": ["ES2022"], "types": ["node"], "skipLibCheck": false, "verbatimModuleSyntax": true'
	printf '{ "compilerOptions": { %s, "module": "Node16", "moduleResolution": "Node16" }, "files": ["readme.ts"] }\n' "$common" >tsconfig.node16.json
	printf '{ "compilerOptions": { %s, "module": "ESNext", "moduleResolution": "Bundler" }, "files": ["readme.ts"] }\n' "$common" >tsconfig.bundler.json
	for config in tsconfig.node16.json tsconfig.bundler.json; do
		if ! npx --no-install tsc -p "$config" </dev/null; then
			echo "ts-client: the README's example does not type-check against the packed @hookferry/client ($config); readme.ts(N,…) is README.md line N" >&2
			exit 1
		fi
		echo "README example: tsc --noEmit ($config, tsc $(npx --no-install tsc --version | cut -d' ' -f2)): ok"
	done
	# Types can pass while the JavaScript is broken: load both entry points too.
	node --input-type=module -e '
import * as client from "@hookferry/client";
import * as receiver from "@hookferry/client/receiver";
if (typeof client.createHookferryClient !== "function" || typeof receiver.verifyWebhook !== "function" || client.verifyWebhook !== receiver.verifyWebhook) {
	console.error("ts-client: the installed package does not export createHookferryClient and verifyWebhook");
	process.exit(1);
}
console.log("import @hookferry/client and @hookferry/client/receiver: ok");
' </dev/null
)

step "build hookferry"
(cd "$root" && go build -buildvcs=false -o "$tmp/hookferry" ./cmd/hookferry)
echo "built $tmp/hookferry"

step "npm test (receiver unit tests; end to end against hookferry)"
HOOKFERRY_BIN="$tmp/hookferry" npm test </dev/null

echo
echo "ts-client: ok"
