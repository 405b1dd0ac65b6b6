package server

import (
	"context"

	"github.com/hookferry/hookferry/gen"
)

// ListEventTypes implements listEventTypes.
func (s *Server) ListEventTypes(ctx context.Context, _ gen.ListEventTypesRequestObject) (gen.ListEventTypesResponseObject, error) {
	types := s.cfg.Catalog.Types()
	items := make([]gen.EventType, len(types))
	for i, t := range types {
		items[i] = gen.EventType{Name: t.Name}
		if t.Description != "" {
			items[i].Description = &t.Description
		}
	}
	return gen.ListEventTypes200JSONResponse{Items: items}, nil
}
