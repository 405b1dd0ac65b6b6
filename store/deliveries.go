package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hookferry/hookferry/webhook"
	"gorm.io/gorm"
)

// Result is what became of a claimed delivery.
type Result struct {
	DeliveryID int64
	ClaimSeq   int64
	WebhookID  string
	// Status is the delivery's new status: StatusDelivered, StatusFailed (out of
	// retries), or StatusPending (retry at NextAttemptAt, or a released lease).
	Status        string
	NextAttemptAt time.Time // when Status is StatusPending
	SchedulePos   int       // retries used, after this attempt
	// Attempted says an HTTP attempt was made and counts; a released lease
	// (shutdown, or a failure on our side) leaves attempts and errors alone.
	Attempted   bool
	AttemptedAt time.Time
	StatusCode  int // 0 when the receiver did not answer
	Error       string
	Duration    time.Duration
	// Gone says the receiver answered 410 Gone: the webhook is paused
	// (ENDPOINT_GONE) and the delivery waits with its other deliveries.
	Gone bool
}

// Paused is a webhook that Record paused, and why.
type Paused struct {
	WebhookID string
	Reason    webhook.PauseReason
}

// Record writes a batch of results in one transaction: the deliveries' new
// state (only where the claim is still theirs), the attempt log, and the
// webhooks' failure streaks. It pauses the webhooks whose receiver answered
// 410 Gone (ENDPOINT_GONE) and those whose failures have lasted longer than
// autoPauseAfter (DELIVERY_FAILURES), and returns them.
//
// A result whose ClaimSeq is no longer the delivery's (its lease was taken
// over, or it was redelivered) writes nothing to the delivery: its status,
// attempts count, schedule and lease are the current claim's. The attempt it
// reports did reach the receiver, so it is still logged, and it still counts
// for the webhook (a success ends a failure streak, a failure starts one, a
// 410 pauses it): those are facts about the receiver, not about the claim.
func (s *Store) Record(ctx context.Context, results []Result, autoPauseAfter time.Duration) (paused []Paused, err error) {
	defer wrap(&err, "store.Record(%d)", len(results))
	if len(results) == 0 {
		return nil, nil
	}
	now := s.clock()
	// A webhook paused here may have more to hold than its first batch; a
	// release under way may have room for more once half a batch of
	// deliveries are recorded (each round counts what is due).
	defer func() {
		if err == nil && (len(paused) > 0 || s.releasing.Load() && s.recordedWhileReleasing.Add(int64(len(results))) >= releaseSize/2) {
			s.recordedWhileReleasing.Store(0)
			s.releaseHeld()
		}
	}()
	err = s.relaxedTransaction(ctx, func(tx *gorm.DB) error {
		paused = nil // a retried transaction starts over
		applied, err := s.updateDeliveries(tx, results)
		if err != nil {
			return err
		}
		var attempts []attemptRow
		succeeded, failed, gone := map[string]bool{}, map[string]bool{}, map[string]bool{}
		for _, r := range results {
			if !r.Attempted {
				continue
			}
			switch {
			case r.Status == StatusDelivered:
				succeeded[r.WebhookID] = true
			case r.Gone:
				gone[r.WebhookID] = true
			default:
				failed[r.WebhookID] = true
			}
			if r.Status == StatusDelivered && applied[r.DeliveryID] {
				// The delivery's row is the log of its successful attempt
				// (delivered_at, last_status_code): the attempts log keeps the
				// others, failed or stale.
				continue
			}
			a := attemptRow{DeliveryID: r.DeliveryID, AttemptedAt: r.AttemptedAt.UTC(), Error: r.Error, DurationMS: float64(r.Duration.Microseconds()) / 1000}
			if r.StatusCode != 0 {
				a.StatusCode = &r.StatusCode
			}
			attempts = append(attempts, a)
		}
		if len(attempts) > 0 {
			if err := s.insertAttempts(tx, attempts); err != nil {
				return err
			}
		}
		for id := range succeeded {
			delete(failed, id)
		}
		if len(succeeded) > 0 {
			if err := tx.Model(&webhookRow{}).Where("id IN ? AND failing_since IS NOT NULL", keys(succeeded)).
				Update("failing_since", nil).Error; err != nil {
				return err
			}
		}
		if err := s.pauseFor(tx, keys(gone), webhook.PauseReasonEndpointGone, now, &paused); err != nil {
			return err
		}
		if len(failed) == 0 {
			return nil
		}
		ids := keys(failed)
		if err := tx.Model(&webhookRow{}).Where("id IN ? AND failing_since IS NULL", ids).Update("failing_since", now).Error; err != nil {
			return err
		}
		if autoPauseAfter <= 0 {
			return nil
		}
		var due []string
		if err := tx.Model(&webhookRow{}).Where("id IN ? AND status = ? AND failing_since <= ?", ids, webhook.StatusActive, now.Add(-autoPauseAfter)).
			Pluck("id", &due).Error; err != nil {
			return err
		}
		return s.pauseFor(tx, due, webhook.PauseReasonDeliveryFailures, now, &paused)
	})
	if err != nil {
		return nil, err
	}
	for _, p := range paused {
		s.signal(webhooksChannel, p.WebhookID)
	}
	return paused, nil
}

