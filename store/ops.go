package store

import (
	"context"
	"time"

	"github.com/hookferry/hookferry/webhook"
	"gorm.io/gorm"
)

// opBatch bounds the rows one transaction of a prune or an erasure removes, so
// that neither holds locks for long nor keeps publishes waiting.
const opBatch = 1000

// MigrationState is one migration and whether the database has it.
type MigrationState struct {
	Version   int64
	Name      string
	Applied   bool
	AppliedAt time.Time
}

// SchemaStatus is where a database's schema stands.
type SchemaStatus struct {
	Current    int64 // the newest version applied; 0 for none
	Latest     int64 // the newest this build knows
	Migrations []MigrationState
}

// Ready reports whether the database answers and accepts writes: it takes the
// write lock of a one-row table and rolls back.
func (s *Store) Ready(ctx context.Context) error {
	tx := s.db.WithContext(ctx).Begin()
	if tx.Error != nil {
		return tx.Error
	}
	defer tx.Rollback()
	return tx.Exec("UPDATE " + migrationsTable + " SET is_applied = is_applied WHERE id = (SELECT MIN(id) FROM " + migrationsTable + ")").Error
}

// PruneCounts is what a prune removed.
type PruneCounts struct {
	Deliveries, Attempts, Events int64
	Tokens                       int64 // expired before the cutoff (portal sessions)
	// Busy says another instance was pruning (PostgreSQL): nothing was done.
	Busy bool
}

// Prune removes, in bounded batches, the deliveries DELIVERED or FAILED longer
// than olderThan ago, their attempts, and the events older than that which no
// longer have a delivery, and the tokens (portal sessions) expired longer ago
// than that. PENDING deliveries (buffered, due or retrying) and their events
// stay, however old. On PostgreSQL one instance prunes at a time.
func (s *Store) Prune(ctx context.Context, olderThan time.Duration) (c PruneCounts, err error) {
	defer wrap(&err, "store.Prune(%s)", olderThan)
	cutoff := s.clock().Add(-olderThan)
	release, ok, err := s.dialect.tryLock(ctx, s.db, "prune")
	if err != nil || !ok {
		return PruneCounts{Busy: !ok && err == nil}, err
	}
	defer release()
	for {
		res := s.db.WithContext(ctx).Exec(`DELETE FROM tokens WHERE id IN (SELECT id FROM tokens WHERE expires_at < ? LIMIT ?)`, cutoff, opBatch)
		if res.Error != nil {
			return c, res.Error
		}
		c.Tokens += res.RowsAffected
		if res.RowsAffected < opBatch {
			break
		}
	}
	for {
		var n, a int64
		err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			q := tx.Model(&deliveryRow{}).Select("id").
				Where("status <> ? AND finished_at < ?", StatusPending, cutoff).Order("finished_at").Limit(opBatch)
			q = s.dialect.forUpdateSkipLocked(q)
			var ids []int64
			if err := q.Scan(&ids).Error; err != nil || len(ids) == 0 {
				return err
			}
			var err error
			a, n, err = deleteDeliveries(tx, ids)
			return err
		})
		if err != nil {
			return c, err
		}
		c.Deliveries, c.Attempts = c.Deliveries+n, c.Attempts+a
		if n == 0 {
			break
		}
	}
	// Events by age, a page at a time: those that still have deliveries are
	// stepped over, not scanned again.
	var afterAt time.Time
	afterID := ""
	for {
		var page []eventRow
		if err := s.db.WithContext(ctx).Select("id", "created_at").
			Where("created_at < ? AND (created_at > ? OR (created_at = ? AND id > ?))", cutoff, afterAt, afterAt, afterID).
			Order("created_at, id").Limit(opBatch).Find(&page).Error; err != nil {
			return c, err
		}
		if len(page) == 0 {
			return c, s.shrink(ctx, c)
		}
		afterAt, afterID = page[len(page)-1].CreatedAt, page[len(page)-1].ID
		ids := make([]string, len(page))
		for i, e := range page {
			ids[i] = e.ID
		}
		res := s.db.WithContext(ctx).Exec(`DELETE FROM events WHERE id IN ? AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id)`, ids)
		if res.Error != nil {
			return c, res.Error
		}
		c.Events += res.RowsAffected
	}
}

