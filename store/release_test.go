package store_test

import (
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/hookferry/hookferry/webhook"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
)

// bufferFor publishes n events, in batches, to owner's webhooks alone.
func bufferFor(t *testing.T, st *store.Store, owner webhook.Owner, n int) {
	t.Helper()
	for n > 0 {
		batch := make([]store.Event, min(n, 500))
		for i := range batch {
			batch[i] = store.Event{TenantID: owner.TenantID, Type: "order.created", Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, n-i)),
				UserIDs: []string{owner.UserID}}
		}
		_, err := st.PublishBatch(ctx, batch)
		require.NoError(t, err)
		n -= len(batch)
	}
}

// held counts w's PENDING deliveries without a due time, and those with one.
func held(t *testing.T, st *store.Store, w webhook.Webhook) (heldN, due int64) {
	t.Helper()
	pending := func() *gorm.DB {
		return st.GormDB().Table("deliveries").Where("webhook_id = ? AND status = ?", w.ID, store.StatusPending)
	}
	require.NoError(t, pending().Where("next_attempt_at IS NULL").Count(&heldN).Error)
	require.NoError(t, pending().Where("next_attempt_at IS NOT NULL").Count(&due).Error)
	return heldN, due
}

// untilReleased waits, a signal of new due deliveries at a time, until w has
// nothing held.
func untilReleased(t *testing.T, st *store.Store, w webhook.Webhook, signals <-chan struct{}) {
	t.Helper()
	for {
		if h, _ := held(t, st, w); h == 0 {
			return
		}
		<-signals
	}
}

func onDeliveries(st *store.Store) <-chan struct{} {
	signals := make(chan struct{}, 1)
	st.OnSignal(func(s store.Signal) {
		if s.Channel == store.DeliveriesChannel {
			select {
			case signals <- struct{}{}:
			default:
			}
		}
	})
	return signals
}

// TestUnpauseReleasesInBatches: an unpause releases more held deliveries than
// one transaction takes, as they are delivered, all due at the unpause's
// time, oldest first.
func TestUnpauseReleasesInBatches(t *testing.T) {
	t.Parallel()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			st := open(t, be.URL(t), store.Options{})
			signals := onDeliveries(st)
			alice := webhook.Owner{TenantID: "acme", UserID: "alice"}
			w := register(t, st, alice, "https://example.com/a")
			_, err := st.PauseWebhook(ctx, alice, w.ID, webhook.PauseReasonUser)
			require.NoError(t, err)
			const n = 6*1000 + 5 // more than the release keeps ahead of the claims
			bufferFor(t, st, alice, n)

			unpaused, err := st.UnpauseWebhook(ctx, alice, w.ID, 0)
			require.NoError(t, err)
			require.EqualValues(t, n, unpaused.BufferedEvents)
			var last int64
			for delivered := 0; delivered < n; {
				var dues []time.Time
				require.NoError(t, st.GormDB().Table("deliveries").Where("status = ? AND next_attempt_at IS NOT NULL", store.StatusPending).
					Distinct().Pluck("next_attempt_at", &dues).Error)
				require.LessOrEqual(t, len(dues), 1, "every released delivery is due at the unpause's time")
				for _, due := range dues {
					require.WithinDuration(t, *unpaused.LastUnpausedAt, due, time.Millisecond)
				}
				claims, err := st.Claim(ctx, store.ClaimRequest{Limit: 700, Lease: time.Minute})
				require.NoError(t, err)
				if len(claims) == 0 {
					// The recorded deliveries asked for the releaser's next
					// batch; its sweep every 30 s must not be what brings it.
					select {
					case <-signals:
					case <-time.After(10 * time.Second):
						t.Fatalf("%d of %d delivered: no release followed", delivered, n)
					}
					continue
				}
				results := make([]store.Result, len(claims))
				for i, c := range claims {
					require.Greater(t, c.DeliveryID, last, "the oldest go first")
					results[i] = store.Result{DeliveryID: c.DeliveryID, ClaimSeq: c.ClaimSeq, WebhookID: c.WebhookID,
						Status: store.StatusDelivered, Attempted: true, AttemptedAt: time.Now(), StatusCode: 204}
				}
				for _, c := range claims {
					last = max(last, c.DeliveryID)
				}
				_, err = st.Record(ctx, results, 0)
				require.NoError(t, err)
				delivered += len(claims)
			}
			var releasing int64
			require.NoError(t, st.GormDB().Table("webhooks").Where("release_due_at IS NOT NULL").Count(&releasing).Error)
			require.Zero(t, releasing, "the release is over")
		})
	}
}

// TestReleaseFinishesAfterACrash: a release cut short (the instance stopped
// after the unpause committed) is finished by the next store to open the
// database.
func TestReleaseFinishesAfterACrash(t *testing.T) {
	t.Parallel()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			url := be.URL(t)
			st, err := store.Open(ctx, url, store.Options{Keys: storetest.Keys()})
			require.NoError(t, err)
			alice := webhook.Owner{TenantID: "acme", UserID: "alice"}
			w := register(t, st, alice, "https://example.com/a")
			_, err = st.PauseWebhook(ctx, alice, w.ID, webhook.PauseReasonUser)
			require.NoError(t, err)
			bufferFor(t, st, alice, 1500)
			// What an unpause leaves when its instance stops before the releaser's
			// first batch: active, everything still held.
			require.NoError(t, st.GormDB().Exec(`UPDATE webhooks SET status = 'ACTIVE', pause_reason = '', paused_at = NULL, release_due_at = ?
				WHERE id = ?`, time.Now().UTC(), w.ID).Error)
			require.NoError(t, st.Close())

			st = open(t, url, store.Options{})
			untilReleased(t, st, w, onDeliveries(st))
			got, err := st.GetWebhook(ctx, alice, w.ID)
			require.NoError(t, err)
			require.EqualValues(t, 1500, got.BufferedEvents)
		})
	}
}

