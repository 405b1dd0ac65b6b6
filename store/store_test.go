package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hookferry/hookferry/auth"
	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/hookferry/hookferry/webhook"
	"github.com/stretchr/testify/require"
)

var ctx = context.Background()

// TestReopenKeepsData starts twice on one database: the second start upgrades
// the schema in place and finds everything the first stored, times in UTC.
func TestReopenKeepsData(t *testing.T) {
	t.Parallel()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			url := be.URL(t)
			berlin := time.FixedZone("CET", 3600)
			now := func() time.Time { return time.Date(2026, 11, 27, 13, 0, 0, 123456789, berlin) }
			st, err := store.Open(ctx, url, store.Options{Keys: storetest.Keys(), Now: now})
			require.NoError(t, err)
			owner := webhook.Owner{TenantID: "acme", UserID: "alice"}
			w, err := webhook.New(owner, "https://example.com/h", "https://example.com/h", []string{"order.created"}, webhook.SigningSymmetric, now(), nil)
			require.NoError(t, err)
			require.NoError(t, st.RegisterWebhook(ctx, w, 25))
			_, secret, err := st.CreateToken(ctx, "acme", "alice", []auth.Permission{auth.PermissionWebhookManagement})
			require.NoError(t, err)
			require.NoError(t, st.Close())

			st, err = store.Open(ctx, url, store.Options{Keys: storetest.Keys()})
			require.NoError(t, err)
			defer st.Close()
			got, err := st.GetWebhook(ctx, owner, w.ID)
			require.NoError(t, err)
			require.Equal(t, w.Secret, got.Secret)
			require.Equal(t, time.UTC, got.CreatedAt.Location())
			require.Equal(t, "2026-11-27T12:00:00.123456Z", got.CreatedAt.Format(time.RFC3339Nano))
			p, err := st.Authenticate(ctx, secret)
			require.NoError(t, err)
			require.Equal(t, "alice", p.UserID)
			require.True(t, p.Can(auth.PermissionWebhookManagement))
			require.False(t, p.Can(auth.PermissionEventsPublish))
		})
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			st, err := store.Open(ctx, be.URL(t), store.Options{Keys: storetest.Keys()})
			require.NoError(t, err)
			defer st.Close()
			tok, secret, err := st.CreateToken(ctx, "acme", "alice", []auth.Permission{auth.PermissionEventsPublish})
			require.NoError(t, err)
			_, err = st.Authenticate(ctx, secret+"x")
			require.ErrorIs(t, err, store.ErrTokenUnauthorized)
			_, err = st.Authenticate(ctx, tok.ID)
			require.ErrorIs(t, err, store.ErrTokenUnauthorized, "the id is not a credential")

			revoked, err := st.RevokeToken(ctx, tok.ID)
			require.NoError(t, err)
			require.NotNil(t, revoked.RevokedAt)
			_, err = st.Authenticate(ctx, secret)
			require.ErrorIs(t, err, store.ErrTokenUnauthorized)
			again, err := st.RevokeToken(ctx, secret)
			require.NoError(t, err, "revoking twice is harmless")
			require.Equal(t, revoked.RevokedAt, again.RevokedAt)
			_, err = st.RevokeToken(ctx, "tok_nope")
			require.ErrorIs(t, err, store.ErrNotFound)
		})
	}
}

func TestStoreErrorsSayWhere(t *testing.T) {
	t.Parallel()
	st, err := store.Open(ctx, storetest.SQLiteURL(t), store.Options{Keys: storetest.Keys()})
	require.NoError(t, err)
	defer st.Close()
	_, err = st.GetWebhook(ctx, webhook.Owner{TenantID: "a", UserID: "b"}, "wh_x")
	require.True(t, errors.Is(err, store.ErrNotFound))
	require.Contains(t, err.Error(), "store.GetWebhook(wh_x)")
}

