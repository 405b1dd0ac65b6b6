package server

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/hookferry/hookferry/auth"
	"github.com/hookferry/hookferry/gen"
	"github.com/hookferry/hookferry/store"
)

// PingEventType is the event a ping sends; it is outside every catalog.
const PingEventType = "webhook.ping"

// ListDeliveries implements listDeliveries.
func (s *Server) ListDeliveries(ctx context.Context, req gen.ListDeliveriesRequestObject) (gen.ListDeliveriesResponseObject, error) {
	limit := 20
	if req.Params.Limit != nil {
		limit = *req.Params.Limit
	}
	var status, cursor string
	if req.Params.Status != nil {
		status = string(*req.Params.Status)
	}
	if req.Params.Cursor != nil {
		cursor = *req.Params.Cursor
	}
	page, err := s.store.ListDeliveries(ctx, owner(ctx), req.WebhookId, status, cursor, limit)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return gen.ListDeliveries404JSONResponse{WebhookNotFoundJSONResponse: webhookNotFound(req.WebhookId)}, nil
	case errors.Is(err, store.ErrBadCursor):
		return gen.ListDeliveries400JSONResponse{BadRequestJSONResponse: gen.BadRequestJSONResponse(
			apiError(gen.ErrorCodeINVALIDREQUEST, "cursor: pass back the next_cursor of a previous page"))}, nil
	case err != nil:
		return nil, err
	}
	out := gen.ListDeliveries200JSONResponse{Items: make([]gen.Delivery, len(page.Items))}
	for i, d := range page.Items {
		out.Items[i] = toAPIDelivery(d)
	}
	if page.NextCursor != "" {
		out.NextCursor = &page.NextCursor
	}
	return out, nil
}

// Redeliver implements redeliver.
func (s *Server) Redeliver(ctx context.Context, req gen.RedeliverRequestObject) (gen.RedeliverResponseObject, error) {
	d, err := s.store.Redeliver(ctx, owner(ctx), req.WebhookId, req.DeliveryId)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return gen.Redeliver404JSONResponse{NotFoundJSONResponse: gen.NotFoundJSONResponse(webhookNotFound(req.WebhookId))}, nil
	case errors.Is(err, store.ErrDeliveryNotFound):
		return gen.Redeliver404JSONResponse{NotFoundJSONResponse: gen.NotFoundJSONResponse(
			apiError(gen.ErrorCodeDELIVERYNOTFOUND, "this webhook has no delivery with this id"))}, nil
	case err != nil:
		return nil, err
	}
	return gen.Redeliver202JSONResponse(toAPIDelivery(d)), nil
}

// PingWebhook implements pingWebhook.
func (s *Server) PingWebhook(ctx context.Context, req gen.PingWebhookRequestObject) (gen.PingWebhookResponseObject, error) {
	w, err := s.store.GetWebhook(ctx, owner(ctx), req.WebhookId)
	if errors.Is(err, store.ErrNotFound) {
		return gen.PingWebhook404JSONResponse{WebhookNotFoundJSONResponse: webhookNotFound(req.WebhookId)}, nil
	}
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(map[string]string{"webhook_id": w.ID})
	if err != nil {
		return nil, err
	}
	p, _ := auth.PrincipalFrom(ctx)
	published, err := s.store.Publish(ctx, store.Event{TenantID: p.TenantID, Type: PingEventType, Data: data, WebhookID: w.ID})
	if err != nil {
		return nil, err
	}
	return gen.PingWebhook202JSONResponse{Id: published.EventID, Deliveries: published.Deliveries}, nil
}

func toAPIDelivery(d store.Delivery) gen.Delivery {
	out := gen.Delivery{
		Id: d.ID, EventId: d.EventID, EventType: d.EventType, Status: gen.DeliveryStatus(d.Status),
		Attempts: d.Attempts, LastStatusCode: d.LastStatusCode, NextAttemptAt: d.NextAttemptAt,
		CreatedAt: d.CreatedAt, DeliveredAt: d.DeliveredAt,
	}
	if d.LastError != "" {
		out.LastError = &d.LastError
	}
	return out
}
