package delivery_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hookferry/hookferry/delivery"
	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/webhook"
	"github.com/stretchr/testify/require"
)

// Ordered webhooks get their deliveries one at a time, in publish order,
// however many dispatchers share the database; a delivery that fails holds
// back those after it until it is delivered.

// dispatchers starts one dispatcher on e's store and, on PostgreSQL, a second
// one on another store of the same database.
func (e *env) dispatchers(cfg delivery.Config) []*runner {
	e.t.Helper()
	runs := []*runner{e.run(cfg, delivery.SenderConfig{})}
	if e.postgres {
		runs = append(runs, start(e.t, openStore(e.t, e.url, nil), cfg, delivery.SenderConfig{}, nil))
	}
	return runs
}

// TestOrderedAcrossTwoDispatchers: deliveries published while two
// dispatchers on one PostgreSQL database compete for them arrive in publish
// order, never two at once.
func TestOrderedAcrossTwoDispatchers(t *testing.T) {
	t.Parallel()
	onPostgres(t, func(t *testing.T, e *env) {
		rc := e.receiver(ordered())
		e.dispatchers(delivery.Config{PollInterval: 5 * time.Millisecond})
		var ids []string
		for range 20 {
			ids = append(ids, e.publish(owner.TenantID, "order.created", 1)...)
		}
		rc.take(20)
		require.Equal(t, ids, rc.events(), "publish order")
		require.Equal(t, 1, rc.maxInFlight(), "one at a time")
	})
}

// TestOrderedFailureHoldsBackTheRest: the first delivery fails three times;
// the others wait until it is delivered, then follow in order.
func TestOrderedFailureHoldsBackTheRest(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		rc := e.receiver(ordered(), answering(func(a arrival, _ *http.Request) int {
			if a.n <= 3 {
				return http.StatusInternalServerError
			}
			return http.StatusNoContent
		}))
		ids := e.publish(owner.TenantID, "order.created", 4)
		schedule := []time.Duration{5 * time.Millisecond, 5 * time.Millisecond, 5 * time.Millisecond, 5 * time.Millisecond}
		e.dispatchers(delivery.Config{RetrySchedule: schedule, PollInterval: 5 * time.Millisecond})
		rc.take(7)
		require.Equal(t, []string{ids[0], ids[0], ids[0], ids[0], ids[1], ids[2], ids[3]}, rc.events())
		require.Equal(t, 1, rc.maxInFlight())
	})
}

// TestOrderedPausedThenUnpausedDrainsInOrder: what was published while the
// webhook was paused goes out in order after unpause, one at a time.
func TestOrderedPausedThenUnpausedDrainsInOrder(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		rc := e.receiver(ordered())
		_, err := e.store.PauseWebhook(ctx, owner, rc.hook.ID, webhook.PauseReasonUser)
		require.NoError(t, err)
		ids := e.publish(owner.TenantID, "order.created", 10)
		runs := e.dispatchers(delivery.Config{PollInterval: 5 * time.Millisecond})
		for _, run := range runs {
			run.flush(true)
		}
		require.Empty(t, rc.events())

		_, err = e.store.UnpauseWebhook(ctx, owner, rc.hook.ID, 0)
		require.NoError(t, err)
		rc.take(10)
		require.Equal(t, ids, rc.events())
		require.Equal(t, 1, rc.maxInFlight())
	})
}

// TestUnorderedWebhookGetsConcurrency: an unordered webhook gets more than
// one request at a time (each request waits until a second one arrives).
func TestUnorderedWebhookGetsConcurrency(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		two := make(chan struct{})
		var once sync.Once
		rc := e.receiver(answering(func(a arrival, r *http.Request) int {
			if a.inFlight >= 2 {
				once.Do(func() { close(two) })
			}
			select {
			case <-two:
			case <-r.Context().Done():
			}
			return http.StatusNoContent
		}))
		e.publish(owner.TenantID, "order.created", 4)
		run := e.run(delivery.Config{}, delivery.SenderConfig{})
		recv(t, two, "two requests in flight at once")
		rc.take(4)
		run.results("all delivered", 4, resultOf(rc, store.StatusDelivered))
	})
}

// TestOrderedNextNeedsNoPoll: an ordered webhook's next delivery becomes
// claimable when the outcome of the one before is recorded, and is claimed
// then, not at the next poll.
func TestOrderedNextNeedsNoPoll(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		rc := e.receiver(ordered())
		ids := e.publish(owner.TenantID, "order.created", 5)
		e.run(delivery.Config{PollInterval: time.Hour}, delivery.SenderConfig{})
		rc.take(len(ids))
		require.Equal(t, ids, rc.events(), "publish order")
	})
}
