// Package portal holds the consumer portal's built files, embedded in the
// binary and served at /portal/. The sources are in web/ (TypeScript over
// @hookferry/client, bundled by esbuild); dist/ is their committed build, which
// make drift rebuilds and compares, so that running hookferry needs no Node.
package portal

import "embed"

// Files holds dist/: index.html, portal.js, portal.css.
//
//go:embed dist
var Files embed.FS
