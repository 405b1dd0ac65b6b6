package server

import (
	"context"
	"errors"
	"time"

	"github.com/hookferry/hookferry/auth"
	"github.com/hookferry/hookferry/gen"
	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/webhook"
)

// owner is the (tenant, user) the request acts for; the contract middleware has
// authenticated every request that reaches a /v1 handler.
func owner(ctx context.Context) webhook.Owner {
	p, _ := auth.PrincipalFrom(ctx)
	return webhook.Owner{TenantID: p.TenantID, UserID: p.UserID}
}

// ListWebhooks implements listWebhooks.
func (s *Server) ListWebhooks(ctx context.Context, req gen.ListWebhooksRequestObject) (gen.ListWebhooksResponseObject, error) {
	ws, err := s.store.ListWebhooks(ctx, owner(ctx))
	if err != nil {
		return nil, err
	}
	items := make([]gen.Webhook, len(ws))
	for i, w := range ws {
		items[i] = s.toAPIWebhook(w, wantSecret(req.Params.ShowAuthentication))
	}
	return gen.ListWebhooks200JSONResponse{Items: items}, nil
}

// RegisterWebhook implements registerWebhook.
func (s *Server) RegisterWebhook(ctx context.Context, req gen.RegisterWebhookRequestObject) (gen.RegisterWebhookResponseObject, error) {
	normalized, err := s.checkURL(req.Body.Url)
	if err != nil {
		return gen.RegisterWebhook400JSONResponse{BadRequestJSONResponse: gen.BadRequestJSONResponse(ruleError(err))}, nil
	}
	if err := s.cfg.Catalog.CheckSubscription(req.Body.Subscription.EventTypes); err != nil {
		return gen.RegisterWebhook400JSONResponse{BadRequestJSONResponse: gen.BadRequestJSONResponse(ruleError(err))}, nil
	}
	signing := webhook.SigningSymmetric
	if req.Body.Signing != nil {
		signing = webhook.Signing(*req.Body.Signing)
	}
	w, err := webhook.New(owner(ctx), req.Body.Url, normalized, req.Body.Subscription.EventTypes, signing, s.cfg.Now(), s.cfg.Random)
	if err != nil {
		return nil, err
	}
	w.Ordered = req.Body.Ordered != nil && *req.Body.Ordered // default false
	switch err := s.store.RegisterWebhook(ctx, w, s.cfg.MaxWebhooksPerUser); {
	case errors.Is(err, store.ErrDuplicateURL):
		return gen.RegisterWebhook409JSONResponse{ConflictJSONResponse: gen.ConflictJSONResponse(
			apiError(gen.ErrorCodeDUPLICATEURL, "a webhook with this URL is already registered"))}, nil
	case errors.Is(err, store.ErrTooManyWebhooks):
		return gen.RegisterWebhook409JSONResponse{ConflictJSONResponse: gen.ConflictJSONResponse(
			apiErrorf(gen.ErrorCodeTOOMANYWEBHOOKSREGISTERED, "the limit of %d webhooks per user is reached; delete one first", s.cfg.MaxWebhooksPerUser))}, nil
	case err != nil:
		return nil, err
	}
	return gen.RegisterWebhook201JSONResponse{
		Body:    s.toAPIWebhook(w, true),
		Headers: gen.RegisterWebhook201ResponseHeaders{Location: "/v1/webhooks/" + w.ID},
	}, nil
}

// GetWebhook implements getWebhook.
func (s *Server) GetWebhook(ctx context.Context, req gen.GetWebhookRequestObject) (gen.GetWebhookResponseObject, error) {
	w, err := s.store.GetWebhook(ctx, owner(ctx), req.WebhookId)
	if errors.Is(err, store.ErrNotFound) {
		return gen.GetWebhook404JSONResponse{WebhookNotFoundJSONResponse: webhookNotFound(req.WebhookId)}, nil
	}
	if err != nil {
		return nil, err
	}
	return gen.GetWebhook200JSONResponse(s.toAPIWebhook(w, wantSecret(req.Params.ShowAuthentication))), nil
}

// DeleteWebhook implements deleteWebhook.
func (s *Server) DeleteWebhook(ctx context.Context, req gen.DeleteWebhookRequestObject) (gen.DeleteWebhookResponseObject, error) {
	w, err := s.store.DeleteWebhook(ctx, owner(ctx), req.WebhookId)
	if errors.Is(err, store.ErrNotFound) {
		return gen.DeleteWebhook404JSONResponse{WebhookNotFoundJSONResponse: webhookNotFound(req.WebhookId)}, nil
	}
	if err != nil {
		return nil, err
	}
	return gen.DeleteWebhook200JSONResponse(s.toAPIWebhook(w, false)), nil
}