// TestPauseStopsARelease: a pause while an unpause's release is under way
// holds every pending delivery again, whatever the interleaving, and a release
// left behind by a pause does not resume while the webhook is paused.
func TestPauseStopsARelease(t *testing.T) {
	t.Parallel()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			st := open(t, be.URL(t), store.Options{})
			alice := webhook.Owner{TenantID: "acme", UserID: "alice"}
			w := register(t, st, alice, "https://example.com/a")
			_, err := st.PauseWebhook(ctx, alice, w.ID, webhook.PauseReasonUser)
			require.NoError(t, err)
			bufferFor(t, st, alice, 3500)
			for round := range 10 {
				_, err := st.UnpauseWebhook(ctx, alice, w.ID, 0)
				require.NoError(t, err)
				_, err = st.PauseWebhook(ctx, alice, w.ID, webhook.PauseReasonUser)
				require.NoError(t, err)
				claims, err := st.Claim(ctx, store.ClaimRequest{Limit: 100, Lease: time.Minute})
				require.NoError(t, err)
				require.Empty(t, claims, "round %d: paused, nothing is claimed", round)
				require.NoError(t, st.Settle(ctx)) // the rest of the hold
				h, due := held(t, st, w)
				require.Zero(t, due, "round %d: paused, nothing is due", round)
				require.EqualValues(t, 3500, h, "round %d", round)
			}
			// A paused webhook whose release was never cleared (as a crash
			// between the two could leave it) stays held.
			require.NoError(t, st.GormDB().Exec(`UPDATE webhooks SET release_due_at = ? WHERE id = ?`, time.Now().UTC(), w.ID).Error)
			require.NoError(t, st.Settle(ctx))
			_, due := held(t, st, w)
			require.Zero(t, due)
		})
	}
}

// TestPauseHoldsInBatches: a pause of a webhook with more due deliveries than
// one transaction holds stops its claims at once and holds the rest after; an
// unpause in the middle ends the hold, and everything is due again.
func TestPauseHoldsInBatches(t *testing.T) {
	t.Parallel()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			st := open(t, be.URL(t), store.Options{})
			alice := webhook.Owner{TenantID: "acme", UserID: "alice"}
			w := register(t, st, alice, "https://example.com/a")
			const n = 2*1000 + 500
			bufferFor(t, st, alice, n) // due: the webhook is active

			_, err := st.PauseWebhook(ctx, alice, w.ID, webhook.PauseReasonUser)
			require.NoError(t, err)
			claims, err := st.Claim(ctx, store.ClaimRequest{Limit: 100, Lease: time.Minute})
			require.NoError(t, err)
			require.Empty(t, claims, "paused: nothing is claimed, held or not yet")
			require.NoError(t, st.Settle(ctx))
			h, due := held(t, st, w)
			require.Zero(t, due)
			require.EqualValues(t, n, h)
			var holding int64
			require.NoError(t, st.GormDB().Table("webhooks").Where("holding").Count(&holding).Error)
			require.Zero(t, holding, "the hold is over")

			_, err = st.UnpauseWebhook(ctx, alice, w.ID, 0)
			require.NoError(t, err)
			_, err = st.PauseWebhook(ctx, alice, w.ID, webhook.PauseReasonUser) // holds 1,000 again
			require.NoError(t, err)
			_, err = st.UnpauseWebhook(ctx, alice, w.ID, 0) // before the rest of the hold
			require.NoError(t, err)
			require.NoError(t, st.Settle(ctx))
			h, _ = held(t, st, w)
			require.Zero(t, h, "unpaused: the hold ended, the release made everything due")
			got, err := st.GetWebhook(ctx, alice, w.ID)
			require.NoError(t, err)
			require.EqualValues(t, n, got.BufferedEvents)
		})
	}
}

// TestPauseBetweenReleaseBatches: a pause that commits between two batches of
// a release ends it: no batch is released after the pause. The pause is made
// from the signal the releaser sends after its first batch.
func TestPauseBetweenReleaseBatches(t *testing.T) {
	t.Parallel()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			st := open(t, be.URL(t), store.Options{})
			alice := webhook.Owner{TenantID: "acme", UserID: "alice"}
			w := register(t, st, alice, "https://example.com/a")
			_, err := st.PauseWebhook(ctx, alice, w.ID, webhook.PauseReasonUser)
			require.NoError(t, err)
			bufferFor(t, st, alice, 3005)

			// The first signal is the unpause's own; the releaser's come after
			// it, since only the unpause asks it for a round.
			var signals, afterPause atomic.Int64
			pauseErr := make(chan error, 1)
			st.OnSignal(func(s store.Signal) {
				if s.Channel != store.DeliveriesChannel {
					return
				}
				switch signals.Add(1) {
				case 1:
				case 2:
					_, err := st.PauseWebhook(ctx, alice, w.ID, webhook.PauseReasonUser) // between two batches
					pauseErr <- err
				default:
					afterPause.Add(1)
				}
			})
			_, err = st.UnpauseWebhook(ctx, alice, w.ID, 0) // its own batch, and the releaser asked
			require.NoError(t, err)
			require.NoError(t, st.Settle(ctx)) // after the releaser's round, if it began first
			require.NoError(t, <-pauseErr, "paused after the releaser's first batch")
			require.Zero(t, afterPause.Load(), "no release batch after the pause")
		})
	}
}
