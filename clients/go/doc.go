// Package hookferry is the Go client of the hookferry webhook service: the API
// client and models generated from its openapi.yaml (client.gen.go, never
// edited by hand: `make generate` at the repository root rewrites it), and
// Verifier, which a receiver uses to check a delivery's Standard Webhooks
// signature and decode its envelope.
//
// A client is the base URL and a bearer token:
//
//	bearer := func(_ context.Context, req *http.Request) error {
//		req.Header.Set("Authorization", "Bearer "+token)
//		return nil
//	}
//	c, err := hookferry.NewClientWithResponses("https://hookferry.example.com", hookferry.WithRequestEditorFn(bearer))
//
// This module depends on no part of the server: it pulls in neither Echo nor
// kin-openapi nor GORM.
package hookferry
