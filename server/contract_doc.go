package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/hookferry/hookferry"
	"github.com/hookferry/hookferry/gen"
)

// specJSON is openapi.yaml as a JSON object, converted once.
func specJSON() (map[string]any, error) {
	doc, err := openapi3.NewLoader().LoadFromData(hookferry.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("server: load openapi.yaml: %w", err)
	}
	raw, err := doc.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var out map[string]any
	return out, json.Unmarshal(raw, &out)
}

// GetOpenAPIYAML implements getOpenAPIYAML.
func (s *Server) GetOpenAPIYAML(context.Context, gen.GetOpenAPIYAMLRequestObject) (gen.GetOpenAPIYAMLResponseObject, error) {
	return gen.GetOpenAPIYAML200ApplicationyamlResponse{Body: bytes.NewReader(hookferry.OpenAPI), ContentLength: int64(len(hookferry.OpenAPI))}, nil
}

// GetOpenAPIJSON implements getOpenAPIJSON.
func (s *Server) GetOpenAPIJSON(context.Context, gen.GetOpenAPIJSONRequestObject) (gen.GetOpenAPIJSONResponseObject, error) {
	return gen.GetOpenAPIJSON200JSONResponse(s.specJSON), nil
}
