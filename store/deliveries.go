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

// Claim is a delivery leased to this worker.
type Claim struct {
	DeliveryID  int64
	ClaimSeq    int64
	EventID     string
	WebhookID   string
	URL         string
	Secret      string
	Payload     []byte
	Attempts    int
	SchedulePos int
}

type claimRow struct {
	ID          int64
	ClaimSeq    int64
	EventID     string
	WebhookID   string
	Attempts    int
	SchedulePos int
	URL         string
	Secret      string
	Payload     []byte
}

// Claim leases up to limit due deliveries of active webhooks, oldest first,
// until now+lease, skipping the webhooks in exclude. Rows that another worker
// holds are skipped, never waited for.
func (s *Store) Claim(ctx context.Context, limit int, lease time.Duration, exclude []string) (_ []Claim, err error) {
	defer wrap(&err, "store.Claim")
	now := s.clock()
	var rows []claimRow
	excludeSQL, args := "", []any{StatusPending, now, now, webhook.StatusActive}
	if len(exclude) > 0 {
		excludeSQL = " AND d2.webhook_id NOT IN ?"
		args = append(args, exclude)
	}
	args = append(args, limit)
	due := `SELECT d2.id FROM deliveries d2 JOIN webhooks w2 ON w2.id = d2.webhook_id
		WHERE d2.status = ? AND d2.next_attempt_at <= ? AND (d2.leased_until IS NULL OR d2.leased_until <= ?)
		AND w2.status = ?` + excludeSQL + ` ORDER BY d2.next_attempt_at, d2.id LIMIT ?`
	if s.postgres {
		// One statement: lock due rows that nobody holds, lease them, and return
		// them with what sending needs.
		q := `UPDATE deliveries AS d SET leased_until = ?, claim_seq = d.claim_seq + 1
			FROM events e, webhooks w
			WHERE d.id IN (` + due + ` FOR UPDATE OF d2 SKIP LOCKED)
			AND e.id = d.event_id AND w.id = d.webhook_id
			RETURNING d.id, d.claim_seq, d.event_id, d.webhook_id, d.attempts, d.schedule_pos, w.url, w.secret, e.payload`
		err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			if err := relaxCommit(tx); err != nil {
				return err
			}
			return tx.Raw(q, append([]any{now.Add(lease)}, args...)...).Scan(&rows).Error
		})
	} else {
		// SQLite has one writer: the transaction is the lock. RETURNING cannot
		// reach other tables, so the payloads come in a second query.
		err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			q := `UPDATE deliveries SET leased_until = ?, claim_seq = claim_seq + 1
				WHERE id IN (` + due + `)
				RETURNING id, claim_seq, event_id, webhook_id, attempts, schedule_pos`
			if err := tx.Raw(q, append([]any{now.Add(lease)}, args...)...).Scan(&rows).Error; err != nil {
				return err
			}
			if len(rows) == 0 {
				return nil
			}
			return s.completeClaims(tx, rows)
		})
	}
	if err != nil {
		return nil, err
	}
	out := make([]Claim, len(rows))
	secrets := map[string]string{} // opened once per webhook of the batch
	for i, r := range rows {
		secret, ok := secrets[r.WebhookID]
		if !ok {
			// A secret that cannot be opened leaves the claim's secret empty:
			// the sender refuses it as a failure on our side (Internal).
			if secret, err = s.openSecret(r.Secret); err != nil && s.log != nil {
				s.log.Error("store: cannot open a signing secret", "webhook", r.WebhookID, "error", err)
			}
			secrets[r.WebhookID] = secret
		}
		out[i] = Claim{DeliveryID: r.ID, ClaimSeq: r.ClaimSeq, EventID: r.EventID, WebhookID: r.WebhookID,
			URL: r.URL, Secret: secret, Payload: r.Payload, Attempts: r.Attempts, SchedulePos: r.SchedulePos}
	}
	// The order of RETURNING is not promised: restore the claim order.
	sortClaims(out)
	return out, nil
}

func (s *Store) completeClaims(tx *gorm.DB, rows []claimRow) error {
	eventIDs := make([]string, 0, len(rows))
	webhookIDs := make([]string, 0, len(rows))
	for _, r := range rows {
		eventIDs = append(eventIDs, r.EventID)
		webhookIDs = append(webhookIDs, r.WebhookID)
	}
	var events []eventRow
	if err := tx.Select("id", "payload").Where("id IN ?", unique(eventIDs)).Find(&events).Error; err != nil {
		return err
	}
	var hooks []webhookRow
	if err := tx.Select("id", "url", "secret").Where("id IN ?", unique(webhookIDs)).Find(&hooks).Error; err != nil {
		return err
	}
	payloads := make(map[string][]byte, len(events))
	for _, e := range events {
		payloads[e.ID] = e.Payload
	}
	byID := make(map[string]webhookRow, len(hooks))
	for _, h := range hooks {
		byID[h.ID] = h
	}
	for i := range rows {
		rows[i].Payload = payloads[rows[i].EventID]
		rows[i].URL, rows[i].Secret = byID[rows[i].WebhookID].URL, byID[rows[i].WebhookID].Secret
	}
	return nil
}

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
}

