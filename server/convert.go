package server

import (
	"github.com/hookferry/hookferry/gen"
	"github.com/hookferry/hookferry/webhook"
)

// toAPIWebhook renders a webhook; its verification key (the shared secret, or
// the public key of an ASYMMETRIC webhook) only when showSecret is set.
func (s *Server) toAPIWebhook(w webhook.Webhook, showSecret bool) gen.Webhook {
	out := gen.Webhook{
		Id:             w.ID,
		Url:            w.URL,
		Subscription:   gen.Subscription{EventTypes: w.EventTypes},
		Ordered:        w.Ordered,
		Signing:        gen.Signing(w.Signing()),
		Status:         gen.WebhookStatus(w.Status),
		BufferedEvents: w.BufferedEvents,
		CreatedAt:      w.CreatedAt,
		UpdatedAt:      w.UpdatedAt,
		PausedAt:       w.PausedAt,

		PreviousSecretExpiresAt: w.PreviousKeysExpireAt(s.cfg.Now()),
	}
	if out.Subscription.EventTypes == nil {
		out.Subscription.EventTypes = []string{}
	}
	if w.PauseReason != "" {
		r := gen.PauseReason(w.PauseReason)
		out.PauseReason = &r
	}
	if showSecret {
		out.Authentication = &gen.Authentication{Scheme: gen.AuthenticationSchemeSTANDARDWEBHOOKS, Secret: webhook.VerificationKey(w.Secret)}
	}
	return out
}

func wantSecret(show *bool) bool { return show != nil && *show }
