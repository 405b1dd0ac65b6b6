package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hookferry/hookferry/webhook"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// RegisterWebhook stores w, a webhook built by webhook.New. It fails with
// ErrTooManyWebhooks when the owner already has maxPerUser webhooks and with
// ErrDuplicateURL when the owner registered the same normalised URL; both hold
// under concurrent registrations because the database enforces them.
func (s *Store) RegisterWebhook(ctx context.Context, w webhook.Webhook, maxPerUser int) (err error) {
	defer wrap(&err, "store.RegisterWebhook(%s)", w.ID)
	return s.transaction(ctx, func(tx *gorm.DB) error {
		owner := ownerRow{TenantID: w.Owner.TenantID, UserID: w.Owner.UserID}
		if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&owner).Error; err != nil {
			return err
		}
		// The conditional increment locks the owner's row (PostgreSQL) or the
		// database (SQLite), so concurrent registrations of one user queue here.
		res := tx.Model(&ownerRow{}).
			Where("tenant_id = ? AND user_id = ? AND webhook_count < ?", owner.TenantID, owner.UserID, maxPerUser).
			Update("webhook_count", gorm.Expr("webhook_count + 1"))
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrTooManyWebhooks
		}
		row := toWebhookRow(w)
		sealed, err := s.sealSecret(w.Secret)
		if err != nil {
			return err
		}
		row.Secret = sealed
		if err := tx.Create(&row).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return ErrDuplicateURL
			}
			return err
		}
		types := make([]webhookEventTypeRow, len(w.EventTypes))
		for i, t := range w.EventTypes {
			types[i] = webhookEventTypeRow{WebhookID: w.ID, EventType: t}
		}
		return tx.Create(&types).Error
	})
}

// ListWebhooks returns the owner's webhooks in creation order.
func (s *Store) ListWebhooks(ctx context.Context, owner webhook.Owner) (_ []webhook.Webhook, err error) {
	defer wrap(&err, "store.ListWebhooks(%s/%s)", owner.TenantID, owner.UserID)
	var rows []webhookRow
	if err := s.db.WithContext(ctx).
		Where("tenant_id = ? AND user_id = ?", owner.TenantID, owner.UserID).
		Order("created_at, id").Find(&rows).Error; err != nil {
		return nil, err
	}
	return s.complete(s.db.WithContext(ctx), rows)
}

// GetWebhook returns the owner's webhook id, or ErrNotFound.
func (s *Store) GetWebhook(ctx context.Context, owner webhook.Owner, id string) (_ webhook.Webhook, err error) {
	defer wrap(&err, "store.GetWebhook(%s)", id)
	return s.getWebhook(s.db.WithContext(ctx), owner, id, false)
}

// DeleteWebhook removes the owner's webhook id and everything queued for it, in
// one transaction, and returns it as it was.
func (s *Store) DeleteWebhook(ctx context.Context, owner webhook.Owner, id string) (_ webhook.Webhook, err error) {
	defer wrap(&err, "store.DeleteWebhook(%s)", id)
	var w webhook.Webhook
	err = s.transaction(ctx, func(tx *gorm.DB) error {
		var err error
		if w, err = s.getWebhook(tx, owner, id, true); err != nil {
			return err
		}
		// Its deliveries and their attempts go with it (ON DELETE CASCADE).
		if err := tx.Delete(&webhookRow{ID: id}).Error; err != nil {
			return err
		}
		if err := tx.Model(&ownerRow{}).
			Where("tenant_id = ? AND user_id = ?", owner.TenantID, owner.UserID).
			Update("webhook_count", gorm.Expr("webhook_count - 1")).Error; err != nil {
			return err
		}
		return s.notifyWebhooks(tx, []string{id})
	})
	if err == nil {
		s.signal(webhooksChannel, id)
	}
	return w, err
}

