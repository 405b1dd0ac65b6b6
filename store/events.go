package store

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/hookferry/hookferry/webhook"
	"gorm.io/gorm"
)

// deliveriesChannel is the PostgreSQL NOTIFY channel that wakes the delivery
// workers of every instance when deliveries become due.
const deliveriesChannel = "hookferry_deliveries"

// webhooksChannel carries the id of a webhook that was paused or deleted, so
// that every instance drops what it holds for it.
const webhooksChannel = "hookferry_webhooks"

// Event is what a producer publishes.
type Event struct {
	TenantID   string
	Type       string
	Data       json.RawMessage // a JSON object
	ProducerID string          // the producer's idempotency key; "" for none
	UserIDs    []string        // the audience; nil for every user of the tenant
	WebhookID  string          // deliver to this webhook alone (ping); "" for all that match
}

// Published is the outcome of Publish.
type Published struct {
	EventID    string
	Deliveries int64
	Duplicate  bool // the producer id was seen before: nothing new was queued
}

// Envelope is the body every delivery of an event carries.
type Envelope struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// Publish stores the event and one delivery per matching webhook (same tenant,
// subscribed to the type, owner in the audience, active or paused) in one
// transaction, and wakes the delivery workers on commit. Concurrent publishes
// share transactions (group commit): a writer takes every publish waiting and
// commits them together, so parallel producers share one disk sync.
func (s *Store) Publish(ctx context.Context, ev Event) (_ Published, err error) {
	defer wrap(&err, "store.Publish(%s)", ev.Type)
	if ev.ProducerID != "" {
		if p, err := s.findPublished(ctx, ev.TenantID, ev.ProducerID); err == nil || !errors.Is(err, ErrNotFound) {
			return p, err
		}
	}
	id, err := webhook.NewID("evt", s.random)
	if err != nil {
		return Published{}, err
	}
	now := s.clock()
	payload, err := envelope(id, ev.Type, now, ev.Data)
	if err != nil {
		return Published{}, err
	}
	req := &publishRequest{ev: ev, id: id, payload: payload, now: now, done: make(chan error, 1)}
	if err := s.enqueue(ctx, req); err != nil {
		return Published{}, err
	}
	select {
	case err := <-req.done: // the writers always answer
		if err != nil {
			return Published{}, err
		}
	case <-ctx.Done():
		// The caller is gone; the writer may still commit the event (the
		// producer's retry with the same id finds it).
		return Published{}, ctx.Err()
	}
	if req.duplicate {
		// A concurrent publish of the same producer id won the race.
		return s.findPublished(ctx, ev.TenantID, ev.ProducerID)
	}
	return Published{EventID: id, Deliveries: req.deliveries}, nil
}

// enqueue hands req to the writers; once Close has begun nothing more is
// taken, so every request taken is answered.
func (s *Store) enqueue(ctx context.Context, req *publishRequest) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	// A caller already gone queues nothing (select alone would pick the send
	// half the time, and the event would be stored for a publish that failed).
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case s.publishes <- req:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ErrClosed is the answer of a store being closed.
var ErrClosed = errors.New("store closed")

// publishRequest is one Publish waiting for a writer.
type publishRequest struct {
	ev      Event
	id      string
	payload []byte
	now     time.Time
	done    chan error

	deliveries int64 // set by the writer
	duplicate  bool  // the producer id was taken meanwhile
}

// maxPublishBatch bounds the events of one group commit.
const maxPublishBatch = 128

// writePublishes is a writer: it commits the publishes waiting, in batches,
// until the store closes, then refuses what is left.
func (s *Store) writePublishes() {
	defer s.writers.Done()
	for {
		select {
		case r := <-s.publishes:
			batch := []*publishRequest{r}
		drain:
			for len(batch) < maxPublishBatch {
				select {
				case r := <-s.publishes:
					batch = append(batch, r)
				default:
					break drain
				}
			}
			s.commitPublishes(batch)
		case <-s.closing:
			for {
				select {
				case r := <-s.publishes:
					r.done <- ErrClosed
				default:
					return
				}
			}
		}
	}
}

