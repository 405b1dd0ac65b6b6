package store_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hookferry/hookferry/auth"
	"github.com/hookferry/hookferry/keyring"
	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/hookferry/hookferry/webhook"
	"github.com/stretchr/testify/require"
)

// clock is a settable clock for the store.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

// register registers a webhook of owner at url for types (none: order.created).
func register(t testing.TB, st *store.Store, owner webhook.Owner, url string, types ...string) webhook.Webhook {
	t.Helper()
	if len(types) == 0 {
		types = []string{"order.created"}
	}
	w, err := webhook.New(owner, url, url, types, webhook.SigningSymmetric, time.Now(), nil)
	require.NoError(t, err)
	require.NoError(t, st.RegisterWebhook(ctx, w, 25))
	return w
}

// open opens a store at url with the test keys, closed when t ends.
func open(t testing.TB, url string, opts store.Options) *store.Store {
	t.Helper()
	opts.Keys = storetest.Keys()
	st, err := store.Open(ctx, url, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func publish(t *testing.T, st *store.Store, tenant string, n int) {
	t.Helper()
	for i := range n {
		_, err := st.Publish(ctx, store.Event{TenantID: tenant, Type: "order.created", Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))})
		require.NoError(t, err)
	}
}

// finish claims every due delivery and records it as status (an attempt made).
func finish(t testing.TB, st *store.Store, status string, at time.Time) int {
	t.Helper()
	claims, err := st.Claim(ctx, store.ClaimRequest{Limit: 1000, Lease: time.Minute})
	require.NoError(t, err)
	results := make([]store.Result, len(claims))
	for i, c := range claims {
		results[i] = store.Result{DeliveryID: c.DeliveryID, ClaimSeq: c.ClaimSeq, WebhookID: c.WebhookID, Status: status,
			Attempted: true, AttemptedAt: at, StatusCode: 500}
		if status == store.StatusDelivered {
			results[i].StatusCode = 204
		}
	}
	_, err = st.Record(ctx, results, 0)
	require.NoError(t, err)
	return len(claims)
}

// TestPruneKeepsWhatIsPending: finished deliveries older than the retention go
// with their attempts and events; pending ones (buffered, retrying) and their
// events stay however old; younger finished ones stay.
func TestPruneKeepsWhatIsPending(t *testing.T) {
	t.Parallel()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			st, err := store.Open(ctx, be.URL(t), store.Options{Keys: storetest.Keys(), Now: clk.Now})
			require.NoError(t, err)
			defer st.Close()
			alice := webhook.Owner{TenantID: "acme", UserID: "alice"}
			done := register(t, st, alice, "https://example.com/done")
			paused := register(t, st, alice, "https://example.com/paused")
			_, err = st.PauseWebhook(ctx, alice, paused.ID, webhook.PauseReasonUser)
			require.NoError(t, err)

			publish(t, st, "acme", 3)                                        // 3 to done (finished, old), 3 buffered for paused
			require.Equal(t, 3, finish(t, st, store.StatusDelivered, clk.t)) // done's three
			clk.t = clk.t.Add(40 * 24 * time.Hour)
			_, err = st.Publish(ctx, store.Event{TenantID: "acme", Type: "customer.created", Data: json.RawMessage(`{}`)}) // no subscriber, young
			require.NoError(t, err)
			publish(t, st, "acme", 1) // one to done, one buffered
			require.Equal(t, 1, finish(t, st, store.StatusFailed, clk.t))

			c, err := st.Prune(ctx, 30*24*time.Hour)
			require.NoError(t, err)
			require.Equal(t, store.PruneCounts{Deliveries: 3, Events: 0}, c,
				"the old events still have buffered deliveries for the paused webhook; a delivered delivery is the log of its attempt")
			w, err := st.GetWebhook(ctx, alice, paused.ID)
			require.NoError(t, err)
			require.EqualValues(t, 4, w.BufferedEvents, "buffered deliveries are never pruned")
			page, err := st.ListDeliveries(ctx, alice, done.ID, "", "", 100)
			require.NoError(t, err)
			require.Len(t, page.Items, 1, "the young FAILED delivery stays")

			// Once the paused webhook is gone, its old events have no delivery left.
			_, err = st.DeleteWebhook(ctx, alice, paused.ID)
			require.NoError(t, err)
			c, err = st.Prune(ctx, 30*24*time.Hour)
			require.NoError(t, err)
			require.Equal(t, store.PruneCounts{Events: 3}, c)
			clk.t = clk.t.Add(time.Second)
			c, err = st.Prune(ctx, time.Millisecond)
			require.NoError(t, err)
			require.Equal(t, store.PruneCounts{Deliveries: 1, Attempts: 1, Events: 2}, c)
		})
	}
}