// WebhookChanges is what UpdateWebhook changes; a nil field stays as it is.
type WebhookChanges struct {
	URL, NormalizedURL *string  // both or neither; checked by webhook.CheckURL
	EventTypes         []string // checked by Catalog.CheckSubscription
	Ordered            *bool
	// Signing, when it differs from the webhook's, rotates its key to one of
	// the new kind, the old one signing on for webhook.DefaultPreviousTTL.
	Signing *webhook.Signing
}

// UpdateWebhook applies ch to the owner's webhook id in one transaction and
// returns the webhook as it is now; changes that change nothing leave it, and
// its updated_at, untouched. Its deliveries and status stay, and so does its
// secret unless the signing changes. It fails
// with ErrDuplicateURL when another webhook of the owner has the new
// normalised URL (the database's unique index decides).
//
// A new URL or ordering is signalled like a pause: the dispatchers give back
// the claims they hold for the webhook that have not started, so the next
// claim reads the new URL and obeys the new ordering; an attempt already
// started finishes as it began.
func (s *Store) UpdateWebhook(ctx context.Context, owner webhook.Owner, id string, ch WebhookChanges) (_ webhook.Webhook, err error) {
	defer wrap(&err, "store.UpdateWebhook(%s)", id)
	var w webhook.Webhook
	var resignal bool
	err = s.transaction(ctx, func(tx *gorm.DB) error {
		resignal = false // a run the database aborted changed nothing
		var err error
		if w, err = s.getWebhook(tx, owner, id, true); err != nil {
			return err
		}
		cols := map[string]any{}
		if ch.URL != nil && (*ch.URL != w.URL || *ch.NormalizedURL != w.NormalizedURL) {
			w.URL, w.NormalizedURL = *ch.URL, *ch.NormalizedURL
			cols["url"], cols["normalized_url"] = w.URL, w.NormalizedURL
			resignal = true
		}
		if ch.Ordered != nil && *ch.Ordered != w.Ordered {
			w.Ordered = *ch.Ordered
			cols["ordered"] = w.Ordered
			resignal = true
		}
		types := ch.EventTypes != nil && !slices.Equal(slices.Sorted(slices.Values(ch.EventTypes)), w.EventTypes)
		rotate := ch.Signing != nil && *ch.Signing != w.Signing()
		if len(cols) == 0 && !types && !rotate {
			return nil
		}
		now := s.clock()
		w.UpdatedAt = now.UTC().Truncate(time.Microsecond)
		cols["updated_at"] = w.UpdatedAt
		if err := tx.Model(&webhookRow{ID: id}).Updates(cols).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return ErrDuplicateURL
			}
			return err
		}
		if rotate {
			if err := s.rotateKeys(tx, &w, *ch.Signing, webhook.DefaultPreviousTTL, now); err != nil {
				return err
			}
			resignal = true
		}
		if types {
			w.EventTypes = slices.Sorted(slices.Values(ch.EventTypes))
			if err := tx.Where("webhook_id = ?", id).Delete(&webhookEventTypeRow{}).Error; err != nil {
				return err
			}
			rows := make([]webhookEventTypeRow, len(w.EventTypes))
			for i, t := range w.EventTypes {
				rows[i] = webhookEventTypeRow{WebhookID: id, EventType: t}
			}
			if err := tx.Create(&rows).Error; err != nil {
				return err
			}
		}
		if resignal {
			return s.notifyWebhooks(tx, []string{id})
		}
		return nil
	})
	if err == nil && resignal {
		s.signal(webhooksChannel, id)
	}
	return w, err
}

// RotateSecret gives the owner's webhook id a new signing key of its kind; the
// one it replaces signs on for ttl (see webhook.Webhook.Rotate). Like a URL
// change it is signalled as a pause is, so the claims waiting for an attempt
// are given back and the next claim signs with the new keys: with ttl 0 the
// old key signs nothing started after the answer.
func (s *Store) RotateSecret(ctx context.Context, owner webhook.Owner, id string, ttl time.Duration) (_ webhook.Webhook, err error) {
	defer wrap(&err, "store.RotateSecret(%s)", id)
	var w webhook.Webhook
	err = s.transaction(ctx, func(tx *gorm.DB) error {
		var err error
		if w, err = s.getWebhook(tx, owner, id, true); err != nil {
			return err
		}
		now := s.clock()
		w.UpdatedAt = now.UTC().Truncate(time.Microsecond)
		if err := s.rotateKeys(tx, &w, w.Signing(), ttl, now); err != nil {
			return err
		}
		return s.notifyWebhooks(tx, []string{id})
	})
	if err == nil {
		s.signal(webhooksChannel, id)
	}
	return w, err
}

