// Builds the portal into ../dist: index.html and portal.css copied, src/main.ts
// bundled with @hookferry/client (openapi-fetch) into one minified portal.js.
// The output is committed; make drift runs this and compares.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";

const out = new URL("../dist/", import.meta.url);
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [new URL("src/main.ts", import.meta.url).pathname],
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020"],
  legalComments: "none",
  charset: "utf8",
  outfile: new URL("portal.js", out).pathname,
  logLevel: "warning",
});
for (const f of ["index.html", "portal.css"]) {
  copyFileSync(new URL(`src/${f}`, import.meta.url), new URL(f, out));
}
