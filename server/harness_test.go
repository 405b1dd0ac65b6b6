package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hookferry/hookferry/apitest"
	"github.com/hookferry/hookferry/auth"
	hookferry "github.com/hookferry/hookferry/clients/go"
	"github.com/hookferry/hookferry/server"
	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/stretchr/testify/require"
)

// clock is a settable time source shared by the store and the server.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is a running API on a real socket over a fresh database.
type env struct {
	t     *testing.T
	url   string
	store *store.Store
	clock *clock
	// alice holds WEBHOOK_MANAGEMENT in tenant acme.
	alice *hookferry.ClientWithResponses
}

// eachBackend runs body on SQLite and on PostgreSQL, in parallel.
func eachBackend(t *testing.T, body func(t *testing.T, be storetest.Backend)) {
	t.Helper()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			body(t, be)
		})
	}
}

// setup starts the API on be; tweak adjusts its configuration.
func setup(t *testing.T, be storetest.Backend, tweak ...func(*server.Config)) *env {
	t.Helper()
	clk := &clock{now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	st, err := store.Open(context.Background(), be.URL(t), store.Options{Keys: storetest.Keys(), Now: clk.Now, MaxOpenConns: 8})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	cfg := server.Config{UnpauseCooldown: 10 * time.Second, Now: clk.Now}
	for _, f := range tweak {
		f(&cfg)
	}
	srv, err := server.New(st, cfg)
	require.NoError(t, err)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	e := &env{t: t, url: hs.URL, store: st, clock: clk}
	e.alice = e.client(e.token("acme", "alice", auth.PermissionWebhookManagement))
	return e
}

// token creates a token through the store, as `hookferry token create` does.
func (e *env) token(tenant, user string, perms ...auth.Permission) string {
	e.t.Helper()
	_, secret, err := e.store.CreateToken(context.Background(), tenant, user, perms)
	require.NoError(e.t, err)
	return secret
}

// client is the generated client, authenticated with token ("" for none).
func (e *env) client(token string) *hookferry.ClientWithResponses {
	e.t.Helper()
	c, err := hookferry.NewClientWithResponses(e.url, hookferry.WithHTTPClient(apitest.Client(e.t)), hookferry.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return nil
	}))
	require.NoError(e.t, err)
	return c
}

func registerBody(url string, types ...string) hookferry.RegisterWebhookJSONRequestBody {
	if len(types) == 0 {
		types = []string{"order.created"}
	}
	return hookferry.RegisterWebhookJSONRequestBody{Url: url, Subscription: hookferry.Subscription{EventTypes: types}}
}

// register registers a webhook that must be accepted.
func (e *env) register(c *hookferry.ClientWithResponses, url string, types ...string) hookferry.Webhook {
	e.t.Helper()
	res, err := c.RegisterWebhookWithResponse(context.Background(), registerBody(url, types...))
	require.NoError(e.t, err)
	require.Equal(e.t, http.StatusCreated, res.StatusCode(), "register %s: %s", url, res.Body)
	return *res.JSON201
}

// response is what every generated *Response has.
type response interface{ StatusCode() int }

// requireError checks an error answer: its status, the spec's Error body with a
// known code and a message; it returns the message.
func requireError(t *testing.T, res response, body []byte, status int, code hookferry.ErrorCode) string {
	t.Helper()
	require.Equal(t, status, res.StatusCode(), "body: %s", body)
	var e hookferry.Error
	require.NoError(t, json.Unmarshal(body, &e), "the error body does not parse as Error: %s", body)
	require.Equal(t, code, e.Code, "body: %s", body)
	require.True(t, e.Code.Valid())
	require.NotEmpty(t, e.Message)
	return e.Message
}

func ptr[T any](v T) *T { return &v }