// TestEraseUserAndTenant removes a user's webhooks, deliveries, attempts and
// tokens and nothing of anybody else; a tenant's erasure takes its events too.
func TestEraseUserAndTenant(t *testing.T) {
	t.Parallel()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			st, err := store.Open(ctx, be.URL(t), store.Options{Keys: storetest.Keys()})
			require.NoError(t, err)
			defer st.Close()
			alice, bob := webhook.Owner{TenantID: "acme", UserID: "alice"}, webhook.Owner{TenantID: "acme", UserID: "bob"}
			other := webhook.Owner{TenantID: "globex", UserID: "alice"}
			a1, a2 := register(t, st, alice, "https://example.com/a1"), register(t, st, alice, "https://example.com/a2")
			b1 := register(t, st, bob, "https://example.com/b1")
			o1 := register(t, st, other, "https://example.com/o1")
			tokens := map[string]string{}
			for _, o := range []webhook.Owner{alice, bob, other} {
				_, secret, err := st.CreateToken(ctx, o.TenantID, o.UserID, []auth.Permission{auth.PermissionWebhookManagement})
				require.NoError(t, err)
				tokens[o.TenantID+"/"+o.UserID] = secret
				_, err = st.Authenticate(ctx, secret) // cached
				require.NoError(t, err)
			}
			publish(t, st, "acme", 2)
			publish(t, st, "globex", 2)
			require.Equal(t, 8, finish(t, st, store.StatusFailed, time.Now())) // failed: each leaves an attempt row

			c, err := st.Erase(ctx, "acme", "alice")
			require.NoError(t, err)
			require.Equal(t, store.EraseCounts{Webhooks: 2, Deliveries: 4, Attempts: 4, Tokens: 1}, c)
			for _, id := range []string{a1.ID, a2.ID} {
				_, err := st.GetWebhook(ctx, alice, id)
				require.ErrorIs(t, err, store.ErrNotFound)
			}
			_, err = st.Authenticate(ctx, tokens["acme/alice"])
			require.ErrorIs(t, err, store.ErrTokenUnauthorized)
			for _, k := range []string{"acme/bob", "globex/alice"} {
				_, err = st.Authenticate(ctx, tokens[k])
				require.NoError(t, err, k)
			}
			// Alice may start again from zero.
			register(t, st, alice, "https://example.com/a1")

			c, err = st.Erase(ctx, "acme", "")
			require.NoError(t, err)
			require.Equal(t, store.EraseCounts{Webhooks: 2, Deliveries: 2, Attempts: 2, Tokens: 1, Events: 2}, c)
			_, err = st.GetWebhook(ctx, bob, b1.ID)
			require.ErrorIs(t, err, store.ErrNotFound)
			w, err := st.GetWebhook(ctx, other, o1.ID)
			require.NoError(t, err)
			require.Equal(t, webhook.StatusActive, w.Status)
			page, err := st.ListDeliveries(ctx, other, o1.ID, "", "", 100)
			require.NoError(t, err)
			require.Len(t, page.Items, 2)
		})
	}
}

// TestRevocationByAnotherProcess: a token cached by a running store is refused
// from the moment another store (the CLI) revoked it.
func TestRevocationByAnotherProcess(t *testing.T) {
	t.Parallel()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			url := be.URL(t)
			server, err := store.Open(ctx, url, store.Options{Keys: storetest.Keys()})
			require.NoError(t, err)
			defer server.Close()
			cli, err := store.Open(ctx, url, store.Options{Keys: storetest.Keys()})
			require.NoError(t, err)
			defer cli.Close()
			tok, secret, err := cli.CreateToken(ctx, "acme", "alice", []auth.Permission{auth.PermissionEventsPublish})
			require.NoError(t, err)
			for range 2 {
				_, err = server.Authenticate(ctx, secret) // the second one from the cache
				require.NoError(t, err)
			}
			_, err = cli.RevokeToken(ctx, tok.ID)
			require.NoError(t, err)
			_, err = server.Authenticate(ctx, secret)
			require.ErrorIs(t, err, store.ErrTokenUnauthorized)
		})
	}
}