// rotateKeys rotates w's key to a new one of kind signing and writes the keys
// and w.UpdatedAt.
func (s *Store) rotateKeys(tx *gorm.DB, w *webhook.Webhook, signing webhook.Signing, ttl time.Duration, now time.Time) error {
	if err := w.Rotate(signing, ttl, now, s.random); err != nil {
		return err
	}
	return s.writeKeys(tx, *w)
}

// PauseWebhook pauses the owner's webhook id for reason; pausing a paused
// webhook changes nothing.
func (s *Store) PauseWebhook(ctx context.Context, owner webhook.Owner, id string, reason webhook.PauseReason) (_ webhook.Webhook, err error) {
	defer wrap(&err, "store.PauseWebhook(%s)", id)
	var w webhook.Webhook
	var more bool // pending deliveries are left for the releaser to hold
	err = s.transaction(ctx, func(tx *gorm.DB) error {
		var err error
		if w, err = s.getWebhook(tx, owner, id, true); err != nil {
			return err
		}
		if w.Status == webhook.StatusPaused {
			return nil
		}
		now := s.clock()
		w.Status, w.PauseReason, w.PausedAt, w.UpdatedAt = webhook.StatusPaused, reason, &now, now
		if err := tx.Model(&webhookRow{ID: id}).Updates(map[string]any{
			"status": string(w.Status), "pause_reason": string(reason), "paused_at": now, "updated_at": now, "release_due_at": nil,
		}).Error; err != nil {
			return err
		}
		if more, err = s.holdStart(tx, []string{id}); err != nil {
			return err
		}
		return s.notifyWebhooks(tx, []string{id})
	})
	if err == nil {
		s.signal(webhooksChannel, id)
	}
	if err == nil && more {
		s.releaseHeld() // the rest of the hold
	}
	return w, err
}

// UnpauseWebhook resumes the owner's paused webhook id. Unpausing an active
// webhook changes nothing. An effective unpause sooner than cooldown after the
// previous one fails with a *CooldownError.
func (s *Store) UnpauseWebhook(ctx context.Context, owner webhook.Owner, id string, cooldown time.Duration) (_ webhook.Webhook, err error) {
	defer wrap(&err, "store.UnpauseWebhook(%s)", id)
	var w webhook.Webhook
	var more bool // held deliveries are left for the releaser
	err = s.transaction(ctx, func(tx *gorm.DB) error {
		var err error
		if w, err = s.getWebhook(tx, owner, id, true); err != nil {
			return err
		}
		if w.Status == webhook.StatusActive {
			return nil
		}
		now := s.clock()
		if w.LastUnpausedAt != nil {
			if wait := w.LastUnpausedAt.Add(cooldown).Sub(now); wait > 0 {
				return &CooldownError{RetryAfter: wait}
			}
		}
		w.Status, w.PauseReason, w.PausedAt, w.LastUnpausedAt, w.UpdatedAt = webhook.StatusActive, "", nil, &now, now
		// The held deliveries become due now, oldest first: the first batch
		// here, the rest by the releaser, a batch per transaction.
		released, _, err := s.releaseBatch(tx, id, now, 0)
		if err != nil {
			return err
		}
		var releaseDue *time.Time
		if more = released == releaseSize; more {
			releaseDue = &now
		}
		// A new failure streak starts from here.
		if err := tx.Model(&webhookRow{ID: id}).Updates(map[string]any{
			"status": string(w.Status), "pause_reason": "", "paused_at": nil, "last_unpaused_at": now, "updated_at": now,
			"failing_since": nil, "release_due_at": releaseDue, "holding": false,
		}).Error; err != nil {
			return err
		}
		if w.BufferedEvents > 0 {
			return s.dialect.notify(tx, deliveriesChannel, "")
		}
		return nil
	})
	if err == nil && w.BufferedEvents > 0 {
		s.signal(deliveriesChannel, "")
	}
	if err == nil && more {
		s.releaseHeld()
	}
	return w, err
}

