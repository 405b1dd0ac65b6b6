package store

import "time"

// The rows of the schema, which the migrations in migrations/ create (the gorm
// tags only describe it). Times are UTC; uniqueness is the database's job.

type webhookRow struct {
	ID            string `gorm:"primaryKey;size:40"`
	TenantID      string `gorm:"not null;size:255;uniqueIndex:ux_webhooks_owner_url,priority:1;index:ix_webhooks_owner,priority:1"`
	UserID        string `gorm:"not null;size:255;uniqueIndex:ux_webhooks_owner_url,priority:2;index:ix_webhooks_owner,priority:2"`
	URL           string `gorm:"not null"`
	NormalizedURL string `gorm:"not null;uniqueIndex:ux_webhooks_owner_url,priority:3"`
	Status        string `gorm:"not null;size:16"`
	PauseReason   string `gorm:"not null;size:32;default:''"`
	Secret        string `gorm:"not null"`
	// PreviousSecrets: the sealed JSON of the replaced keys that still sign
	// ([]webhook.PreviousKey), or '' for none.
	PreviousSecrets string    `gorm:"not null;default:''"`
	CreatedAt       time.Time `gorm:"not null;index:ix_webhooks_owner,priority:3"`
	UpdatedAt       time.Time `gorm:"not null"`
	PausedAt        *time.Time
	LastUnpausedAt  *time.Time
	// ReleaseDueAt: some deliveries held while the webhook was paused are
	// still to be released, due at this time (the unpause's).
	ReleaseDueAt *time.Time
	// Holding: some pending deliveries of the paused webhook still have a due
	// time, to be taken away by the releaser.
	Holding bool `gorm:"not null;default:false"`
	// FailingSince is the first failed attempt since the last success; the
	// webhook is auto-paused once it is older than the auto-pause window.
	FailingSince *time.Time
	// Ordered: at most one delivery leased at a time, the oldest pending.
	Ordered bool `gorm:"not null;default:false"`
}

func (webhookRow) TableName() string { return "webhooks" }

type webhookEventTypeRow struct {
	WebhookID string     `gorm:"primaryKey;size:40"`
	EventType string     `gorm:"primaryKey;size:128;index:ix_webhook_event_types_type"`
	Webhook   webhookRow `gorm:"foreignKey:WebhookID;constraint:OnDelete:CASCADE"`
}

func (webhookEventTypeRow) TableName() string { return "webhook_event_types" }

// ownerRow counts the webhooks of a (tenant, user); the conditional increment of
// the count is what keeps the per-user limit under concurrent registrations.
type ownerRow struct {
	TenantID     string `gorm:"primaryKey;size:255"`
	UserID       string `gorm:"primaryKey;size:255"`
	WebhookCount int    `gorm:"not null;default:0"`
}

func (ownerRow) TableName() string { return "owners" }

type tokenRow struct {
	ID          string    `gorm:"primaryKey;size:40"`
	Hash        string    `gorm:"not null;size:64;uniqueIndex"`
	TenantID    string    `gorm:"not null;size:255"`
	UserID      string    `gorm:"not null;size:255"`
	Permissions string    `gorm:"not null"` // comma-separated
	CreatedAt   time.Time `gorm:"not null"`
	RevokedAt   *time.Time
	ExpiresAt   *time.Time // nil: never (portal sessions expire)
}

func (tokenRow) TableName() string { return "tokens" }

type eventRow struct {
	ID         string    `gorm:"primaryKey;size:40"`
	TenantID   string    `gorm:"not null;size:255;uniqueIndex:ux_events_producer,priority:1"`
	ProducerID *string   `gorm:"size:255;uniqueIndex:ux_events_producer,priority:2"`
	Type       string    `gorm:"not null;size:128"`
	Payload    []byte    `gorm:"not null"`           // the delivery envelope, encoded once
	Deliveries int64     `gorm:"not null;default:0"` // queued at publication, for repeats of ProducerID
	CreatedAt  time.Time `gorm:"not null"`
}

func (eventRow) TableName() string { return "events" }

// The statuses of a delivery.
const (
	StatusPending   = "PENDING"
	StatusDelivered = "DELIVERED"
	StatusFailed    = "FAILED"
)

// deliveryRow is one event on its way to one webhook. A worker claims it by
// setting LeasedUntil and bumping ClaimSeq; its result is written only if
// ClaimSeq still matches, so a worker whose lease expired cannot overwrite the
// work of the one that took over.
type deliveryRow struct {
	ID             int64      `gorm:"primaryKey;autoIncrement;index:ix_deliveries_due,priority:2"`
	EventID        string     `gorm:"not null;size:40;index"`
	WebhookID      string     `gorm:"not null;size:40;index:ix_deliveries_webhook,priority:1"`
	EventType      string     `gorm:"not null;size:128"`
	Status         string     `gorm:"not null;size:16;index:ix_deliveries_webhook,priority:2"`
	Attempts       int        `gorm:"not null;default:0"`
	SchedulePos    int        `gorm:"not null;default:0"` // retries used of the schedule
	NextAttemptAt  *time.Time `gorm:"index:ix_deliveries_due,priority:1,where:status = 'PENDING'"`
	LeasedUntil    *time.Time
	ClaimSeq       int64 `gorm:"not null;default:0"`
	LastStatusCode *int
	LastError      string    `gorm:"not null;default:''"`
	CreatedAt      time.Time `gorm:"not null"`
	DeliveredAt    *time.Time
	FinishedAt     *time.Time // when it became DELIVERED or FAILED
	Webhook        webhookRow `gorm:"foreignKey:WebhookID;constraint:OnDelete:CASCADE"`
	Event          eventRow   `gorm:"foreignKey:EventID;constraint:OnDelete:CASCADE"`
}

func (deliveryRow) TableName() string { return "deliveries" }

// attemptRow is the log of one HTTP attempt that did not deliver, or that a
// stale claim made; the delivery's own row records the attempt that delivered
// it (delivered_at, last_status_code), so the common case writes no row here.
type attemptRow struct {
	ID          int64     `gorm:"primaryKey;autoIncrement"`
	DeliveryID  int64     `gorm:"not null;index"`
	AttemptedAt time.Time `gorm:"not null"`
	StatusCode  *int
	Error       string      `gorm:"not null;default:''"`
	DurationMS  float64     `gorm:"column:duration_ms;not null"`
	Delivery    deliveryRow `gorm:"foreignKey:DeliveryID;constraint:OnDelete:CASCADE"`
}

func (attemptRow) TableName() string { return "attempts" }
