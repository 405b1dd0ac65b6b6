package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// The rows of the schema. Times are UTC; uniqueness is the database's job.

type webhookRow struct {
	ID             string    `gorm:"primaryKey;size:40"`
	TenantID       string    `gorm:"not null;size:255;uniqueIndex:ux_webhooks_owner_url,priority:1;index:ix_webhooks_owner,priority:1"`
	UserID         string    `gorm:"not null;size:255;uniqueIndex:ux_webhooks_owner_url,priority:2;index:ix_webhooks_owner,priority:2"`
	URL            string    `gorm:"not null"`
	NormalizedURL  string    `gorm:"not null;uniqueIndex:ux_webhooks_owner_url,priority:3"`
	Status         string    `gorm:"not null;size:16"`
	PauseReason    string    `gorm:"not null;size:32;default:''"`
	Secret         string    `gorm:"not null"`
	CreatedAt      time.Time `gorm:"not null;index:ix_webhooks_owner,priority:3"`
	UpdatedAt      time.Time `gorm:"not null"`
	PausedAt       *time.Time
	LastUnpausedAt *time.Time
}

func (webhookRow) TableName() string { return "webhooks" }

type webhookEventTypeRow struct {
	WebhookID string `gorm:"primaryKey;size:40"`
	EventType string `gorm:"primaryKey;size:128;index:ix_webhook_event_types_type"`
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
}

func (tokenRow) TableName() string { return "tokens" }

// migrationLock is the PostgreSQL advisory lock that keeps two instances
// starting at once from migrating the same schema together.
const migrationLock = 0x686f6f6b // "hook"

func (s *Store) migrate(ctx context.Context) (err error) {
	defer wrap(&err, "store.migrate")
	models := []any{&webhookRow{}, &webhookEventTypeRow{}, &ownerRow{}, &tokenRow{}}
	if !s.postgres {
		return s.db.WithContext(ctx).AutoMigrate(models...)
	}
	return s.db.WithContext(ctx).Connection(func(conn *gorm.DB) error {
		if err := conn.Exec("SELECT pg_advisory_lock(?)", migrationLock).Error; err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		defer conn.Exec("SELECT pg_advisory_unlock(?)", migrationLock)
		return conn.AutoMigrate(models...)
	})
}
