package delivery_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hookferry/hookferry/delivery"
	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/webhook"
	"github.com/stretchr/testify/require"
)

// Isolation: webhooks that hang must not keep other tenants', users' or
// webhooks' deliveries from going out. The hanging receivers accept and
// never answer (until the test ends); the sender's timeout is longer than
// the test, so nothing but the scheduler frees a worker.

var (
	hostile = webhook.Owner{TenantID: "hostile", UserID: "mallory"}
	witness = webhook.Owner{TenantID: "witness", UserID: "wendy"}
)

func tenantIs(id string) func(store.Claim) bool {
	return func(c store.Claim) bool { return c.TenantID == id }
}

// hostiles registers n hanging webhooks of o, reporting on one channel.
func (e *env) hostiles(n int, o webhook.Owner, opts ...option) chan arrival {
	e.t.Helper()
	arrivals := make(chan arrival, 4096)
	for range n {
		e.receiver(append([]option{ownedBy(o), hanging(), arrivingOn(arrivals)}, opts...)...)
	}
	return arrivals
}

// TestHostileTenantHoldsAtMostItsShare: one tenant's many hanging webhooks
// take PerTenant main workers, no more; another tenant's delivery published
// after them still goes out at once.
func TestHostileTenantHoldsAtMostItsShare(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		hung := e.hostiles(10, hostile)
		w := e.receiver(ownedBy(witness))
		e.publish(hostile.TenantID, "order.created", 2) // 20 deliveries, one claim
		run := e.run(delivery.Config{Workers: 8, PerTenant: 4, PerUser: 8, SlowAfter: time.Minute},
			delivery.SenderConfig{Timeout: time.Minute})
		for i := range 4 {
			recv(t, hung, fmt.Sprintf("hostile request %d", i+1))
		}
		run.flush(false)
		require.Equal(t, 4, len(filter(run.started.now(), tenantIs(hostile.TenantID))),
			"the hostile tenant has its share of the main lane (PerTenant), no more")

		e.publish(witness.TenantID, "order.created", 1)
		w.take(1)
		run.results("the witness's delivery recorded", 1, resultOf(w, store.StatusDelivered))
	})
}

// TestHostileUserHoldsAtMostItsShare: the same between two users of one
// tenant: one user's hanging webhooks take PerUser main workers, no more.
func TestHostileUserHoldsAtMostItsShare(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		hung := e.hostiles(6, owner, types("report.ready"))
		w := e.receiver(ownedBy(webhook.Owner{TenantID: owner.TenantID, UserID: "bob"}))
		e.publish(owner.TenantID, "report.ready", 2) // 12 deliveries, one claim
		run := e.run(delivery.Config{Workers: 8, PerTenant: 8, PerUser: 3, SlowAfter: time.Minute},
			delivery.SenderConfig{Timeout: time.Minute})
		for i := range 3 {
			recv(t, hung, fmt.Sprintf("hostile request %d", i+1))
		}
		run.flush(false)
		require.Equal(t, 3, len(filter(run.started.now(), tenantIs(owner.TenantID))),
			"the hostile user has its share of the main lane (PerUser), no more")

		e.publish(owner.TenantID, "order.created", 1)
		w.take(1)
		run.results("the other user's delivery recorded", 1, resultOf(w, store.StatusDelivered))
	})
}

