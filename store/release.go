package store

import (
	"context"
	"fmt"
	"time"

	"github.com/hookferry/hookferry/webhook"
	"gorm.io/gorm"
)

// A pause holds a webhook's pending deliveries (takes their due time away) and
// an unpause releases them (gives them one), a batch per transaction; the
// releaser goroutine does what one transaction of the pause or the unpause
// leaves.

// releaseSize is how many held deliveries one transaction releases: a single
// UPDATE of a million held deliveries held SQLite's writer, and every
// publish, for 8–9 s (a batch of 1,000 takes ~8 ms).
const releaseSize = 1000

// releaseAhead is how many due deliveries a release keeps ready for the
// claims: it releases the rest as they are delivered, so that releasing a
// million does not take the writer from the drain all at once.
const releaseAhead = 4 * releaseSize

// releaseBatch makes the oldest releaseSize held deliveries of the webhook
// after id after due at due, and says how many it released and the last id.
// The lower bound spares each batch the entries its predecessors left behind
// in the index; held rows older than it cannot appear while the webhook is
// active.
func (s *Store) releaseBatch(tx *gorm.DB, webhookID string, due time.Time, after int64) (n, last int64, err error) {
	// The order of ix_deliveries_webhook_due (all NULL: by id), which the
	// planner then walks, instead of the primary key's filtered.
	held := fmt.Sprintf(`SELECT id FROM deliveries WHERE webhook_id = ? AND status = 'PENDING' AND next_attempt_at IS NULL AND id > ?
		ORDER BY next_attempt_at, id LIMIT %d`, releaseSize)
	var ids []int64
	if err := tx.Raw(`UPDATE deliveries SET next_attempt_at = ? WHERE `+s.dialect.idIn("id", held)+` RETURNING id`,
		due, webhookID, after).Scan(&ids).Error; err != nil {
		return 0, 0, err
	}
	last = after
	for _, id := range ids {
		last = max(last, id)
	}
	return int64(len(ids)), last, nil
}

// releaseHeld asks the releaser for a round.
func (s *Store) releaseHeld() {
	s.releasing.Store(true)
	select {
	case s.releases <- struct{}{}:
	default: // one is pending already
	}
}

// releaseEvery is how often the releaser looks for releases that another
// instance, or this one before a restart, left unfinished.
const releaseEvery = 30 * time.Second

// releaser goes on with the holds of paused webhooks and the releases of
// unpaused ones: at start, after a pause or an unpause, after deliveries are
// recorded while a release is under way, and every releaseEvery.
func (s *Store) releaser() {
	defer s.writers.Done()
	tick := time.NewTicker(releaseEvery)
	defer tick.Stop()
	for {
		if err := s.settle(s.closingCtx); err != nil && s.closingCtx.Err() == nil && s.log != nil {
			s.log.Warn("store: holding or releasing deliveries failed", "error", err)
		}
		select {
		case <-s.closing:
			return
		case <-s.releases:
		case <-tick.C:
		}
	}
}

// settle runs a round of the releaser: the holds, then the releases.
func (s *Store) settle(ctx context.Context) error {
	s.releaseMu.Lock()
	defer s.releaseMu.Unlock()
	if err := s.holdAll(ctx); err != nil {
		return err
	}
	return s.releaseAll(ctx)
}

// releaseKey names one release: an unpause of a webhook, by its due time.
type releaseKey struct {
	webhookID string
	due       int64 // UnixNano
}

// releaseAll releases, a batch per transaction, held deliveries of every
// active webhook that still has some to release, until releaseAhead are due.
// A batch commits only while the webhook is active and its release is the
// same one: a pause in the middle holds everything again, and ends the
// release.
func (s *Store) releaseAll(ctx context.Context) error {
	var rows []webhookRow
	if err := s.db.WithContext(ctx).Select("id", "release_due_at").
		Where("release_due_at IS NOT NULL AND status = ?", webhook.StatusActive).Find(&rows).Error; err != nil {
		return err
	}
	s.releasing.Store(len(rows) > 0)
	// Where each release is (from the last round of this process); a
	// release that ended is forgotten.
	after := make(map[releaseKey]int64, len(rows))
	for _, r := range rows {
		key := releaseKey{r.ID, r.ReleaseDueAt.UnixNano()}
		after[key] = s.releasedTo[key]
	}
	s.releasedTo = after
	for _, r := range rows {
		key, due := releaseKey{r.ID, r.ReleaseDueAt.UnixNano()}, *r.ReleaseDueAt
		var released, last int64
		err := s.inBatches(ctx, r.ID, "w.status = ? AND w.release_due_at = ?", []any{webhook.StatusActive, due},
			func(tx *gorm.DB) (bool, error) {
				var ready int64
				if err := tx.Raw(fmt.Sprintf(`SELECT COUNT(*) FROM (SELECT 1 FROM deliveries
					WHERE webhook_id = ? AND status = 'PENDING' AND next_attempt_at IS NOT NULL LIMIT %d) AS d`, releaseAhead), r.ID).
					Scan(&ready).Error; err != nil || ready >= releaseAhead {
					released = 0
					return true, err // enough for now: the next recorded deliveries ask again
				}
				var err error
				if released, last, err = s.releaseBatch(tx, r.ID, due, after[key]); err != nil || released == releaseSize {
					return false, err
				}
				return true, tx.Model(&webhookRow{ID: r.ID}).Update("release_due_at", nil).Error
			},
			func() {
				if released > 0 {
					after[key] = last
					s.signal(deliveriesChannel, "")
					s.wakeOtherInstances()
				}
			})
		if err != nil {
			return err
		}
	}
	return nil
}