// commitPublishes writes a batch in one transaction; if the batch fails, each
// publish is retried alone so that one bad event does not fail the others.
// All of it is bounded by maxCommitTime and ends when the store closes.
func (s *Store) commitPublishes(batch []*publishRequest) {
	ctx, cancel := context.WithTimeout(s.closingCtx, maxCommitTime)
	defer cancel()
	s.commitEach(ctx, batch)
}

// maxCommitTime bounds the writing of one batch of publishes, retries included.
const maxCommitTime = 30 * time.Second

func (s *Store) commitEach(ctx context.Context, batch []*publishRequest) {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error { return s.insertEvents(tx, batch) })
	if err != nil && len(batch) > 1 && ctx.Err() == nil {
		for _, r := range batch {
			s.commitEach(ctx, []*publishRequest{r})
		}
		return
	}
	if err == nil {
		// The writer wakes the workers, not Publish: a publish whose caller
		// has gone may still commit, and its deliveries are due now.
		for _, r := range batch {
			if r.deliveries > 0 {
				s.signal(deliveriesChannel, "")
				s.wakeOtherInstances()
				break
			}
		}
	}
	for _, r := range batch {
		r.done <- err
	}
}

// insertEvents writes a batch of events and their deliveries: one statement
// for the events, one for the deliveries of every event that goes to all its
// subscribers, one per event with an audience or a single target.
func (s *Store) insertEvents(tx *gorm.DB, batch []*publishRequest) error {
	rows := make([]string, len(batch))
	args := make([]any, 0, 6*len(batch))
	for i, r := range batch {
		r.deliveries, r.duplicate = 0, false
		var producer *string
		if r.ev.ProducerID != "" {
			producer = &r.ev.ProducerID
		}
		rows[i] = "(?, ?, ?, ?, ?, 0, ?)"
		args = append(args, r.id, r.ev.TenantID, producer, r.ev.Type, r.payload, r.now)
	}
	var inserted []string
	if err := tx.Raw(`INSERT INTO events (id, tenant_id, producer_id, type, payload, deliveries, created_at)
		VALUES `+strings.Join(rows, ", ")+` ON CONFLICT DO NOTHING RETURNING id`, args...).Scan(&inserted).Error; err != nil {
		return err
	}
	fresh := make(map[string]bool, len(inserted))
	for _, id := range inserted {
		fresh[id] = true
	}
	var fanOut []*publishRequest
	for _, r := range batch {
		switch {
		case !fresh[r.id]:
			r.duplicate = true // its producer id was taken meanwhile
		case r.ev.WebhookID != "" || r.ev.UserIDs != nil:
			if err := s.insertTargetedDeliveries(tx, r); err != nil {
				return err
			}
		default:
			fanOut = append(fanOut, r)
		}
	}
	if err := s.insertFanOut(tx, fanOut); err != nil {
		return err
	}
	for _, r := range batch {
		if r.ev.ProducerID != "" && r.deliveries > 0 {
			// A repeat of this producer id answers this count.
			if err := tx.Model(&eventRow{ID: r.id}).Update("deliveries", r.deliveries).Error; err != nil {
				return err
			}
		}
	}
	return nil
}

// insertFanOut queues, in one statement, a delivery of each event to every
// webhook of its tenant subscribed to its type. A paused webhook's deliveries
// wait with no due time (held), out of the claims' way, until unpause.
func (s *Store) insertFanOut(tx *gorm.DB, batch []*publishRequest) error {
	if len(batch) == 0 {
		return nil
	}
	cast := s.dialect.typed
	row := "(" + strings.Join([]string{cast("TEXT"), cast("TEXT"), cast("TEXT"), cast("TIMESTAMPTZ")}, ", ") + ")"
	rows := make([]string, len(batch))
	args := make([]any, 0, 4*len(batch))
	byID := make(map[string]*publishRequest, len(batch))
	for i, r := range batch {
		rows[i] = row
		args = append(args, r.id, r.ev.TenantID, r.ev.Type, r.now)
		byID[r.id] = r
	}
	q := `INSERT INTO deliveries (event_id, webhook_id, event_type, status, attempts, schedule_pos, next_attempt_at, claim_seq, last_error, created_at)
		SELECT v.column1, w.id, v.column3, 'PENDING', 0, 0, CASE WHEN w.status = 'ACTIVE' THEN v.column4 END, 0, '', v.column4
		FROM (VALUES ` + strings.Join(rows, ", ") + `) AS v
		JOIN webhooks w ON w.tenant_id = v.column2
		JOIN webhook_event_types t ON t.webhook_id = w.id AND t.event_type = v.column3` + s.dialect.lockReferenced("w")
	var eventIDs []string
	if err := tx.Raw(q+" RETURNING event_id", args...).Scan(&eventIDs).Error; err != nil {
		return err
	}
	for _, id := range eventIDs {
		byID[id].deliveries++
	}
	return nil
}

