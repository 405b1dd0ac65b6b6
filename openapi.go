// Package hookferry carries the API contract, openapi.yaml, for the programs
// that serve or check it.
package hookferry

import _ "embed"

// OpenAPI is openapi.yaml, byte for byte.
//
//go:embed openapi.yaml
var OpenAPI []byte
