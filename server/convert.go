package server

import (
	"github.com/hookferry/hookferry/gen"
	"github.com/hookferry/hookferry/webhook"
)

// toAPIWebhook renders a webhook; the secret only when showSecret is set.
func toAPIWebhook(w webhook.Webhook, showSecret bool) gen.Webhook {
	out := gen.Webhook{
		Id:             w.ID,
		Url:            w.URL,
		Subscription:   gen.Subscription{EventTypes: w.EventTypes},
		Ordered:        w.Ordered,
		Status:         gen.WebhookStatus(w.Status),
		BufferedEvents: w.BufferedEvents,
		CreatedAt:      w.CreatedAt,
		UpdatedAt:      w.UpdatedAt,
		PausedAt:       w.PausedAt,
	}
	if out.Subscription.EventTypes == nil {
		out.Subscription.EventTypes = []string{}
	}
	if w.PauseReason != "" {
		r := gen.PauseReason(w.PauseReason)
		out.PauseReason = &r
	}
	if showSecret {
		out.Authentication = &gen.Authentication{Scheme: gen.AuthenticationSchemeSTANDARDWEBHOOKS, Secret: w.Secret}
	}
	return out
}

func wantSecret(show *bool) bool { return show != nil && *show }
