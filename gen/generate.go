// Package gen holds the code oapi-codegen generates from openapi.yaml: the API's
// models, the Echo strict-server interface with the embedded spec, and a Go client.
// Never edit the *.gen.go files by hand: change openapi.yaml and run `make generate`.
//
// The client is usable on its own by API consumers:
//
//	bearer := func(_ context.Context, req *http.Request) error {
//		req.Header.Set("Authorization", "Bearer "+token)
//		return nil
//	}
//	c, err := gen.NewClientWithResponses("https://hookferry.example.com", gen.WithRequestEditorFn(bearer))
package gen

//go:generate go tool oapi-codegen -config models.cfg.yaml ../openapi.yaml
//go:generate go tool oapi-codegen -config server.cfg.yaml ../openapi.yaml
//go:generate go tool oapi-codegen -config client.cfg.yaml ../openapi.yaml