// insertTargetedDeliveries queues the deliveries of an event with an audience,
// or of a ping to one webhook.
func (s *Store) insertTargetedDeliveries(tx *gorm.DB, r *publishRequest) error {
	ev := r.ev
	due := s.dialect.typed("TIMESTAMPTZ")
	q := `INSERT INTO deliveries (event_id, webhook_id, event_type, status, attempts, schedule_pos, next_attempt_at, claim_seq, last_error, created_at)
		SELECT ?, w.id, ?, ?, 0, 0, CASE WHEN w.status = ? THEN ` + due + ` END, 0, '', ? FROM webhooks w`
	args := []any{r.id, ev.Type, StatusPending, webhook.StatusActive, r.now, r.now}
	var where []string
	if ev.WebhookID != "" {
		where = append(where, "w.id = ?")
		args = append(args, ev.WebhookID)
	} else {
		q += ` JOIN webhook_event_types t ON t.webhook_id = w.id AND t.event_type = ?`
		args = append(args, ev.Type)
	}
	where = append(where, "w.tenant_id = ?")
	args = append(args, ev.TenantID)
	if ev.UserIDs != nil {
		where = append(where, "w.user_id IN ?")
		args = append(args, ev.UserIDs)
	}
	q += " WHERE " + strings.Join(where, " AND ") + s.dialect.lockReferenced("w")
	res := tx.Exec(q, args...)
	if res.Error != nil {
		return res.Error
	}
	r.deliveries = res.RowsAffected
	return nil
}

// wakeOtherInstances sends a NOTIFY to the delivery workers of the other
// instances, after the commit and coalesced: a NOTIFY inside every publish
// transaction would serialise all commits on PostgreSQL's notification lock.
func (s *Store) wakeOtherInstances() {
	if !s.dialect.notifies() {
		return
	}
	select {
	case s.notifies <- struct{}{}:
	default: // one is pending already
	}
}

func (s *Store) sendNotifies() {
	defer s.writers.Done()
	for {
		select {
		case <-s.closing:
			return
		case <-s.notifies:
			ctx, cancel := context.WithTimeout(s.closingCtx, 5*time.Second)
			if err := s.dialect.notify(s.db.WithContext(ctx), deliveriesChannel, ""); err != nil && s.log != nil {
				// The other instances find the work at their next poll.
				s.log.Warn("store: notify failed", "error", err)
			}
			cancel()
		}
	}
}

func (s *Store) findPublished(ctx context.Context, tenantID, producerID string) (Published, error) {
	var row eventRow
	err := s.db.WithContext(ctx).Select("id", "deliveries").Where("tenant_id = ? AND producer_id = ?", tenantID, producerID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Published{}, ErrNotFound
	}
	if err != nil {
		return Published{}, err
	}
	return Published{EventID: row.ID, Deliveries: row.Deliveries, Duplicate: true}, nil
}

// envelope encodes the body of every delivery of an event. Data goes in as the
// producer sent it, byte for byte.
func envelope(id, typ string, now time.Time, data json.RawMessage) ([]byte, error) {
	head, err := json.Marshal(struct {
		ID        string    `json:"id"`
		Type      string    `json:"type"`
		Timestamp time.Time `json:"timestamp"`
	}{id, typ, now.Truncate(time.Second)})
	if err != nil {
		return nil, err
	}
	if !json.Valid(data) {
		return nil, errors.New("event data is not valid JSON")
	}
	out := make([]byte, 0, len(head)+len(data)+10)
	out = append(out, head[:len(head)-1]...)
	out = append(out, `,"data":`...)
	out = append(out, data...)
	return append(out, '}'), nil
}
