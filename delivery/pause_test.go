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

// Pause and delete act at once: from the moment the store call returns (as
// the API answers), no new request starts for the webhook, and the claims of
// it that were waiting are given back, charging nothing.

// stopping is a way to stop a webhook: pause it, or delete it.
type stopping struct {
	name string
	do   func(t *testing.T, st *store.Store, rc *receiver)
}

var pauseOrDelete = []stopping{
	{"pause", func(t *testing.T, st *store.Store, rc *receiver) {
		_, err := st.PauseWebhook(ctx, rc.hook.Owner, rc.hook.ID, webhook.PauseReasonUser)
		require.NoError(t, err)
	}},
	{"delete", func(t *testing.T, st *store.Store, rc *receiver) {
		_, err := st.DeleteWebhook(ctx, rc.hook.Owner, rc.hook.ID)
		require.NoError(t, err)
	}},
}

// busyWebhook has all its slots (PerWebhook 2) on requests that hang until
// release is closed, and four more claims waiting in memory.
func busyWebhook(t *testing.T, e *env, release chan struct{}) (*receiver, *runner, []store.Claim) {
	t.Helper()
	rc := e.receiver(held(release))
	e.publish(owner.TenantID, "order.created", 6) // one claim takes them all
	run := e.run(delivery.Config{PerWebhook: 2, SlowAfter: time.Minute}, delivery.SenderConfig{Timeout: time.Minute})
	claims := run.claims(6, of(rc))
	rc.take(2)
	run.flush(false)
	started := filter(run.started.now(), of(rc))
	require.Equal(t, 2, len(started), "both slots on the wire")
	return rc, run, waiting(claims, started)
}

// requireStopped says what is left of the deliveries ids once their webhook
// was paused (pending, held, attempts charged) or deleted (nothing).
func (e *env) requireStopped(how string, ids []int64, attempts int) {
	e.t.Helper()
	if how == "pause" {
		e.requireHeld(ids, attempts)
		return
	}
	for _, id := range ids {
		_, ok := e.row(id)
		require.False(e.t, ok, "delivery %d went with its webhook", id)
	}
}

func TestPauseAndDeleteGiveBackWaitingClaimsAtOnce(t *testing.T) {
	t.Parallel()
	for _, how := range pauseOrDelete {
		t.Run(how.name, func(t *testing.T) {
			t.Parallel()
			eachBackend(t, func(t *testing.T, e *env) {
				release := make(chan struct{})
				rc, run, wait := busyWebhook(t, e, release)

				how.do(t, e.store, rc)
				// Given back before any slot frees: not left to the fence.
				run.givenBack(delivery.BackForgotten, wait, rc)
				run.results("the waiting claims given back", len(wait), released(wait))
				e.requireStopped(how.name, ids(wait), 0)

				close(release)
				run.results("the two on the wire recorded", 2, attempted(rc, ""))
				run.flush(true)
				require.Equal(t, 2, len(rc.events()), "nothing after the attempts on the wire")
			})
		})
	}
}

// TestPauseElsewhereStopsClaimsAtTheGate: two dispatchers on one PostgreSQL
// database; the webhook is paused (deleted) through the other instance's
// store, whose NOTIFY this instance does not hear (it does not listen). The
// gate stops the waiting claims as they come up.
func TestPauseElsewhereStopsClaimsAtTheGate(t *testing.T) {
	t.Parallel()
	for _, how := range pauseOrDelete {
		t.Run(how.name, func(t *testing.T) {
			t.Parallel()
			onPostgres(t, func(t *testing.T, e *env) {
				release := make(chan struct{})
				rc, run, wait := busyWebhook(t, e, release)
				other := openStore(t, e.url, nil)
				second := start(t, other, delivery.Config{}, delivery.SenderConfig{}, nil)
				second.claimed.until(t, "the second dispatcher's first claim", func(bs [][]store.Claim) bool { return len(bs) > 0 })

				how.do(t, other, rc)
				close(release)
				run.givenBack(delivery.BackGate, wait, rc)
				run.results("the waiting claims given back", len(wait), released(wait))
				e.requireStopped(how.name, ids(wait), 0)
				run.results("the two on the wire recorded", 2, attempted(rc, ""))
				run.flush(true)
				second.flush(true)
				require.Equal(t, 2, len(rc.events()), "nothing after the attempts on the wire")
				require.Empty(t, filter(second.claimedNow(), of(rc)))
			})
		})
	}
}

// TestFenceStopsAnAttemptPastTheGate: the gate said yes a moment before the
// pause committed; the pause's return still stops the attempt (the fence).
func TestFenceStopsAnAttemptPastTheGate(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		rc := e.receiver()
		e.publish(owner.TenantID, "order.created", 1)
		atGate, proceed := make(chan store.Claim, 1), make(chan struct{})
		var once sync.Once
		run := start(t, e.store, delivery.Config{}, delivery.SenderConfig{}, func(d *delivery.Dispatcher) {
			delivery.OnGate(d, func(c store.Claim, passed bool) {
				if c.WebhookID == rc.hook.ID && passed {
					atGate <- c
					<-proceed
				}
			})
		})
		t.Cleanup(func() { once.Do(func() { close(proceed) }) })
		c := recv(t, atGate, "the attempt past the gate")

		_, err := e.store.PauseWebhook(ctx, owner, rc.hook.ID, webhook.PauseReasonUser)
		require.NoError(t, err)
		once.Do(func() { close(proceed) })
		run.givenBack(delivery.BackFenced, []store.Claim{c}, rc)
		run.results("given back", 1, released([]store.Claim{c}))
		e.requireHeld([]int64{c.DeliveryID}, 0)
		run.flush(true)
		require.Empty(t, rc.events())
	})
}

// TestGonePausesTheWebhook: a 410 Gone pauses the webhook (ENDPOINT_GONE);
// its deliveries wait, held, and nothing more is sent to it, not even the
// claims that were waiting when the 410 came.
func TestGonePausesTheWebhook(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		// The 410 waits until all five are claimed: answered at once, it
		// could pause the webhook before the last claims (1 run in 40).
		release := make(chan struct{})
		rc := e.receiver(answering(func(_ arrival, r *http.Request) int {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return http.StatusGone
		}))
		e.publish(owner.TenantID, "order.created", 5)
		run := e.run(delivery.Config{PerWebhook: 1}, delivery.SenderConfig{})
		claims := run.claims(5, of(rc))
		close(release)
		rc.take(1)
		gone := run.results("the 410 recorded", 1, func(r store.Result) bool { return r.Gone })
		run.results("the others given back", 4, func(r store.Result) bool { return !r.Attempted && r.WebhookID == rc.hook.ID })
		run.flush(true)
		require.Equal(t, 1, len(rc.events()), "nothing after the 410")

		w := e.webhook(rc)
		require.Equal(t, webhook.StatusPaused, w.Status)
		require.Equal(t, webhook.PauseReasonEndpointGone, w.PauseReason)
		var rest []int64
		for _, c := range claims {
			if c.DeliveryID != gone[0].DeliveryID {
				rest = append(rest, c.DeliveryID)
			}
		}
		e.requireHeld([]int64{gone[0].DeliveryID}, 1)
		e.requireHeld(rest, 0)
		d := e.deliveries(rc)
		require.Equal(t, 5, len(d))
		for _, d := range d {
			require.Nil(t, d.NextAttemptAt, "held until unpaused")
		}
	})
}