// inBatches runs batch in transactions of its own until it says it is done,
// each while the webhook's row, locked against a concurrent pause or unpause,
// still matches still (the work is still the latest pause's or unpause's);
// committed runs after each commit of a batch. The transactions are relaxed:
// the marker of the work (holding, release_due_at) is cleared by the last
// batch, after the others, so a batch lost in a crash is done again.
func (s *Store) inBatches(ctx context.Context, webhookID, still string, args []any, batch func(tx *gorm.DB) (done bool, err error), committed func()) error {
	for done := false; !done; {
		ran := false
		err := s.relaxedTransaction(ctx, func(tx *gorm.DB) error {
			var current []string
			if err := tx.Raw(`SELECT w.id FROM webhooks w WHERE w.id = ? AND `+still+s.dialect.lockReferenced("w"),
				append([]any{webhookID}, args...)...).Scan(&current).Error; err != nil || len(current) == 0 {
				done, ran = true, false
				return err
			}
			var err error
			done, err = batch(tx)
			ran = true
			return err
		})
		if err != nil {
			return err
		}
		if ran && committed != nil {
			committed()
		}
	}
	return nil
}

// holdStart takes the pending deliveries of webhooks just paused out of the
// claims' way (without a due time they are not in the range a claim scans, so
// a paused webhook's backlog costs the others nothing): the first releaseSize
// of each here, the rest by the releaser. A pause of a webhook with a million
// due deliveries is not one statement, which an auto-pause would run inside a
// record transaction. Until the hold ends the claims skip the webhook by its
// status. It says whether the releaser has more to hold.
func (s *Store) holdStart(tx *gorm.DB, webhookIDs []string) (more bool, err error) {
	var holding []string
	for _, id := range webhookIDs {
		n, err := s.holdBatch(tx, id)
		if err != nil {
			return false, err
		}
		if n == releaseSize {
			holding = append(holding, id)
		}
	}
	if len(holding) == 0 {
		return false, nil
	}
	return true, tx.Model(&webhookRow{}).Where("id IN ?", holding).Update("holding", true).Error
}

// holdBatch takes the due time of releaseSize of the webhook's pending
// deliveries, and says how many.
func (s *Store) holdBatch(tx *gorm.DB, webhookID string) (int64, error) {
	due := fmt.Sprintf(`SELECT id FROM deliveries WHERE webhook_id = ? AND status = 'PENDING' AND next_attempt_at IS NOT NULL
		ORDER BY next_attempt_at, id LIMIT %d`, releaseSize)
	res := tx.Exec(`UPDATE deliveries SET next_attempt_at = NULL WHERE `+s.dialect.idIn("id", due), webhookID)
	return res.RowsAffected, res.Error
}

// holdAll finishes the holds of paused webhooks, a batch per transaction. A
// batch commits only while the webhook is paused and holding: an unpause ends
// the hold.
func (s *Store) holdAll(ctx context.Context) error {
	var ids []string
	if err := s.db.WithContext(ctx).Model(&webhookRow{}).Where("holding = ? AND status = ?", true, webhook.StatusPaused).
		Pluck("id", &ids).Error; err != nil {
		return err
	}
	for _, id := range ids {
		err := s.inBatches(ctx, id, "w.status = ? AND w.holding = ?", []any{webhook.StatusPaused, true},
			func(tx *gorm.DB) (bool, error) {
				n, err := s.holdBatch(tx, id)
				if err != nil || n == releaseSize {
					return false, err
				}
				return true, tx.Model(&webhookRow{ID: id}).Update("holding", false).Error
			}, nil)
		if err != nil {
			return err
		}
	}
	return nil
}
