package store_test

import (
	"testing"
	"time"

	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/hookferry/hookferry/webhook"
	"github.com/stretchr/testify/require"
)

// TestClaimSharesOut: a claim takes every webhook's oldest due delivery
// before anyone's second, so a webhook with a large backlog published first
// does not fill the claim; PerWebhook and WebhookRoom cap what one claim
// takes of a webhook.
func TestClaimSharesOut(t *testing.T) {
	t.Parallel()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, be)
			busy := e.webhook(alice, "https://busy.example/h", false)
			e.publish(e.st, "acme", 20) // the backlog, oldest
			quiet := e.webhook(carol, "https://quiet.example/h", false)
			e.publish(e.st, "globex", 2)

			first := e.claim(store.ClaimRequest{Limit: 4})
			require.Len(t, of(quiet.ID, first), 2, "the later webhook's deliveries come in the first rounds")
			require.Len(t, of(busy.ID, first), 2)

			capped := e.claim(store.ClaimRequest{Limit: 100, PerWebhook: 5})
			require.Len(t, capped, 5, "PerWebhook caps one webhook's share")
			roomed := e.claim(store.ClaimRequest{Limit: 100, PerWebhook: 5, WebhookRoom: map[string]int{busy.ID: 3}})
			require.Len(t, roomed, 3, "WebhookRoom lowers it")
			d := e.deliveryIDs(busy.ID)
			require.Equal(t, d[:2], ids(of(busy.ID, first)), "oldest first within a webhook")
			require.Equal(t, d[2:7], ids(capped))
			require.Equal(t, d[7:10], ids(roomed))
		})
	}
}

// TestRecordAppliesOnce: a claim's result is written once; the same result
// recorded again (a Record retried after an ambiguous commit) changes
// nothing, so an attempt is not counted twice and a later state is not
// overwritten.
func TestRecordAppliesOnce(t *testing.T) {
	t.Parallel()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, be)
			e.webhook(alice, "https://once.example/h", false)
			e.publish(e.st, "acme", 1)
			c := e.first(e.claimAll())
			r := retry(c, e.t0, e.t0.Add(time.Hour))
			e.record(r)
			e.record(r)
			got := e.row(c.DeliveryID)
			require.Equal(t, 1, got.Attempts, "counted once")
			require.Equal(t, store.StatusPending, got.Status)
			require.Nil(t, got.LeasedUntil)
		})
	}
}

// TestClaimSkipsExcludedUsers: ExcludeUsers skips one user's webhooks and
// keeps the other users of the same tenant.
func TestClaimSkipsExcludedUsers(t *testing.T) {
	t.Parallel()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, be)
			a := e.webhook(alice, "https://alice.example/h", false)
			b := e.webhook(bob, "https://bob.example/h", false)
			e.publish(e.st, "acme", 2)
			got := e.claim(store.ClaimRequest{Limit: 10, ExcludeUsers: []webhook.Owner{alice}})
			require.Empty(t, of(a.ID, got), "alice is skipped")
			require.Len(t, of(b.ID, got), 2, "bob, of the same tenant, is not")
		})
	}
}
