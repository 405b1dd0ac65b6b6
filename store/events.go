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
// transaction, and wakes the delivery workers on commit.
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
	var out Published
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		row := eventRow{ID: id, TenantID: ev.TenantID, Type: ev.Type, Payload: payload, CreatedAt: now}
		if ev.ProducerID != "" {
			row.ProducerID = &ev.ProducerID
		}
		if err := tx.Create(&row).Error; err != nil {
			return err
		}
		q := `INSERT INTO deliveries (event_id, webhook_id, event_type, status, attempts, schedule_pos, next_attempt_at, claim_seq, last_error, created_at)
			SELECT ?, w.id, ?, ?, 0, 0, ?, 0, '', ? FROM webhooks w`
		args := []any{id, ev.Type, StatusPending, now, now}
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
		res := tx.Exec(q+" WHERE "+strings.Join(where, " AND "), args...)
		if res.Error != nil {
			return res.Error
		}
		out = Published{EventID: id, Deliveries: res.RowsAffected}
		if ev.ProducerID != "" && out.Deliveries > 0 {
			// A repeat of this producer id answers this count.
			if err := tx.Model(&eventRow{ID: id}).Update("deliveries", out.Deliveries).Error; err != nil {
				return err
			}
		}
		if out.Deliveries > 0 && s.postgres {
			return tx.Exec("SELECT pg_notify(?, '')", deliveriesChannel).Error
		}
		return nil
	})
	if errors.Is(err, gorm.ErrDuplicatedKey) && ev.ProducerID != "" {
		// A concurrent publish of the same producer id won the race.
		return s.findPublished(ctx, ev.TenantID, ev.ProducerID)
	}
	if err != nil {
		return Published{}, err
	}
	if out.Deliveries > 0 {
		s.signal(deliveriesChannel, "")
	}
	return out, nil
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