// getWebhook reads one webhook of owner; forUpdate locks its row until the end
// of the transaction.
func (s *Store) getWebhook(tx *gorm.DB, owner webhook.Owner, id string, forUpdate bool) (webhook.Webhook, error) {
	q := tx.Where("id = ? AND tenant_id = ? AND user_id = ?", id, owner.TenantID, owner.UserID)
	if forUpdate {
		q = s.dialect.forUpdate(q)
	}
	var row webhookRow
	if err := q.Take(&row).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return webhook.Webhook{}, ErrNotFound
		}
		return webhook.Webhook{}, err
	}
	ws, err := s.complete(tx, []webhookRow{row})
	if err != nil {
		return webhook.Webhook{}, err
	}
	return ws[0], nil
}

// complete turns rows into webhooks with their event types, in one query.
func (s *Store) complete(tx *gorm.DB, rows []webhookRow) ([]webhook.Webhook, error) {
	out := make([]webhook.Webhook, len(rows))
	if len(rows) == 0 {
		return out, nil
	}
	ids := make([]string, len(rows))
	byID := make(map[string]*webhook.Webhook, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
		out[i] = r.toWebhook()
		secret, err := s.openSecret(r.Secret)
		if err != nil {
			return nil, fmt.Errorf("webhook %s: %w", r.ID, err)
		}
		out[i].Secret = secret
		if out[i].PreviousKeys, err = s.openPrevious(r.PreviousSecrets); err != nil {
			return nil, fmt.Errorf("webhook %s: %w", r.ID, err)
		}
		byID[r.ID] = &out[i]
	}
	var types []webhookEventTypeRow
	if err := tx.Where("webhook_id IN ?", ids).Order("webhook_id, event_type").Find(&types).Error; err != nil {
		return nil, err
	}
	for _, t := range types {
		w := byID[t.WebhookID]
		w.EventTypes = append(w.EventTypes, t.EventType)
	}
	var buffered []struct {
		WebhookID string
		N         int64
	}
	// Kept by the database's triggers on deliveries (migration 00007).
	if err := tx.Table("webhook_backlog").Select("webhook_id, SUM(n) AS n").
		Where("webhook_id IN ?", ids).Group("webhook_id").Scan(&buffered).Error; err != nil {
		return nil, err
	}
	for _, b := range buffered {
		byID[b.WebhookID].BufferedEvents = b.N
	}
	return out, nil
}

func toWebhookRow(w webhook.Webhook) webhookRow {
	return webhookRow{
		ID: w.ID, TenantID: w.Owner.TenantID, UserID: w.Owner.UserID,
		URL: w.URL, NormalizedURL: w.NormalizedURL,
		Status: string(w.Status), PauseReason: string(w.PauseReason), Ordered: w.Ordered,
		CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt, PausedAt: w.PausedAt, LastUnpausedAt: w.LastUnpausedAt,
	}
}

func (r webhookRow) toWebhook() webhook.Webhook {
	return webhook.Webhook{
		ID: r.ID, Owner: webhook.Owner{TenantID: r.TenantID, UserID: r.UserID},
		URL: r.URL, NormalizedURL: r.NormalizedURL,
		Status: webhook.Status(r.Status), PauseReason: webhook.PauseReason(r.PauseReason), Ordered: r.Ordered,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
		PausedAt: utcPtr(r.PausedAt), LastUnpausedAt: utcPtr(r.LastUnpausedAt),
	}
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
