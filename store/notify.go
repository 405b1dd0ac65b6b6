package store

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Signal is a wake-up: new due deliveries (Channel DeliveriesChannel), or a
// webhook paused or deleted (WebhooksChannel, Payload its id).
type Signal struct {
	Channel string
	Payload string
}

// The signal channels.
const (
	DeliveriesChannel = deliveriesChannel
	WebhooksChannel   = webhooksChannel
)

type signals struct {
	mu       sync.RWMutex
	handlers []func(Signal)
}

// OnSignal registers h to be called for every signal of this process and, on
// PostgreSQL while Listen runs, of every instance. h must be quick.
func (s *Store) OnSignal(h func(Signal)) {
	s.signals.mu.Lock()
	defer s.signals.mu.Unlock()
	s.signals.handlers = append(s.signals.handlers, h)
}

func (s *Store) signal(channel, payload string) {
	s.signals.mu.RLock()
	defer s.signals.mu.RUnlock()
	for _, h := range s.signals.handlers {
		h(Signal{Channel: channel, Payload: payload})
	}
}

// Listen relays the NOTIFY of other instances to OnSignal's handlers until ctx
// ends, reconnecting after failures; on SQLite, where one process owns the
// database, it only waits for ctx. After every (re)connection it signals new
// deliveries, so that nothing notified while it was away is left waiting.
func (s *Store) Listen(ctx context.Context) error {
	if !s.dialect.notifies() {
		<-ctx.Done()
		return nil
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenOnce(ctx)
		if ctx.Err() != nil {
			break
		}
		if s.log != nil {
			s.log.Warn("store: listening for notifications failed; reconnecting", "error", err, "in", backoff)
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	return nil
}

func (s *Store) listenOnce(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, s.url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, ch := range []string{deliveriesChannel, webhooksChannel} {
		if _, err := conn.Exec(ctx, "LISTEN "+ch); err != nil {
			return err
		}
	}
	s.signal(deliveriesChannel, "")
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		s.signal(n.Channel, n.Payload)
	}
}
