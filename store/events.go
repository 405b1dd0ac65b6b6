package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
func (s *Store) Publish(ctx context.Context, ev Event) (Published, error) {
	out, err := s.PublishBatch(ctx, []Event{ev})
	if err != nil {
		return Published{}, err
	}
	return out[0], nil
}

// MaxBatch bounds the events of one PublishBatch.
const MaxBatch = 500

// PublishBatch publishes events, all of one tenant, as Publish does each, all
// or nothing: they and their deliveries commit in one transaction. It answers
// each event's outcome in order. An event whose producer id was published
// before, or comes earlier in the batch, answers that event and queues nothing.
func (s *Store) PublishBatch(ctx context.Context, events []Event) (_ []Published, err error) {
	defer wrap(&err, "store.PublishBatch(%d events)", len(events))
	if len(events) == 0 || len(events) > MaxBatch {
		return nil, fmt.Errorf("a batch holds 1 to %d events, not %d", MaxBatch, len(events))
	}
	tenant := events[0].TenantID
	out := make([]Published, len(events))
	first := map[string]int{} // producer id -> index of its first event in the batch
	var producers []string
	for i, ev := range events {
		if ev.TenantID != tenant {
			return nil, errors.New("the events of a batch belong to one tenant")
		}
		if ev.ProducerID == "" {
			continue
		}
		if _, seen := first[ev.ProducerID]; !seen {
			first[ev.ProducerID] = i
			producers = append(producers, ev.ProducerID)
		}
	}
	earlier, err := s.findPublished(ctx, tenant, producers)
	if err != nil {
		return nil, err
	}
	req := &publishRequest{done: make(chan error, 1)}
	pending := make([]*pendingEvent, len(events)) // nil: answered without a write
	for i, ev := range events {
		if p, ok := earlier[ev.ProducerID]; ok {
			out[i] = p
			continue
		}
		if ev.ProducerID != "" && first[ev.ProducerID] != i {
			continue // answered below, as its first event
		}
		id, err := webhook.NewID("evt", s.random)
		if err != nil {
			return nil, err
		}
		now := s.clock()
		payload, err := envelope(id, ev.Type, now, ev.Data)
		if err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		pending[i] = &pendingEvent{ev: ev, id: id, payload: payload, now: now}
		req.events = append(req.events, pending[i])
	}
	if len(req.events) > 0 {
		if err := s.enqueue(ctx, req); err != nil {
			return nil, err
		}
		select {
		case err := <-req.done: // the writers always answer
			if err != nil {
				return nil, err
			}
		case <-ctx.Done():
			// The caller is gone; the writer may still commit the events (the
			// producer's retry with the same ids finds them).
			return nil, ctx.Err()
		}
	}
	var raced []string
	for i, p := range pending {
		switch {
		case p == nil:
		case p.duplicate: // a concurrent publish of the same producer id won the race
			raced = append(raced, p.ev.ProducerID)
		default:
			out[i] = Published{EventID: p.id, Deliveries: p.deliveries}
		}
	}
	if len(raced) > 0 {
		won, err := s.findPublished(ctx, tenant, raced)
		if err != nil {
			return nil, err
		}
		for i, p := range pending {
			if p != nil && p.duplicate {
				if out[i], err = foundPublished(won, p.ev.ProducerID); err != nil {
					return nil, err
				}
			}
		}
	}
	for i, ev := range events {
		if j := first[ev.ProducerID]; ev.ProducerID != "" && j != i && pending[j] != nil {
			out[i] = out[j]
			out[i].Duplicate = true
		}
	}
	return out, nil
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

// publishRequest is one Publish or PublishBatch waiting for a writer: its
// events commit together or not at all.
type publishRequest struct {
	events []*pendingEvent
	done   chan error
}

// pendingEvent is one event of a publishRequest.
type pendingEvent struct {
	ev      Event
	id      string
	payload []byte
	now     time.Time

	deliveries int64 // set by the writer
	duplicate  bool  // the producer id was taken meanwhile
}

// maxPublishBatch bounds the events of one group commit; a request holding
// more commits alone.
const maxPublishBatch = 128

// writePublishes is a writer: it commits the publishes waiting, in batches,
// until the store closes, then refuses what is left.
func (s *Store) writePublishes() {
	defer s.writers.Done()
	var next *publishRequest // taken, but it did not fit the last batch
	for {
		if next == nil {
			select {
			case next = <-s.publishes:
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
		batch, n := []*publishRequest{next}, len(next.events)
		next = nil
	drain:
		for n < maxPublishBatch {
			select {
			case r := <-s.publishes:
				if n+len(r.events) > maxPublishBatch {
					next = r
					break drain
				}
				batch, n = append(batch, r), n+len(r.events)
			default:
				break drain
			}
		}
		s.commitPublishes(batch)
	}
}

// commitPublishes writes a batch in one transaction; if the batch fails, each
// request is retried alone so that one bad request does not fail the others.
// All of it is bounded by maxCommitTime and ends when the store closes.
func (s *Store) commitPublishes(batch []*publishRequest) {
	ctx, cancel := context.WithTimeout(s.closingCtx, maxCommitTime)
	defer cancel()
	s.commitEach(ctx, batch)
}

// maxCommitTime bounds the writing of one batch of publishes, retries included.
const maxCommitTime = 30 * time.Second

func (s *Store) commitEach(ctx context.Context, batch []*publishRequest) {
	var events []*pendingEvent
	for _, r := range batch {
		events = append(events, r.events...)
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error { return s.insertEvents(tx, events) })
	if err != nil && len(batch) > 1 && ctx.Err() == nil {
		for _, r := range batch {
			s.commitEach(ctx, []*publishRequest{r})
		}
		return
	}
	if err == nil {
		// The writer wakes the workers, not Publish: a publish whose caller
		// has gone may still commit, and its deliveries are due now.
		for _, e := range events {
			if e.deliveries > 0 {
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
// subscribers, one per event with an audience or a single target, and one for
// the counts a repeated producer id answers.
func (s *Store) insertEvents(tx *gorm.DB, batch []*pendingEvent) error {
	rows := make([]string, len(batch))
	args := make([]any, 0, 6*len(batch))
	for i, e := range batch {
		e.deliveries, e.duplicate = 0, false
		var producer *string
		if e.ev.ProducerID != "" {
			producer = &e.ev.ProducerID
		}
		rows[i] = "(?, ?, ?, ?, ?, 0, ?)"
		args = append(args, e.id, e.ev.TenantID, producer, e.ev.Type, e.payload, e.now)
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
	// Deliveries take their ids in the order of the events (an ordered
	// webhook delivers in that order): a run of fan-out events goes in one
	// statement, flushed before each targeted event.
	var fanOut []*pendingEvent
	for _, e := range batch {
		switch {
		case !fresh[e.id]:
			e.duplicate = true // its producer id was taken meanwhile
		case e.ev.WebhookID != "" || e.ev.UserIDs != nil:
			if err := s.insertFanOut(tx, fanOut); err != nil {
				return err
			}
			fanOut = nil
			if err := s.insertTargetedDeliveries(tx, e); err != nil {
				return err
			}
		default:
			fanOut = append(fanOut, e)
		}
	}
	if err := s.insertFanOut(tx, fanOut); err != nil {
		return err
	}
	return s.recordCounts(tx, batch)
}

// recordCounts writes back, in one statement, the delivery count of each event
// with a producer id: a repeat of the id answers it.
func (s *Store) recordCounts(tx *gorm.DB, batch []*pendingEvent) error {
	var rows []string
	var args []any
	for _, e := range batch {
		if e.ev.ProducerID != "" && e.deliveries > 0 {
			rows = append(rows, "("+s.dialect.typed("TEXT")+", "+s.dialect.typed("BIGINT")+")")
			args = append(args, e.id, e.deliveries)
		}
	}
	if len(rows) == 0 {
		return nil
	}
	return tx.Exec(`UPDATE events SET deliveries = v.column2 FROM (VALUES `+strings.Join(rows, ", ")+`) AS v
		WHERE events.id = v.column1`, args...).Error
}

// insertFanOut queues, in one statement, a delivery of each event to every
// webhook of its tenant subscribed to its type. A paused webhook's deliveries
// wait with no due time (held), out of the claims' way, until unpause.
func (s *Store) insertFanOut(tx *gorm.DB, batch []*pendingEvent) error {
	if len(batch) == 0 {
		return nil
	}
	cast := s.dialect.typed
	row := "(" + strings.Join([]string{cast("TEXT"), cast("TEXT"), cast("TEXT"), cast("TIMESTAMPTZ"), cast("INTEGER")}, ", ") + ")"
	rows := make([]string, len(batch))
	args := make([]any, 0, 5*len(batch))
	byID := make(map[string]*pendingEvent, len(batch))
	for i, r := range batch {
		rows[i] = row
		args = append(args, r.id, r.ev.TenantID, r.ev.Type, r.now, i)
		byID[r.id] = r
	}
	q := `INSERT INTO deliveries (event_id, webhook_id, event_type, status, attempts, schedule_pos, next_attempt_at, claim_seq, last_error, created_at)
		SELECT v.column1, w.id, v.column3, 'PENDING', 0, 0, CASE WHEN w.status = 'ACTIVE' THEN v.column4 END, 0, '', v.column4
		FROM (VALUES ` + strings.Join(rows, ", ") + `) AS v
		JOIN webhooks w ON w.tenant_id = v.column2
		JOIN webhook_event_types t ON t.webhook_id = w.id AND t.event_type = v.column3
		ORDER BY v.column5` + s.dialect.lockReferenced("w")
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
func (s *Store) insertTargetedDeliveries(tx *gorm.DB, r *pendingEvent) error {
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

// notifyGap spaces the NOTIFYs: under load one wakes the other instances
// for all the commits of its gap, instead of one statement per commit.
const notifyGap = 5 * time.Millisecond

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
			// What commits during the gap is covered by the next NOTIFY, which
			// the pending signal in s.notifies asks for.
			select {
			case <-time.After(notifyGap):
			case <-s.closing:
				return
			}
		}
	}
}

// findPublished looks up the events of a tenant with these producer ids, in
// one query.
func (s *Store) findPublished(ctx context.Context, tenantID string, producerIDs []string) (map[string]Published, error) {
	if len(producerIDs) == 0 {
		return nil, nil
	}
	var rows []eventRow
	err := s.db.WithContext(ctx).Select("id", "producer_id", "deliveries").
		Where("tenant_id = ? AND producer_id IN ?", tenantID, producerIDs).Find(&rows).Error
	if err != nil {
		return nil, err
	}
	out := make(map[string]Published, len(rows))
	for _, r := range rows {
		if r.ProducerID != nil {
			out[*r.ProducerID] = Published{EventID: r.ID, Deliveries: r.Deliveries, Duplicate: true}
		}
	}
	return out, nil
}

// foundPublished is the event findPublished found for a producer id that a
// concurrent publish took: it must be there.
func foundPublished(found map[string]Published, producerID string) (Published, error) {
	p, ok := found[producerID]
	if !ok {
		return Published{}, fmt.Errorf("producer id %q was taken, yet no event holds it", producerID)
	}
	return p, nil
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