// TestOvertimeFreesTheMainLane: hanging webhooks of many tenants, each
// within its share (PerTenant 1), fill the main lane; SlowAfter later their
// attempts move to the held-back lane, which frees the main lane for a
// newcomer, and the held-back webhooks' queued deliveries wait for the
// held-back lane (full) instead of taking the main lane again.
func TestOvertimeFreesTheMainLane(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		hung := make(chan arrival, 4096)
		for i := range 8 {
			o := webhook.Owner{TenantID: fmt.Sprintf("hostile%d", i), UserID: "mallory"}
			e.receiver(ownedBy(o), hanging(), arrivingOn(hung))
			e.publish(o.TenantID, "order.created", 3)
		}
		w := e.receiver(ownedBy(witness))
		run := e.run(delivery.Config{Workers: 8, HeldBackWorkers: 2, PerTenant: 1, SlowAfter: 100 * time.Millisecond},
			delivery.SenderConfig{Timeout: time.Minute})
		for i := range 8 {
			recv(t, hung, fmt.Sprintf("hostile request %d", i+1))
		}
		run.flush(false)
		require.Equal(t, 8, len(run.started.now()), "the main lane is full of hanging attempts")
		run.overtime.until(t, "8 attempts moved to the held-back lane", count(8, func(store.Claim) bool { return true }))
		run.flush(false)
		require.Equal(t, 8, len(run.started.now()), "held back: their other deliveries wait for the held-back lane, which is full")

		e.publish(witness.TenantID, "order.created", 1)
		w.take(1)
		run.results("the witness's delivery recorded", 1, resultOf(w, store.StatusDelivered))
		require.Equal(t, 8, len(filter(run.started.now(), func(c store.Claim) bool { return c.TenantID != witness.TenantID })),
			"no hanging webhook got another worker")
	})
}

// TestHostileBacklogLeavesRoom: a tenant with more hanging deliveries than
// the dispatcher holds in memory does not fill that room with claims that
// cannot start: another tenant's delivery published after them is claimed
// and delivered while they hang.
func TestHostileBacklogLeavesRoom(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		hung := e.hostiles(10, hostile)
		w := e.receiver(ownedBy(witness))
		e.publish(hostile.TenantID, "order.created", 10) // 100 deliveries; room for 32
		run := e.run(delivery.Config{Workers: 8, SlowAfter: time.Minute}, delivery.SenderConfig{Timeout: time.Minute})
		recv(t, hung, "a hostile request")
		e.publish(witness.TenantID, "order.created", 1)
		w.take(1)
		run.results("the witness's delivery recorded", 1, resultOf(w, store.StatusDelivered))
	})
}

// TestWebhookConcurrencyIsBounded: a webhook never has more than PerWebhook
// attempts in flight, however many successes grew its limit.
func TestWebhookConcurrencyIsBounded(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		release := make(chan struct{})
		rc := e.receiver(held(release))
		e.publish(owner.TenantID, "order.created", 12)
		run := e.run(delivery.Config{PerWebhook: 3}, delivery.SenderConfig{})
		run.claims(12, of(rc))
		rc.take(3)
		run.flush(false)
		require.Equal(t, 3, len(run.started.now()))
		for range 3 {
			release <- struct{}{} // one request answered, successfully
		}
		run.ended.until(t, "three attempts ended", count(3, of(rc)))
		run.flush(false)
		require.Equal(t, 6, len(run.started.now()), "three successes later, still at most PerWebhook in flight")
		close(release)
		rc.take(12)
		run.results("all delivered", 12, resultOf(rc, store.StatusDelivered))
		require.Equal(t, 3, rc.maxInFlight())
	})
}

// TestTimeoutDropsConcurrencyToOne: a webhook whose attempts time out gets
// one attempt at a time from then on.
func TestTimeoutDropsConcurrencyToOne(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		release := make(chan struct{})
		rc := e.receiver(answering(func(a arrival, r *http.Request) int {
			if a.n <= 4 {
				<-r.Context().Done() // until the sender gives up
			} else if a.n == 5 {
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}
			return 204
		}))
		e.publish(owner.TenantID, "order.created", 8)
		run := e.run(delivery.Config{PerWebhook: 8, RetrySchedule: []time.Duration{time.Hour}},
			delivery.SenderConfig{Timeout: time.Second}) // the fifth must not time out before the release, even on a loaded machine
		run.claims(8, of(rc))
		rc.take(4)
		run.flush(false)
		require.Equal(t, 4, len(run.started.now()), "four at first")
		run.ended.until(t, "four attempts timed out", count(4, of(rc)))
		run.flush(false)
		require.Equal(t, 5, len(run.started.now()), "after a timeout, one at a time")
		close(release)
		rc.take(8)
		run.results("the rest delivered", 4, resultOf(rc, store.StatusDelivered))
	})
}