// pauseFor pauses those of ids that are active, for reason, holds their
// deliveries and tells every instance; it appends them to paused.
func (s *Store) pauseFor(tx *gorm.DB, ids []string, reason webhook.PauseReason, now time.Time, paused *[]Paused) error {
	if len(ids) == 0 {
		return nil
	}
	var active []string
	if err := tx.Model(&webhookRow{}).Where("id IN ? AND status = ?", ids, webhook.StatusActive).Pluck("id", &active).Error; err != nil {
		return err
	}
	if len(active) == 0 {
		return nil
	}
	if err := tx.Model(&webhookRow{}).Where("id IN ?", active).Updates(map[string]any{
		"status": string(webhook.StatusPaused), "pause_reason": string(reason), "paused_at": now, "updated_at": now, "release_due_at": nil,
	}).Error; err != nil {
		return err
	}
	if _, err := s.holdStart(tx, active); err != nil {
		return err
	}
	for _, id := range active {
		*paused = append(*paused, Paused{WebhookID: id, Reason: reason})
	}
	return s.notifyWebhooks(tx, active)
}

// updateDeliveries writes every result in one UPDATE … FROM (VALUES …), and
// returns the deliveries it changed: a stale result (its lease ended and was
// taken over) changes nothing.
func (s *Store) updateDeliveries(tx *gorm.DB, results []Result) (map[int64]bool, error) {
	const cols = 9
	cast := s.dialect.typed
	row := "(" + strings.Join([]string{cast("BIGINT"), cast("BIGINT"), cast("TEXT"), cast("INTEGER"), cast("INTEGER"),
		cast("TIMESTAMPTZ"), cast("INTEGER"), cast("TEXT"), cast("TIMESTAMPTZ")}, ", ") + ")"
	values := make([]string, len(results))
	args := make([]any, 0, len(results)*cols)
	for i, r := range results {
		values[i] = row
		var next, deliveredAt *time.Time
		if r.Status == StatusPending && !r.NextAttemptAt.IsZero() {
			t := r.NextAttemptAt.UTC().Truncate(time.Microsecond)
			next = &t
		}
		if r.Status == StatusDelivered {
			t := r.AttemptedAt.UTC().Truncate(time.Microsecond)
			deliveredAt = &t
		}
		var code *int
		if r.StatusCode != 0 {
			code = &r.StatusCode
		}
		attempted := 0
		if r.Attempted {
			attempted = 1
		}
		args = append(args, r.DeliveryID, r.ClaimSeq, r.Status, attempted, r.SchedulePos, next, code, r.Error, deliveredAt)
	}
	// VALUES columns are column1…column9 on both engines.
	q := `UPDATE deliveries SET
		status = v.column3,
		attempts = deliveries.attempts + v.column4,
		schedule_pos = v.column5,
		next_attempt_at = CASE WHEN v.column3 <> 'PENDING' THEN NULL
			WHEN EXISTS (SELECT 1 FROM webhooks w WHERE w.id = deliveries.webhook_id AND w.status = 'PAUSED') THEN NULL
			ELSE COALESCE(v.column6, deliveries.next_attempt_at) END,
		last_status_code = CASE WHEN v.column4 = 1 THEN v.column7 ELSE deliveries.last_status_code END,
		last_error = CASE WHEN v.column4 = 1 THEN v.column8 ELSE deliveries.last_error END,
		delivered_at = COALESCE(v.column9, deliveries.delivered_at),
		finished_at = CASE WHEN v.column3 = 'PENDING' THEN NULL ELSE ` + cast("TIMESTAMPTZ") + ` END,
		leased_until = NULL
		FROM (VALUES ` + strings.Join(values, ", ") + `) AS v
		WHERE deliveries.id = v.column1 AND deliveries.claim_seq = v.column2 AND deliveries.leased_until IS NOT NULL
		RETURNING deliveries.id`
	var ids []int64
	if err := tx.Raw(q, append([]any{s.clock()}, args...)...).Scan(&ids).Error; err != nil {
		return nil, err
	}
	applied := make(map[int64]bool, len(ids))
	for _, id := range ids {
		applied[id] = true
	}
	return applied, nil
}