// shrink hands the pages a prune freed back to the file system (SQLite; on
// PostgreSQL autovacuum makes them reusable).
func (s *Store) shrink(ctx context.Context, c PruneCounts) error {
	if c.Deliveries+c.Attempts+c.Events+c.Tokens == 0 {
		return nil
	}
	return s.dialect.shrink(ctx, s.db)
}

// deleteDeliveries removes deliveries and their attempts.
func deleteDeliveries(tx *gorm.DB, ids []int64) (attempts, deliveries int64, err error) {
	res := tx.Where("delivery_id IN ?", ids).Delete(&attemptRow{})
	if res.Error != nil {
		return 0, 0, res.Error
	}
	attempts = res.RowsAffected
	res = tx.Where("id IN ?", ids).Delete(&deliveryRow{})
	return attempts, res.RowsAffected, res.Error
}

// EraseCounts is what an erasure removed.
type EraseCounts struct{ Webhooks, Deliveries, Attempts, Tokens, Events int64 }

// Erase removes every token, webhook, delivery and attempt of (tenant, user),
// or of the whole tenant and its events when userID is "", in bounded batches.
// Its tokens stop working and its webhooks stop receiving, in every process,
// before the first batch of deletions.
func (s *Store) Erase(ctx context.Context, tenantID, userID string) (c EraseCounts, err error) {
	defer wrap(&err, "store.Erase(%s/%s)", tenantID, userID)
	owned := func(q *gorm.DB) *gorm.DB {
		q = q.Where("tenant_id = ?", tenantID)
		if userID != "" {
			q = q.Where("user_id = ?", userID)
		}
		return q
	}
	db := s.db.WithContext(ctx)
	var hooks []string
	if err := owned(db.Model(&webhookRow{})).Order("id").Pluck("id", &hooks).Error; err != nil {
		return c, err
	}
	// First, in one short transaction: no token of theirs is accepted, no
	// webhook of theirs is claimed (paused), every instance told.
	err = db.Transaction(func(tx *gorm.DB) error {
		res := owned(tx.Model(&tokenRow{})).Where("revoked_at IS NULL").Update("revoked_at", s.clock())
		if res.Error != nil {
			return res.Error
		}
		if err := owned(tx.Model(&webhookRow{})).Updates(map[string]any{
			"status": string(webhook.StatusPaused), "pause_reason": string(webhook.PauseReasonUser), "paused_at": s.clock(),
		}).Error; err != nil {
			return err
		}
		return s.bumpRevision(tx)
	})
	if err != nil {
		return c, err
	}
	s.revised() // this process too: its cache of tokens, its claims
	for len(hooks) > 0 {
		chunk := hooks[:min(len(hooks), 100)]
		hooks = hooks[len(chunk):]
		for {
			var ids []int64
			if err := db.Model(&deliveryRow{}).Where("webhook_id IN ?", chunk).Limit(opBatch).Pluck("id", &ids).Error; err != nil {
				return c, err
			}
			if len(ids) == 0 {
				break
			}
			var a, n int64
			if err := db.Transaction(func(tx *gorm.DB) (err error) { a, n, err = deleteDeliveries(tx, ids); return err }); err != nil {
				return c, err
			}
			c.Attempts, c.Deliveries = c.Attempts+a, c.Deliveries+n
		}
		// What was published meanwhile goes with the webhooks (cascade).
		res := db.Where("id IN ?", chunk).Delete(&webhookRow{})
		if res.Error != nil {
			return c, res.Error
		}
		c.Webhooks += res.RowsAffected
	}
	if err := owned(db).Delete(&ownerRow{}).Error; err != nil {
		return c, err
	}
	if c.Tokens, err = deleteInBatches(db, &tokenRow{}, owned); err != nil {
		return c, err
	}
	if userID == "" {
		if c.Events, err = deleteInBatches(db, &eventRow{}, owned); err != nil {
			return c, err
		}
	}
	return c, nil
}

// deleteInBatches deletes the rows of model that where selects, opBatch at a time.
func deleteInBatches(db *gorm.DB, model any, where func(*gorm.DB) *gorm.DB) (int64, error) {
	var total int64
	for {
		var ids []string
		if err := where(db.Model(model)).Limit(opBatch).Pluck("id", &ids).Error; err != nil {
			return total, err
		}
		if len(ids) == 0 {
			return total, nil
		}
		res := db.Where("id IN ?", ids).Delete(model)
		if res.Error != nil {
			return total, res.Error
		}
		total += res.RowsAffected
	}
}