func TestOpenRejectsUnknownURLs(t *testing.T) {
	t.Parallel()
	_, err := store.Open(ctx, "mysql://root:hunter2@localhost/db", store.Options{Keys: storetest.Keys()})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "hunter2", "passwords stay out of messages")
}

// TestRevokedTokenStopsAtOnce: the token cache never outlives a revocation
// made through the same store.
func TestRevokedTokenStopsAtOnce(t *testing.T) {
	t.Parallel()
	st, err := store.Open(ctx, storetest.SQLiteURL(t), store.Options{Keys: storetest.Keys()})
	require.NoError(t, err)
	defer st.Close()
	_, secret, err := st.CreateToken(ctx, "acme", "alice", []auth.Permission{auth.PermissionWebhookManagement})
	require.NoError(t, err)
	_, err = st.Authenticate(ctx, secret) // now cached
	require.NoError(t, err)
	_, err = st.RevokeToken(ctx, secret)
	require.NoError(t, err)
	_, err = st.Authenticate(ctx, secret)
	require.ErrorIs(t, err, store.ErrTokenUnauthorized)
}

// TestExpiringTokens: a token with an end is refused from then on, by the
// database and by the token cache alike, and a token without one keeps working.
func TestExpiringTokens(t *testing.T) {
	t.Parallel()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
			clk := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
			url := be.URL(t)
			st, err := store.Open(ctx, url, store.Options{Keys: storetest.Keys(), Now: clk})
			require.NoError(t, err)
			defer st.Close()
			perms := []auth.Permission{auth.PermissionWebhookManagement}
			tok, secret, err := st.CreateExpiringToken(ctx, "acme", "alice", perms, clk().Add(10*time.Second))
			require.NoError(t, err)
			require.NotNil(t, tok.ExpiresAt)
			require.True(t, tok.ExpiresAt.Equal(clk().Add(10*time.Second)))
			_, forever, err := st.CreateToken(ctx, "acme", "bob", perms)
			require.NoError(t, err)

			p, err := st.Authenticate(ctx, secret) // now cached until the expiry
			require.NoError(t, err)
			require.Equal(t, "alice", p.UserID)
			advance(9 * time.Second)
			_, err = st.Authenticate(ctx, secret)
			require.NoError(t, err, "still valid a second before its end")
			advance(time.Second)
			_, err = st.Authenticate(ctx, secret)
			require.ErrorIs(t, err, store.ErrTokenUnauthorized, "refused at its end, cached or not")

			// A second store has no cache: the database refuses it too.
			other, err := store.Open(ctx, url, store.Options{Keys: storetest.Keys(), Now: clk})
			require.NoError(t, err)
			defer other.Close()
			_, err = other.Authenticate(ctx, secret)
			require.ErrorIs(t, err, store.ErrTokenUnauthorized)

			advance(24 * time.Hour)
			_, err = st.Authenticate(ctx, forever)
			require.NoError(t, err, "a token without an end never expires")
			list, err := st.ListTokens(ctx)
			require.NoError(t, err)
			require.Len(t, list, 2)
		})
	}
}

// TestPostgresSessionsDoNotJIT: the store's PostgreSQL sessions run with
// jit=off unless the URL says otherwise (a claim on a large table passed
// jit_above_cost and spent ~40 ms compiling for ~1 ms of work).
func TestPostgresSessionsDoNotJIT(t *testing.T) {
	t.Parallel()
	for _, be := range storetest.Backends() {
		if be.Name != "postgres" {
			continue // SQLite has no JIT
		}
		url := be.URL(t)
		for _, tc := range []struct{ url, want string }{{url, "off"}, {url + "&jit=on", "on"}} {
			st, err := store.Open(ctx, tc.url, store.Options{Keys: storetest.Keys()})
			require.NoError(t, err)
			var jit string
			require.NoError(t, st.GormDB().Raw("SHOW jit").Scan(&jit).Error)
			require.Equal(t, tc.want, jit, tc.url)
			require.NoError(t, st.Close())
		}
	}
}