// TestSecretsAtRest: a secret, and the previous secrets a rotation keeps, are
// stored sealed, never in plain text or base64 in the database files; rotating
// the keys re-seals them under the new first key, after which the old key is
// not needed.
func TestSecretsAtRest(t *testing.T) {
	t.Parallel()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			url := be.URL(t)
			oldKey, err := keyring.Generate(nil)
			require.NoError(t, err)
			newKey, err := keyring.Generate(nil)
			require.NoError(t, err)
			keys := func(list ...string) *keyring.Keyring {
				k, err := keyring.Parse(strings.Join(list, ","))
				require.NoError(t, err)
				return k
			}
			alice := webhook.Owner{TenantID: "acme", UserID: "alice"}
			st, err := store.Open(ctx, url, store.Options{Keys: keys(oldKey)})
			require.NoError(t, err)
			first := register(t, st, alice, "https://example.com/h")
			w, err := st.RotateSecret(ctx, alice, first.ID, time.Hour)
			require.NoError(t, err)
			require.NotEqual(t, first.Secret, w.Secret)
			require.Equal(t, first.Secret, w.PreviousKeys[0].Secret)
			if be.Name == "sqlite" {
				path := strings.TrimPrefix(url, "sqlite:")
				for _, f := range []string{path, path + "-wal", path + "-shm"} {
					fi, err := os.Stat(f)
					require.NoError(t, err)
					require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), f)
				}
			}
			var stored, previous string
			require.NoError(t, rawDB(t, url).QueryRow("SELECT secret, previous_secrets FROM webhooks").Scan(&stored, &previous))
			for _, sealed := range []string{stored, previous} {
				require.True(t, strings.HasPrefix(sealed, "enc:v1:"))
				require.NotContains(t, sealed, strings.TrimPrefix(w.Secret, "whsec_"))
				require.NotContains(t, sealed, strings.TrimPrefix(first.Secret, "whsec_"))
			}
			publish(t, st, "acme", 1)
			claims, err := st.Claim(ctx, store.ClaimRequest{Limit: 10, Lease: time.Minute})
			require.NoError(t, err)
			require.Len(t, claims, 1)
			require.Equal(t, w.Secret, claims[0].Secret, "claims carry the opened secret")
			require.Equal(t, w.PreviousKeys, claims[0].PreviousKeys, "and the opened previous ones")
			require.NoError(t, st.Close())
			if be.Name == "sqlite" {
				requireNotOnDisk(t, strings.TrimPrefix(url, "sqlite:"), w.Secret)
				requireNotOnDisk(t, strings.TrimPrefix(url, "sqlite:"), first.Secret)
			}

			_, err = store.Open(ctx, url, store.Options{Keys: keys(newKey)})
			require.ErrorIs(t, err, keyring.ErrNoKey, "the old key is still needed before the rotation")
			require.ErrorContains(t, err, "give the key they were sealed with")
			st, err = store.Open(ctx, url, store.Options{Keys: keys(newKey, oldKey)})
			require.NoError(t, err)
			n, err := st.RotateKeys(ctx)
			require.NoError(t, err)
			require.EqualValues(t, 1, n)
			n, err = st.RotateKeys(ctx)
			require.NoError(t, err)
			require.Zero(t, n, "nothing left to rotate")
			require.NoError(t, st.Close())

			st, err = store.Open(ctx, url, store.Options{Keys: keys(newKey)})
			require.NoError(t, err)
			defer st.Close()
			got, err := st.GetWebhook(ctx, alice, w.ID)
			require.NoError(t, err)
			require.Equal(t, w.Secret, got.Secret)
			require.Equal(t, w.PreviousKeys, got.PreviousKeys, "the previous secrets were re-sealed too")
		})
	}
}

// TestPruneRemovesExpiredTokens: a token expired longer ago than the retention
// goes; one expired more recently, one still valid and one that never expires
// stay.
func TestPruneRemovesExpiredTokens(t *testing.T) {
	t.Parallel()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			st, err := store.Open(ctx, be.URL(t), store.Options{Keys: storetest.Keys(), Now: clk.Now})
			require.NoError(t, err)
			defer st.Close()
			perms := []auth.Permission{auth.PermissionWebhookManagement}
			now := clk.Now()
			old, _, err := st.CreateExpiringToken(ctx, "acme", "alice", perms, now.Add(-48*time.Hour))
			require.NoError(t, err)
			_, _, err = st.CreateExpiringToken(ctx, "acme", "alice", perms, now.Add(-time.Hour))
			require.NoError(t, err)
			_, valid, err := st.CreateExpiringToken(ctx, "acme", "alice", perms, now.Add(time.Hour))
			require.NoError(t, err)
			_, forever, err := st.CreateToken(ctx, "acme", "backend", []auth.Permission{auth.PermissionPortalSessions})
			require.NoError(t, err)

			c, err := st.Prune(ctx, 24*time.Hour)
			require.NoError(t, err)
			require.EqualValues(t, 1, c.Tokens)
			list, err := st.ListTokens(ctx)
			require.NoError(t, err)
			require.Len(t, list, 3)
			for _, tok := range list {
				require.NotEqual(t, old.ID, tok.ID)
			}
			for _, secret := range []string{valid, forever} {
				_, err := st.Authenticate(ctx, secret)
				require.NoError(t, err)
			}
		})
	}
}