// insertAttempts logs attempts in one statement, skipping those whose delivery
// was deleted meanwhile (they would break the foreign key).
func (s *Store) insertAttempts(tx *gorm.DB, as []attemptRow) error {
	cast := s.dialect.typed
	row := "(" + strings.Join([]string{cast("BIGINT"), cast("TIMESTAMPTZ"), cast("INTEGER"), cast("TEXT"), cast("DOUBLE PRECISION")}, ", ") + ")"
	rows := make([]string, len(as))
	args := make([]any, 0, len(as)*5)
	for i, a := range as {
		rows[i] = row
		args = append(args, a.DeliveryID, a.AttemptedAt, a.StatusCode, a.Error, a.DurationMS)
	}
	q := `INSERT INTO attempts (delivery_id, attempted_at, status_code, error, duration_ms)
		SELECT v.column1, v.column2, v.column3, v.column4, v.column5 FROM (VALUES ` + strings.Join(rows, ", ") + `) AS v
		WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.id = v.column1)`
	return tx.Exec(q, args...).Error
}

// Delivery is a delivery as the log shows it.
type Delivery struct {
	ID             string
	EventID        string
	EventType      string
	Status         string
	Attempts       int
	LastStatusCode *int
	LastError      string
	NextAttemptAt  *time.Time
	CreatedAt      time.Time
	DeliveredAt    *time.Time
}

// DeliveryPage is one page of a webhook's delivery log.
type DeliveryPage struct {
	Items      []Delivery
	NextCursor string // "" on the last page
}

// ErrBadCursor is a cursor this store did not hand out.
var ErrBadCursor = errors.New("invalid cursor")

// ListDeliveries returns the owner's webhook's deliveries, newest first, limit
// at a time after cursor, optionally only those in status.
func (s *Store) ListDeliveries(ctx context.Context, owner webhook.Owner, webhookID, status, cursor string, limit int) (_ DeliveryPage, err error) {
	defer wrap(&err, "store.ListDeliveries(%s)", webhookID)
	db := s.db.WithContext(ctx)
	if _, err := s.getWebhook(db, owner, webhookID, false); err != nil {
		return DeliveryPage{}, err
	}
	q := db.Where("webhook_id = ?", webhookID)
	if status != "" {
		q = q.Where("status = ?", status)
	}
	if cursor != "" {
		before, err := parseDeliveryID(cursor)
		if err != nil {
			return DeliveryPage{}, ErrBadCursor
		}
		q = q.Where("id < ?", before)
	}
	var rows []deliveryRow
	if err := q.Order("id DESC").Limit(limit + 1).Find(&rows).Error; err != nil {
		return DeliveryPage{}, err
	}
	var page DeliveryPage
	if len(rows) > limit {
		rows = rows[:limit]
		page.NextCursor = deliveryID(rows[limit-1].ID)
	}
	page.Items = make([]Delivery, len(rows))
	for i, r := range rows {
		page.Items[i] = r.toDelivery()
	}
	return page, nil
}