// UpdateWebhook implements updateWebhook.
func (s *Server) UpdateWebhook(ctx context.Context, req gen.UpdateWebhookRequestObject) (gen.UpdateWebhookResponseObject, error) {
	var ch store.WebhookChanges
	if req.Body.Url != nil {
		normalized, err := s.checkURL(*req.Body.Url)
		if err != nil {
			return gen.UpdateWebhook400JSONResponse{BadRequestJSONResponse: gen.BadRequestJSONResponse(ruleError(err))}, nil
		}
		// Stored as registration stores it: the normalised form.
		ch.URL, ch.NormalizedURL = &normalized, &normalized
	}
	if req.Body.Subscription != nil {
		if err := s.cfg.Catalog.CheckSubscription(req.Body.Subscription.EventTypes); err != nil {
			return gen.UpdateWebhook400JSONResponse{BadRequestJSONResponse: gen.BadRequestJSONResponse(ruleError(err))}, nil
		}
		ch.EventTypes = req.Body.Subscription.EventTypes
	}
	ch.Ordered = req.Body.Ordered
	if req.Body.Signing != nil {
		signing := webhook.Signing(*req.Body.Signing)
		ch.Signing = &signing
	}
	w, err := s.store.UpdateWebhook(ctx, owner(ctx), req.WebhookId, ch)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return gen.UpdateWebhook404JSONResponse{WebhookNotFoundJSONResponse: webhookNotFound(req.WebhookId)}, nil
	case errors.Is(err, store.ErrDuplicateURL):
		return gen.UpdateWebhook409JSONResponse{ConflictJSONResponse: gen.ConflictJSONResponse(
			apiError(gen.ErrorCodeDUPLICATEURL, "another webhook of yours has this URL"))}, nil
	case err != nil:
		return nil, err
	}
	// Asking for a signing shows the key, new or not, as registration does.
	return gen.UpdateWebhook200JSONResponse(s.toAPIWebhook(w, req.Body.Signing != nil)), nil
}

// RotateWebhookSecret implements rotateWebhookSecret.
func (s *Server) RotateWebhookSecret(ctx context.Context, req gen.RotateWebhookSecretRequestObject) (gen.RotateWebhookSecretResponseObject, error) {
	ttl := webhook.DefaultPreviousTTL
	if req.Body != nil && req.Body.PreviousSecretTtlSeconds != nil {
		// The contract bounds it to [0, 604800].
		ttl = time.Duration(*req.Body.PreviousSecretTtlSeconds) * time.Second
	}
	w, err := s.store.RotateSecret(ctx, owner(ctx), req.WebhookId, ttl)
	if errors.Is(err, store.ErrNotFound) {
		return gen.RotateWebhookSecret404JSONResponse{WebhookNotFoundJSONResponse: webhookNotFound(req.WebhookId)}, nil
	}
	if err != nil {
		return nil, err
	}
	return gen.RotateWebhookSecret200JSONResponse(s.toAPIWebhook(w, true)), nil
}

// PauseWebhook implements pauseWebhook.
func (s *Server) PauseWebhook(ctx context.Context, req gen.PauseWebhookRequestObject) (gen.PauseWebhookResponseObject, error) {
	w, err := s.store.PauseWebhook(ctx, owner(ctx), req.WebhookId, webhook.PauseReasonUser)
	if errors.Is(err, store.ErrNotFound) {
		return gen.PauseWebhook404JSONResponse{WebhookNotFoundJSONResponse: webhookNotFound(req.WebhookId)}, nil
	}
	if err != nil {
		return nil, err
	}
	return gen.PauseWebhook200JSONResponse(s.toAPIWebhook(w, false)), nil
}

// UnpauseWebhook implements unpauseWebhook.
func (s *Server) UnpauseWebhook(ctx context.Context, req gen.UnpauseWebhookRequestObject) (gen.UnpauseWebhookResponseObject, error) {
	w, err := s.store.UnpauseWebhook(ctx, owner(ctx), req.WebhookId, s.cfg.UnpauseCooldown)
	var cooldown *store.CooldownError
	switch {
	case errors.Is(err, store.ErrNotFound):
		return gen.UnpauseWebhook404JSONResponse{WebhookNotFoundJSONResponse: webhookNotFound(req.WebhookId)}, nil
	case errors.As(err, &cooldown):
		secs := retryAfterSeconds(cooldown.RetryAfter)
		return gen.UnpauseWebhook429JSONResponse{TooManyRequestsJSONResponse: gen.TooManyRequestsJSONResponse{
			Body:    apiErrorf(gen.ErrorCodeTOOMANYREQUESTS, "this webhook was unpaused moments ago; retry in %d s", secs),
			Headers: gen.TooManyRequestsResponseHeaders{RetryAfter: secs},
		}}, nil
	case err != nil:
		return nil, err
	}
	return gen.UnpauseWebhook200JSONResponse(s.toAPIWebhook(w, wantSecret(req.Params.ShowAuthentication))), nil
}

func webhookNotFound(id string) gen.WebhookNotFoundJSONResponse {
	return gen.WebhookNotFoundJSONResponse(apiError(gen.ErrorCodeWEBHOOKNOTFOUND, "no webhook of yours has this id"))
}

func (s *Server) checkURL(raw string) (string, error) {
	return webhook.CheckURL(raw, s.cfg.AllowPrivateTargets)
}
