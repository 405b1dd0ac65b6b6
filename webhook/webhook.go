// Package webhook holds hookferry's domain: what a webhook is and the rules its
// URL and subscription obey. It knows neither HTTP nor SQL.
package webhook

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Status is whether deliveries go out to a webhook.
type Status string

// The statuses of a webhook.
const (
	StatusActive Status = "ACTIVE"
	StatusPaused Status = "PAUSED"
)

// PauseReason says who or what paused a webhook.
type PauseReason string

// The reasons a webhook is paused.
const (
	PauseReasonUser             PauseReason = "USER"
	PauseReasonDeliveryFailures PauseReason = "DELIVERY_FAILURES"
	// PauseReasonEndpointGone: the receiver answered 410 Gone.
	PauseReasonEndpointGone PauseReason = "ENDPOINT_GONE"
)

// Owner is the (tenant, user) a webhook belongs to; nobody else can see it.
type Owner struct {
	TenantID string
	UserID   string
}

// Webhook is a registered HTTPS callback and the event types it receives.
type Webhook struct {
	ID            string
	Owner         Owner
	URL           string
	NormalizedURL string
	EventTypes    []string
	Status        Status
	PauseReason   PauseReason // empty while ACTIVE
	// Secret is the current signing key: "whsec_…" (SYMMETRIC) or "whsk_…"
	// (ASYMMETRIC); PreviousKeys are the ones it replaced that still sign.
	Secret       string
	PreviousKeys []PreviousKey
	// Ordered webhooks get their deliveries one at a time, in publish order.
	Ordered        bool
	BufferedEvents int64
	CreatedAt      time.Time
	UpdatedAt      time.Time
	PausedAt       *time.Time
	LastUnpausedAt *time.Time // the last effective unpause, for the cooldown
}

// secretBytes is the size of a signing key; Standard Webhooks asks for 24 to 64.
const secretBytes = 32

// New builds an ACTIVE webhook with a fresh id and a signing key of the kind
// signing. The URL and
// event types must already have passed CheckURL and Catalog.CheckSubscription;
// the event types are kept sorted, as every answer lists them. The webhook's URL
// is the normalised one when it is given, so that deliveries go to, and answers
// show, exactly what the private-address and duplicate checks judged: a caller
// who sent https://ＥＸＡＭＰＬＥ.com sees https://example.com/.
func New(owner Owner, url, normalizedURL string, eventTypes []string, signing Signing, now time.Time, random io.Reader) (Webhook, error) {
	if random == nil {
		random = rand.Reader
	}
	id, err := NewID("wh", random)
	if err != nil {
		return Webhook{}, err
	}
	secret, err := NewSecret(signing, random)
	if err != nil {
		return Webhook{}, err
	}
	now = now.UTC().Truncate(time.Microsecond)
	if normalizedURL != "" {
		url = normalizedURL
	}
	return Webhook{
		ID:            id,
		Owner:         owner,
		URL:           url,
		NormalizedURL: normalizedURL,
		EventTypes:    slices.Sorted(slices.Values(eventTypes)),
		Status:        StatusActive,
		Secret:        secret,
		CreatedAt:     now,
		UpdatedAt:     now,
	}, nil
}

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// NewID returns prefix_ and a time-ordered random identifier (a UUIDv7 in
// lower-case Crockford base32), so ids sort roughly by creation.
func NewID(prefix string, random io.Reader) (string, error) {
	if random == nil {
		random = rand.Reader
	}
	u, err := uuid.NewV7FromReader(random)
	if err != nil {
		return "", fmt.Errorf("new id: %w", err)
	}
	return prefix + "_" + strings.ToLower(idEncoding.EncodeToString(u[:])), nil
}
