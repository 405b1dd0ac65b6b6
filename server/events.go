package server

import (
	"context"
	"fmt"
	"net/http"

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
	published, err := s.store.Publish(ctx, toEvent(p.TenantID, *req.Body))
	if err != nil {
		return nil, err
	}
	s.countPublished(published)
	return gen.PublishEvent202JSONResponse{Id: published.EventID, Deliveries: published.Deliveries}, nil
}

// PublishEvents implements publishEvents: the contract has checked each
// event's shape; the catalog and the size of each event's data are checked
// here, before anything is stored.
func (s *Server) PublishEvents(ctx context.Context, req gen.PublishEventsRequestObject) (gen.PublishEventsResponseObject, error) {
	p, _ := auth.PrincipalFrom(ctx)
	events := make([]store.Event, len(req.Body.Events))
	for i, ev := range req.Body.Events {
		if !s.cfg.Catalog.Has(ev.Type) {
			return nil, batchProblem(http.StatusBadRequest, i, "type", unknownEventType(ev.Type))
		}
		if int64(len(ev.Data)) > s.cfg.MaxBodyBytes {
			return nil, batchProblem(http.StatusRequestEntityTooLarge, i, "data", apiErrorf(gen.ErrorCodePAYLOADTOOLARGE,
				"the data is larger than %d bytes, the limit of one event", s.cfg.MaxBodyBytes))
		}
		events[i] = toEvent(p.TenantID, ev)
	}
	published, err := s.store.PublishBatch(ctx, events)
	if err != nil {
		return nil, err
	}
	out := gen.PublishEvents202JSONResponse{Events: make([]gen.PublishedEvent, len(published))}
	for i, pub := range published {
		s.countPublished(pub)
		out.Events[i] = gen.PublishedEvent{Id: pub.EventID, Deliveries: pub.Deliveries}
	}
	return out, nil
}

func toEvent(tenantID string, body gen.PublishEventRequest) store.Event {
	ev := store.Event{TenantID: tenantID, Type: body.Type, Data: body.Data}
	if body.Id != nil {
		ev.ProducerID = *body.Id
	}
	if body.Audience != nil {
		ev.UserIDs = body.Audience.UserIds
	}
	return ev
}

func (s *Server) countPublished(p store.Published) {
	if !p.Duplicate {
		s.cfg.Metrics.EventPublished()
	}
}

// batchProblem is an error about one event of a batch: the message and the
// details name its index and field (events[3].type).
func batchProblem(status, index int, field string, e gen.Error) *problem {
	path := fmt.Sprintf("events[%d]", index)
	if field != "" {
		path += "." + field
	}
	e.Message = path + ": " + e.Message
	e.Details = eventDetails(index, path)
	return &problem{status: status, body: e}
}

// eventDetails are the details of an error about the batch's event index, at
// field (its full path, such as events[3].type).
func eventDetails(index int, field string) *map[string]any {
	return &map[string]any{"index": index, "field": field}
}

func unknownEventType(name string) gen.Error {
	return apiErrorf(gen.ErrorCodeUNKNOWNEVENTTYPE, "%q is not an event type of the catalog (GET /v1/event-types lists them)", name)
}
