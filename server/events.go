package server

import (
	"context"

	"github.com/hookferry/hookferry/auth"
	"github.com/hookferry/hookferry/gen"
	"github.com/hookferry/hookferry/store"
)

// PublishEvent implements publishEvent.
func (s *Server) PublishEvent(ctx context.Context, req gen.PublishEventRequestObject) (gen.PublishEventResponseObject, error) {
	if !s.cfg.Catalog.Has(req.Body.Type) {
		return gen.PublishEvent400JSONResponse{BadRequestJSONResponse: gen.BadRequestJSONResponse(unknownEventType(req.Body.Type))}, nil
	}
	p, _ := auth.PrincipalFrom(ctx)
	ev := store.Event{TenantID: p.TenantID, Type: req.Body.Type, Data: req.Body.Data}
	if req.Body.Id != nil {
		ev.ProducerID = *req.Body.Id
	}
	if req.Body.Audience != nil {
		ev.UserIDs = req.Body.Audience.UserIds
	}
	published, err := s.store.Publish(ctx, ev)
	if err != nil {
		return nil, err
	}
	if !published.Duplicate {
		s.cfg.Metrics.EventPublished()
	}
	return gen.PublishEvent202JSONResponse{Id: published.EventID, Deliveries: published.Deliveries}, nil
}

func unknownEventType(name string) gen.Error {
	return apiErrorf(gen.ErrorCodeUNKNOWNEVENTTYPE, "%q is not an event type of the catalog (GET /v1/event-types lists them)", name)
}