// Redeliver queues the owner's webhook's delivery again, due now, with a fresh
// retry schedule. It answers ErrNotFound for an unknown webhook and
// ErrDeliveryNotFound for a delivery the webhook does not have.
func (s *Store) Redeliver(ctx context.Context, owner webhook.Owner, webhookID, id string) (_ Delivery, err error) {
	defer wrap(&err, "store.Redeliver(%s, %s)", webhookID, id)
	now := s.clock()
	var out Delivery
	err = s.transaction(ctx, func(tx *gorm.DB) error {
		w, err := s.getWebhook(tx, owner, webhookID, true)
		if err != nil {
			return err
		}
		due := &now
		if w.Status == webhook.StatusPaused {
			due = nil // held until unpause
		}
		n, err := parseDeliveryID(id)
		if err != nil {
			return ErrDeliveryNotFound
		}
		set := map[string]any{
			"status": StatusPending, "next_attempt_at": due, "schedule_pos": 0, "leased_until": nil, "delivered_at": nil, "finished_at": nil,
			"claim_seq": gorm.Expr("claim_seq + 1"),
		}
		if w.Ordered {
			// The redelivered one is older than the webhook's other pending
			// deliveries: it goes next. Claims under way on this webhook
			// finish first (their rows are locked), so the claim that sees it
			// as the oldest also sees their leases; and a lease it has stays,
			// so that an attempt still on the wire is never joined by another.
			if err := s.dialect.lockPending(tx, webhookID); err != nil {
				return err
			}
			delete(set, "leased_until")
		}
		res := tx.Model(&deliveryRow{}).Where("id = ? AND webhook_id = ?", n, webhookID).Updates(set)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrDeliveryNotFound
		}
		var row deliveryRow
		if err := tx.Take(&row, n).Error; err != nil {
			return err
		}
		out = row.toDelivery()
		return s.dialect.notify(tx, deliveriesChannel, "")
	})
	if err == nil {
		s.signal(deliveriesChannel, "")
	}
	return out, err
}

// ErrDeliveryNotFound is a delivery id the webhook does not have.
var ErrDeliveryNotFound = errors.New("delivery not found")

// QueueDepth counts the deliveries waiting, paused webhooks' included.
func (s *Store) QueueDepth(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Table("webhook_backlog").Select("COALESCE(SUM(n), 0)").Scan(&n).Error
	return n, err
}

// notifyWebhooks tells the other instances, on commit, that the webhooks
// were paused or deleted.
func (s *Store) notifyWebhooks(tx *gorm.DB, ids []string) error {
	for _, id := range ids {
		if err := s.dialect.notify(tx, webhooksChannel, id); err != nil {
			return err
		}
	}
	return nil
}

func (r deliveryRow) toDelivery() Delivery {
	d := Delivery{
		ID: deliveryID(r.ID), EventID: r.EventID, EventType: r.EventType, Status: r.Status, Attempts: r.Attempts,
		LastStatusCode: r.LastStatusCode, LastError: r.LastError, CreatedAt: r.CreatedAt.UTC(), DeliveredAt: utcPtr(r.DeliveredAt),
	}
	if r.Status == StatusPending {
		d.NextAttemptAt = utcPtr(r.NextAttemptAt)
	}
	return d
}

func deliveryID(n int64) string { return "dlv_" + strconv.FormatInt(n, 10) }

func parseDeliveryID(s string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimPrefix(s, "dlv_"), 10, 64)
	if err != nil || n <= 0 || !strings.HasPrefix(s, "dlv_") {
		return 0, fmt.Errorf("not a delivery id: %q", s)
	}
	return n, nil
}

func unique(ss []string) []string {
	seen := make(map[string]bool, len(ss))
	out := ss[:0:0]
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func sortClaims(cs []Claim) {
	// Within a batch, older deliveries have smaller ids.
	slices.SortFunc(cs, func(a, b Claim) int { return cmp.Compare(a.DeliveryID, b.DeliveryID) })
}
