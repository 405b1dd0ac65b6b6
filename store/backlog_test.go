package store_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/hookferry/hookferry/webhook"
	"github.com/stretchr/testify/require"
)

// requireBuffered checks every webhook's buffered_events, and the queue
// depth, against a count of its PENDING deliveries.
func requireBuffered(t *testing.T, st *store.Store, owner webhook.Owner, step string, hooks ...webhook.Webhook) {
	t.Helper()
	for _, w := range hooks {
		var want int64
		require.NoError(t, st.GormDB().Table("deliveries").Where("webhook_id = ? AND status = ?", w.ID, store.StatusPending).Count(&want).Error)
		got, err := st.GetWebhook(ctx, owner, w.ID)
		require.NoError(t, err)
		require.Equal(t, want, got.BufferedEvents, "%s: %s", step, w.URL)
	}
	var want int64
	require.NoError(t, st.GormDB().Table("deliveries").Where("status = ?", store.StatusPending).Count(&want).Error)
	depth, err := st.QueueDepth(ctx)
	require.NoError(t, err)
	require.Equal(t, want, depth, "%s: queue depth", step)
}

// TestBufferedEventsFollowEveryChange: a webhook's buffered_events is its
// count of PENDING deliveries after each way a delivery is queued, finished,
// queued again or removed.
func TestBufferedEventsFollowEveryChange(t *testing.T) {
	t.Parallel()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			st := open(t, be.URL(t), store.Options{Now: clk.Now})
			alice := webhook.Owner{TenantID: "acme", UserID: "alice"}
			bob := webhook.Owner{TenantID: "acme", UserID: "bob"}
			active := register(t, st, alice, "https://example.com/active")
			paused := register(t, st, alice, "https://example.com/paused")
			gone := register(t, st, bob, "https://example.com/gone")
			hooks := []webhook.Webhook{active, paused}
			_, err := st.PauseWebhook(ctx, alice, paused.ID, webhook.PauseReasonUser)
			require.NoError(t, err)
			requireBuffered(t, st, alice, "registered", hooks...)

			events := make([]store.Event, 5)
			for i := range events {
				events[i] = store.Event{TenantID: "acme", Type: "order.created", Data: json.RawMessage(`{}`)}
			}
			events[3].UserIDs = []string{"alice"}
			events[4].WebhookID = active.ID
			_, err = st.PublishBatch(ctx, events)
			require.NoError(t, err)
			requireBuffered(t, st, alice, "published: fan-out, audience, ping", hooks...)
			requireBuffered(t, st, bob, "published", gone)

			claims, err := st.Claim(ctx, store.ClaimRequest{Limit: 100, Lease: time.Minute})
			require.NoError(t, err)
			requireBuffered(t, st, alice, "claimed", hooks...)
			var mine []store.Claim
			for _, c := range claims {
				if c.WebhookID == active.ID {
					mine = append(mine, c)
				}
			}
			require.Len(t, mine, 5)
			results := make([]store.Result, len(mine))
			for i, c := range mine {
				results[i] = store.Result{DeliveryID: c.DeliveryID, ClaimSeq: c.ClaimSeq, WebhookID: c.WebhookID,
					Status: store.StatusDelivered, Attempted: true, AttemptedAt: clk.t, StatusCode: 204}
			}
			results[1].Status, results[1].StatusCode = store.StatusFailed, 500
			results[2].Status, results[2].StatusCode, results[2].NextAttemptAt = store.StatusPending, 500, clk.t.Add(time.Minute)
			_, err = st.Record(ctx, results[:3], 0)
			require.NoError(t, err)
			requireBuffered(t, st, alice, "recorded: delivered, failed, retry", hooks...)
			_, err = st.Record(ctx, results[:2], 0) // stale: changes no delivery
			require.NoError(t, err)
			requireBuffered(t, st, alice, "recorded again (stale)", hooks...)

			_, err = st.Redeliver(ctx, alice, active.ID, "dlv_"+strconv.FormatInt(mine[0].DeliveryID, 10))
			require.NoError(t, err)
			requireBuffered(t, st, alice, "redelivered a delivered one", hooks...)
			page, err := st.ListDeliveries(ctx, alice, active.ID, store.StatusPending, "", 10)
			require.NoError(t, err)
			require.NotEmpty(t, page.Items)
			_, err = st.Redeliver(ctx, alice, active.ID, page.Items[0].ID)
			require.NoError(t, err)
			requireBuffered(t, st, alice, "redelivered a pending one", hooks...)

			clk.t = clk.t.Add(time.Hour)
			require.NotZero(t, finish(t, st, store.StatusDelivered, clk.t)) // the retry and the redelivered ones, at least
			_, err = st.Prune(ctx, time.Millisecond)
			require.NoError(t, err)
			requireBuffered(t, st, alice, "pruned", hooks...)

			_, err = st.UnpauseWebhook(ctx, alice, paused.ID, 0)
			require.NoError(t, err)
			requireBuffered(t, st, alice, "unpaused", hooks...)

			// Whatever statement removes a pending delivery (an erasure does,
			// a batch at a time, before the webhook goes) counts it down.
			require.NoError(t, st.GormDB().Exec("DELETE FROM deliveries WHERE id = (SELECT MIN(id) FROM deliveries WHERE webhook_id = ? AND status = ?)",
				paused.ID, store.StatusPending).Error)
			requireBuffered(t, st, alice, "deleted a pending delivery", hooks...)

			_, err = st.Erase(ctx, "acme", "bob")
			require.NoError(t, err)
			_, err = st.DeleteWebhook(ctx, alice, paused.ID)
			require.NoError(t, err)
			requireBuffered(t, st, alice, "erased bob, deleted paused", active)
			var orphans int64
			require.NoError(t, st.GormDB().Table("webhook_backlog").Where("webhook_id IN ?", []string{paused.ID, gone.ID}).Count(&orphans).Error)
			require.Zero(t, orphans, "a deleted webhook leaves no count behind")
		})
	}
}

// TestBufferedEventsUnderConcurrency: publishes, claims and records from many
// connections at once leave every count exact (PostgreSQL spreads a count
// over its connections' rows).
func TestBufferedEventsUnderConcurrency(t *testing.T) {
	t.Parallel()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			st := open(t, be.URL(t), store.Options{})
			alice := webhook.Owner{TenantID: "acme", UserID: "alice"}
			hooks := []webhook.Webhook{register(t, st, alice, "https://example.com/a"), register(t, st, alice, "https://example.com/b")}
			var wg sync.WaitGroup
			for p := range 8 {
				wg.Go(func() {
					for i := range 20 {
						_, err := st.Publish(ctx, store.Event{TenantID: "acme", Type: "order.created", Data: json.RawMessage(fmt.Sprintf(`{"p":%d,"i":%d}`, p, i))})
						require.NoError(t, err)
					}
				})
			}
			for range 4 {
				wg.Go(func() {
					for range 20 {
						finish(t, st, store.StatusDelivered, time.Now())
					}
				})
			}
			wg.Wait()
			requireBuffered(t, st, alice, "after the race", hooks...)
		})
	}
}
