package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/hookferry/hookferry/auth"
	hookferry "github.com/hookferry/hookferry/clients/go"
	"github.com/hookferry/hookferry/server"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/stretchr/testify/require"
)

// operation is one call of a /v1 operation through the generated client (whose
// transport checks the answer against the contract).
type operation struct {
	name string
	call func() (*http.Response, error)
}

// everyOperation calls each /v1 operation once: manage holds WEBHOOK_MANAGEMENT,
// publish EVENTS_PUBLISH, webhookID and deliveryID are theirs. Delete comes last.
func everyOperation(manage, publish *hookferry.ClientWithResponses, webhookID, deliveryID string) []operation {
	return []operation{
		{"listWebhooks", func() (*http.Response, error) { return manage.ListWebhooks(ctx, nil) }},
		{"registerWebhook", func() (*http.Response, error) {
			return manage.RegisterWebhook(ctx, registerBody("https://example.com/registered-now"))
		}},
		{"getWebhook", func() (*http.Response, error) { return manage.GetWebhook(ctx, webhookID, nil) }},
		{"pauseWebhook", func() (*http.Response, error) { return manage.PauseWebhook(ctx, webhookID) }},
		{"unpauseWebhook", func() (*http.Response, error) { return manage.UnpauseWebhook(ctx, webhookID, nil) }},
		{"listEventTypes", func() (*http.Response, error) { return manage.ListEventTypes(ctx) }},
		{"publishEvent", func() (*http.Response, error) {
			return publish.PublishEvent(ctx, event("order.created", `{"published":"now"}`))
		}},
		{"listDeliveries", func() (*http.Response, error) { return manage.ListDeliveries(ctx, webhookID, nil) }},
		{"redeliver", func() (*http.Response, error) { return manage.Redeliver(ctx, webhookID, deliveryID) }},
		{"pingWebhook", func() (*http.Response, error) { return manage.PingWebhook(ctx, webhookID) }},
		{"deleteWebhook", func() (*http.Response, error) { return manage.DeleteWebhook(ctx, webhookID) }},
	}
}

// do runs op and returns its status, Retry-After header and Error code (for
// an error answer).
func (op operation) do(t *testing.T) (status int, retryAfter string, code hookferry.ErrorCode) {
	t.Helper()
	res, err := op.call()
	require.NoError(t, err, op.name)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	if res.StatusCode >= 400 {
		var e hookferry.Error
		require.NoError(t, json.Unmarshal(raw, &e), "%s: %s", op.name, raw)
		require.NotEmpty(t, e.Message, op.name)
		code = e.Code
	}
	return res.StatusCode, res.Header.Get("Retry-After"), code
}

// requireLimited checks that op is refused by the rate limit.
func requireLimited(t *testing.T, op operation) {
	t.Helper()
	status, retryAfter, code := op.do(t)
	require.Equal(t, http.StatusTooManyRequests, status, op.name)
	require.Equal(t, hookferry.ErrorCodeTOOMANYREQUESTS, code, op.name)
	require.Equal(t, "1", retryAfter, "%s: one request at 5/s is 0.2 s away, rounded up", op.name)
}

// TestRateLimit: with 5 requests per second per tenant (bursts of 10) and the
// clock standing still, a tenant's 11th request is 429 TOO_MANY_REQUESTS with
// Retry-After, whatever the operation, user or permission, and does nothing;
// another tenant's requests at the same moment all succeed; unauthenticated
// requests count against nobody; time refills the bucket.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be, func(c *server.Config) { c.RateLimit = 5 })
		acmePublisher := e.publisher("acme")
		bob := e.client(e.token("acme", "bob", auth.PermissionWebhookManagement))
		globex := e.client(e.token("globex", "carol", auth.PermissionWebhookManagement))
		globexPublisher := e.publisher("globex")

		// Requests without a valid token are refused before they are counted.
		for range 30 {
			res, err := e.client("hf_notarealtoken").ListWebhooksWithResponse(ctx, nil)
			require.NoError(t, err)
			requireError(t, res, res.Body, http.StatusUnauthorized, hookferry.ErrorCodeUNAUTHENTICATED)
		}

		// acme spends its burst of 10, across users and permissions.
		w := e.register(e.alice, "https://example.com/a") // 1
		e.publish(acmePublisher, event("order.created", `{"n":1}`))
		d := e.deliveries(e.alice, w.Id)[0] // 3
		for i := 4; i <= 10; i++ {
			c := e.alice
			if i%2 == 0 {
				c = bob
			}
			res, err := c.ListWebhooksWithResponse(ctx, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, res.StatusCode(), "request %d: %s", i, res.Body)
		}

		// The 11th, and every /v1 operation after it, is refused.
		limited := everyOperation(e.alice, acmePublisher, w.Id, d.Id)
		for _, op := range limited {
			requireLimited(t, op)
		}
		requireLimited(t, everyOperation(bob, acmePublisher, w.Id, d.Id)[0])
		forbidden, err := acmePublisher.ListWebhooksWithResponse(ctx, nil)
		require.NoError(t, err)
		requireError(t, forbidden, forbidden.Body, http.StatusTooManyRequests, hookferry.ErrorCodeTOOMANYREQUESTS)

		// At the same moment globex spends its own burst of 10, all answered.
		gw := e.register(globex, "https://example.com/g")
		e.publish(globexPublisher, event("order.created", `{"n":1}`))
		gd := e.deliveries(globex, gw.Id)[0]
		for _, op := range everyOperation(globex, globexPublisher, gw.Id, gd.Id)[2:9] { // get .. redeliver
			status, _, code := op.do(t)
			require.Less(t, status, 300, "globex %s: %s", op.name, code)
		}
		res, err := globex.ListWebhooksWithResponse(ctx, nil)
		require.NoError(t, err)
		requireError(t, res, res.Body, http.StatusTooManyRequests, hookferry.ErrorCodeTOOMANYREQUESTS)

		// 0.2 s later acme has one request again, then none.
		e.clock.Advance(200 * time.Millisecond)
		get := everyOperation(e.alice, acmePublisher, w.Id, d.Id)[2]
		status, _, _ := get.do(t)
		require.Equal(t, http.StatusOK, status)
		requireLimited(t, get)

		// Two seconds refill the burst: nothing a refused request asked for
		// happened. One publish, no ping, no second webhook, not paused, not deleted.
		e.clock.Advance(2 * time.Second)
		ds := e.deliveries(e.alice, w.Id)
		require.Len(t, ds, 1, "the refused publish and ping queued nothing")
		list, err := e.alice.ListWebhooksWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Len(t, list.JSON200.Items, 1, "the refused registration stored nothing")
		require.Equal(t, w.Id, list.JSON200.Items[0].Id, "the refused delete removed nothing")
		require.Equal(t, hookferry.WebhookStatusACTIVE, list.JSON200.Items[0].Status, "the refused pause paused nothing")
		require.EqualValues(t, 1, list.JSON200.Items[0].BufferedEvents)
	})
}

// TestNoRateLimitByDefault: without a limit, a tenant's burst is not cut off.
func TestNoRateLimitByDefault(t *testing.T) {
	t.Parallel()
	e := setup(t, storetest.Backends()[0])
	for i := range 50 {
		res, err := e.alice.ListEventTypesWithResponse(ctx)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "request %d", i+1)
	}
}