// Record writes a batch of results in one transaction: the deliveries' new
// state (only where the claim is still theirs), the attempt log, and the
// webhooks' failure streaks. Webhooks whose failures have lasted longer than
// autoPauseAfter are paused (DELIVERY_FAILURES); Record returns their ids.
func (s *Store) Record(ctx context.Context, results []Result, autoPauseAfter time.Duration) (paused []string, err error) {
	defer wrap(&err, "store.Record(%d)", len(results))
	if len(results) == 0 {
		return nil, nil
	}
	now := s.clock()
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if s.postgres {
			if err := relaxCommit(tx); err != nil {
				return err
			}
		}
		if err := s.updateDeliveries(tx, results); err != nil {
			return err
		}
		var attempts []attemptRow
		succeeded, failed := map[string]bool{}, map[string]bool{}
		for _, r := range results {
			if !r.Attempted {
				continue
			}
			a := attemptRow{DeliveryID: r.DeliveryID, AttemptedAt: r.AttemptedAt.UTC(), Error: r.Error, DurationMS: float64(r.Duration.Microseconds()) / 1000}
			if r.StatusCode != 0 {
				a.StatusCode = &r.StatusCode
			}
			attempts = append(attempts, a)
			if r.Status == StatusDelivered {
				succeeded[r.WebhookID] = true
			} else {
				failed[r.WebhookID] = true
			}
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
		var due []webhookRow
		if err := tx.Select("id").Where("id IN ? AND status = ? AND failing_since <= ?", ids, webhook.StatusActive, now.Add(-autoPauseAfter)).
			Find(&due).Error; err != nil {
			return err
		}
		for _, w := range due {
			paused = append(paused, w.ID)
		}
		if len(paused) == 0 {
			return nil
		}
		if err := tx.Model(&webhookRow{}).Where("id IN ?", paused).Updates(map[string]any{
			"status": string(webhook.StatusPaused), "pause_reason": string(webhook.PauseReasonDeliveryFailures),
			"paused_at": now, "updated_at": now,
		}).Error; err != nil {
			return err
		}
		if err := holdDeliveries(tx, paused); err != nil {
			return err
		}
		return s.notifyWebhooks(tx, paused)
	})
	if err != nil {
		return nil, err
	}
	for _, id := range paused {
		s.signal(webhooksChannel, id)
	}
	return paused, nil
}

// relaxCommit lets a PostgreSQL transaction commit without waiting for its WAL
// to reach the disk. Only for claims and outcomes: losing the last of them in a
// crash of the database means deliveries sent again (at least once), never an
// event lost; publishes always commit synchronously.
func relaxCommit(tx *gorm.DB) error {
	return tx.Exec("SET LOCAL synchronous_commit = off").Error
}

// updateDeliveries writes every result in one UPDATE … FROM (VALUES …).
func (s *Store) updateDeliveries(tx *gorm.DB, results []Result) error {
	const cols = 9
	cast := func(typ string) string {
		if s.postgres {
			return "CAST(? AS " + typ + ")"
		}
		return "?"
	}
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
		next_attempt_at = CASE WHEN v.column3 = 'PENDING' THEN COALESCE(v.column6, deliveries.next_attempt_at) END,
		last_status_code = CASE WHEN v.column4 = 1 THEN v.column7 ELSE deliveries.last_status_code END,
		last_error = CASE WHEN v.column4 = 1 THEN v.column8 ELSE deliveries.last_error END,
		delivered_at = COALESCE(v.column9, deliveries.delivered_at),
		finished_at = CASE WHEN v.column3 = 'PENDING' THEN NULL ELSE ` + cast("TIMESTAMPTZ") + ` END,
		leased_until = NULL
		FROM (VALUES ` + strings.Join(values, ", ") + `) AS v
		WHERE deliveries.id = v.column1 AND deliveries.claim_seq = v.column2`
	return tx.Exec(q, append([]any{s.clock()}, args...)...).Error
}

// insertAttempts logs attempts in one statement, skipping those whose delivery
// was deleted meanwhile (they would break the foreign key).
func (s *Store) insertAttempts(tx *gorm.DB, as []attemptRow) error {
	row := "(?, ?, ?, ?, ?)"
	if s.postgres {
		row = "(CAST(? AS BIGINT), CAST(? AS TIMESTAMPTZ), CAST(? AS INTEGER), CAST(? AS TEXT), CAST(? AS DOUBLE PRECISION))"
	}
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
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		w, err := s.getWebhook(tx, owner, webhookID, s.postgres)
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
		res := tx.Model(&deliveryRow{}).Where("id = ? AND webhook_id = ?", n, webhookID).Updates(map[string]any{
			"status": StatusPending, "next_attempt_at": due, "schedule_pos": 0, "leased_until": nil, "delivered_at": nil, "finished_at": nil,
			"claim_seq": gorm.Expr("claim_seq + 1"),
		})
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
		if s.postgres {
			return tx.Exec("SELECT pg_notify(?, '')", deliveriesChannel).Error
		}
		return nil
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
	err := s.db.WithContext(ctx).Model(&deliveryRow{}).Where("status = ?", StatusPending).Count(&n).Error
	return n, err
}

func (s *Store) notifyWebhooks(tx *gorm.DB, ids []string) error {
	if !s.postgres {
		return nil
	}
	for _, id := range ids {
		if err := tx.Exec("SELECT pg_notify(?, ?)", webhooksChannel, id).Error; err != nil {
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
