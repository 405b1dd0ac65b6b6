package server_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookferry/hookferry/auth"
	hookferry "github.com/hookferry/hookferry/clients/go"
	"github.com/hookferry/hookferry/server"
	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/stretchr/testify/require"
)

// update sends body (raw JSON) to updateWebhook.
func (e *env) update(c *hookferry.ClientWithResponses, id, body string) *hookferry.UpdateWebhookResponse {
	e.t.Helper()
	res, err := c.UpdateWebhookWithBodyWithResponse(ctx, id, "application/json", strings.NewReader(body))
	require.NoError(e.t, err)
	return res
}

// updated sends body and requires 200.
func (e *env) updated(c *hookferry.ClientWithResponses, id, body string) hookferry.Webhook {
	e.t.Helper()
	res := e.update(c, id, body)
	require.Equal(e.t, http.StatusOK, res.StatusCode(), "update %s: %s", body, res.Body)
	return *res.JSON200
}

func TestUpdateWebhook(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		w := e.register(e.alice, "https://example.com/old", "order.created")
		e.clock.Advance(time.Minute)

		got := e.updated(e.alice, w.Id, `{"url":"https://example.com/new","subscription":{"event_types":["payment.failed","invoice.paid"]}}`)
		require.Equal(t, w.Id, got.Id)
		require.Equal(t, "https://example.com/new", got.Url)
		require.Equal(t, []string{"invoice.paid", "payment.failed"}, got.Subscription.EventTypes, "sorted, the old ones replaced")
		require.False(t, got.Ordered)
		require.Equal(t, hookferry.WebhookStatusACTIVE, got.Status)
		require.True(t, got.CreatedAt.Equal(w.CreatedAt))
		require.True(t, got.UpdatedAt.Equal(e.clock.Now()), "updated_at %s", got.UpdatedAt)
		require.Nil(t, got.Authentication, "no secret in the answer")

		stored, err := e.alice.GetWebhookWithResponse(ctx, w.Id, &hookferry.GetWebhookParams{ShowAuthentication: ptr(true)})
		require.NoError(t, err)
		require.Equal(t, got.Url, stored.JSON200.Url)
		require.Equal(t, got.Subscription, stored.JSON200.Subscription)
		require.True(t, stored.JSON200.UpdatedAt.Equal(got.UpdatedAt))
		require.Equal(t, w.Authentication.Secret, stored.JSON200.Authentication.Secret, "the secret is unchanged")

		// The new subscription decides what new events reach it.
		pub := e.publisher("acme")
		e.publish(pub, event("order.created", `{}`))
		require.Empty(t, e.deliveries(e.alice, w.Id))
		e.publish(pub, event("invoice.paid", `{}`))
		require.Len(t, e.deliveries(e.alice, w.Id), 1)

		// ordered alone, on and off; the rest stays.
		e.clock.Advance(time.Minute)
		on := e.updated(e.alice, w.Id, `{"ordered":true}`)
		require.True(t, on.Ordered)
		require.Equal(t, got.Url, on.Url)
		require.Equal(t, got.Subscription, on.Subscription)
		require.True(t, on.UpdatedAt.Equal(e.clock.Now()))
		require.True(t, e.getWebhook(e.alice, w.Id).Ordered, "stored")
		off := e.updated(e.alice, w.Id, `{"ordered":false}`)
		require.False(t, off.Ordered)
		require.False(t, e.getWebhook(e.alice, w.Id).Ordered, "stored")
		require.Contains(t, string(e.update(e.alice, w.Id, `{}`).Body), `"ordered":false`)

		// {} and a change that changes nothing answer the webhook unchanged,
		// updated_at included.
		before := e.getWebhook(e.alice, w.Id)
		e.clock.Advance(time.Minute)
		for _, body := range []string{`{}`, `{"url":"https://example.com/new"}`, `{"ordered":false}`,
			`{"subscription":{"event_types":["payment.failed","invoice.paid"]}}`} {
			same := e.updated(e.alice, w.Id, body)
			require.Equal(t, before, same, body)
		}
		require.Equal(t, before, e.getWebhook(e.alice, w.Id))

		// Another spelling of the own URL is no conflict; the normalised form
		// is what is stored, as at registration.
		respelt := e.updated(e.alice, w.Id, `{"url":"HTTPS://EXAMPLE.com:443/new"}`)
		require.Equal(t, "https://example.com/new", respelt.Url)

		// A paused webhook stays paused.
		_, err = e.alice.PauseWebhookWithResponse(ctx, w.Id)
		require.NoError(t, err)
		paused := e.updated(e.alice, w.Id, `{"url":"https://example.com/paused"}`)
		require.Equal(t, hookferry.WebhookStatusPAUSED, paused.Status)
		require.Equal(t, hookferry.PauseReasonUSER, *paused.PauseReason)
		require.NotNil(t, paused.PausedAt)
	})
}

func TestUpdateWebhookRejectsBadInput(t *testing.T) {
	t.Parallel()
	long := "https://example.com/" + strings.Repeat("a", 2049-len("https://example.com/"))
	cases := []struct {
		name, body string
		code       hookferry.ErrorCode
		mention    string
	}{
		{"http scheme", `{"url":"http://example.com/h"}`, hookferry.ErrorCodeINVALIDURLISNOTUSINGHTTPS, "https"},
		{"relative", `{"url":"/hooks"}`, hookferry.ErrorCodeINVALIDURL, "absolute"},
		{"no host", `{"url":"https:///hooks"}`, hookferry.ErrorCodeINVALIDURL, "host"},
		{"user info", `{"url":"https://u:p@example.com/h"}`, hookferry.ErrorCodeINVALIDURL, "user"},
		{"fragment", `{"url":"https://example.com/h#x"}`, hookferry.ErrorCodeINVALIDURL, "fragment"},
		{"too long", `{"url":"` + long + `"}`, hookferry.ErrorCodeINVALIDURL, "2048"},
		{"loopback", `{"url":"https://127.0.0.1/h"}`, hookferry.ErrorCodeINVALIDURL, "127.0.0.1"},
		{"private", `{"url":"https://10.1.2.3/h"}`, hookferry.ErrorCodeINVALIDURL, "10.1.2.3"},
		{"localhost", `{"url":"https://localhost/h"}`, hookferry.ErrorCodeINVALIDURL, "localhost"},
		{"url empty", `{"url":""}`, hookferry.ErrorCodeINVALIDURL, "url"},
		{"url null", `{"url":null}`, hookferry.ErrorCodeINVALIDURL, "url"},
		{"url not a string", `{"url":42}`, hookferry.ErrorCodeINVALIDURL, "url"},
		{"no event types", `{"subscription":{"event_types":[]}}`, hookferry.ErrorCodeINVALIDSUBSCRIPTION, "event_types"},
		{"event_types missing", `{"subscription":{}}`, hookferry.ErrorCodeINVALIDSUBSCRIPTION, "event_types"},
		{"subscription null", `{"subscription":null}`, hookferry.ErrorCodeINVALIDSUBSCRIPTION, "subscription"},
		{"duplicate event type", `{"subscription":{"event_types":["order.created","order.created"]}}`, hookferry.ErrorCodeINVALIDSUBSCRIPTION, "order.created"},
		{"unknown event type", `{"subscription":{"event_types":["order.created","order.exploded"]}}`, hookferry.ErrorCodeINVALIDSUBSCRIPTION, "order.exploded"},
		{"malformed event type", `{"subscription":{"event_types":["no spaces"]}}`, hookferry.ErrorCodeINVALIDSUBSCRIPTION, "event_types[0]"},
		{"subscription extra field", `{"subscription":{"event_types":["order.created"],"filter":1}}`, hookferry.ErrorCodeINVALIDSUBSCRIPTION, "filter"},
		{"unknown field", `{"colour":"red"}`, hookferry.ErrorCodeINVALIDREQUEST, "colour"},
		{"ordered null", `{"ordered":null}`, hookferry.ErrorCodeINVALIDREQUEST, "ordered"},
		{"ordered not a boolean", `{"ordered":"yes"}`, hookferry.ErrorCodeINVALIDREQUEST, "ordered"},
		{"malformed JSON", `{"url":`, hookferry.ErrorCodeINVALIDREQUEST, "body"},
		{"not an object", `["https://example.com"]`, hookferry.ErrorCodeINVALIDREQUEST, "body"},
		{"empty body", ``, hookferry.ErrorCodeINVALIDREQUEST, "body"},
		{"url beats the rest", `{"url":"http://example.com","subscription":{"event_types":[]},"x":1}`, hookferry.ErrorCodeINVALIDURLISNOTUSINGHTTPS, "https"},
		{"unknown event type beats an unknown field", `{"subscription":{"event_types":["order.exploded"]},"colour":"red"}`, hookferry.ErrorCodeINVALIDSUBSCRIPTION, "order.exploded"},
		{"a bad field refuses the good ones", `{"url":"https://example.com/fine","ordered":true,"subscription":{"event_types":["order.exploded"]}}`, hookferry.ErrorCodeINVALIDSUBSCRIPTION, "order.exploded"},
	}
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		w := e.register(e.alice, "https://example.com/h")
		before := e.getWebhook(e.alice, w.Id)
		e.clock.Advance(time.Minute)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				res := e.update(e.alice, w.Id, tc.body)
				msg := requireError(t, res, res.Body, http.StatusBadRequest, tc.code)
				require.Contains(t, msg, tc.mention)
			})
		}
		require.Equal(t, before, e.getWebhook(e.alice, w.Id), "a refused update changed something")

		// Private targets pass where the deployment allows them.
		open := setup(t, be, func(c *server.Config) { c.AllowPrivateTargets = true })
		ow := open.register(open.alice, "https://example.com/h")
		for _, u := range []string{"https://127.0.0.1:8443/h", "https://localhost/h", "https://10.0.0.7/h"} {
			require.Equal(t, u, open.updated(open.alice, ow.Id, `{"url":"`+u+`"}`).Url)
		}
		res := open.update(open.alice, ow.Id, `{"url":"http://localhost/h"}`)
		requireError(t, res, res.Body, http.StatusBadRequest, hookferry.ErrorCodeINVALIDURLISNOTUSINGHTTPS)
	})
}

func TestUpdateWebhookDuplicateURL(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		a := e.register(e.alice, "https://example.com/a")
		b := e.register(e.alice, "https://example.com/b")
		for _, spelling := range []string{"https://example.com/a", "HTTPS://EXAMPLE.com/a", "https://example.com:443/a", "https://example.com./a"} {
			res := e.update(e.alice, b.Id, `{"url":"`+spelling+`","ordered":true}`)
			requireError(t, res, res.Body, http.StatusConflict, hookferry.ErrorCodeDUPLICATEURL)
		}
		got := e.getWebhook(e.alice, b.Id)
		require.Equal(t, "https://example.com/b", got.Url, "a refused update changed nothing")
		require.False(t, got.Ordered, "a refused update changed nothing")

		// Another user's URL is no conflict, nor is the webhook's own.
		bob := e.client(e.token("acme", "bob", auth.PermissionWebhookManagement))
		e.register(bob, "https://example.com/bobs")
		require.Equal(t, "https://example.com/bobs", e.updated(e.alice, b.Id, `{"url":"https://example.com/bobs"}`).Url)
		require.Equal(t, "https://example.com/a", e.updated(e.alice, a.Id, `{"url":"https://example.com/a"}`).Url)
		// The URL b left is free: a may take it.
		require.Equal(t, "https://example.com/b", e.updated(e.alice, a.Id, `{"url":"https://example.com/b"}`).Url)
		// And the URL a left too, for a new registration.
		e.register(e.alice, "https://example.com/a")
	})
}

func TestUpdateWebhookNotFound(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		w := e.register(e.alice, "https://example.com/h")
		bob := e.client(e.token("acme", "bob", auth.PermissionWebhookManagement))
		globex := e.client(e.token("globex", "alice", auth.PermissionWebhookManagement))
		for _, c := range []*hookferry.ClientWithResponses{bob, globex} {
			for _, body := range []string{`{}`, `{"url":"https://example.com/stolen"}`} {
				res := e.update(c, w.Id, body)
				requireError(t, res, res.Body, http.StatusNotFound, hookferry.ErrorCodeWEBHOOKNOTFOUND)
			}
		}
		for _, id := range []string{"wh_00000000000000000000000000", "nope", strings.Repeat("x", 5000)} {
			res := e.update(e.alice, id, `{"ordered":true}`)
			requireError(t, res, res.Body, http.StatusNotFound, hookferry.ErrorCodeWEBHOOKNOTFOUND)
		}
		require.Equal(t, "https://example.com/h", e.getWebhook(e.alice, w.Id).Url)
	})
}

// TestUpdateWebhookKeepsDeliveries: the deliveries buffered for a paused
// webhook survive a URL change and, once unpaused, go to the new URL; a
// running webhook's next deliveries go to the new URL too.
func TestUpdateWebhookKeepsDeliveries(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be, func(c *server.Config) { c.AllowPrivateTargets = true })
		oldRcv, newRcv := newReceiver(t), newReceiver(t)
		w := e.register(e.alice, oldRcv.srv.URL+"/hooks", "order.created")
		pause, err := e.alice.PauseWebhookWithResponse(ctx, w.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, pause.StatusCode())
		pub := e.publisher("acme")
		var sent []string
		for range 3 {
			sent = append(sent, e.publish(pub, event("order.created", `{}`)).Id)
		}
		require.EqualValues(t, 3, e.getWebhook(e.alice, w.Id).BufferedEvents)

		got := e.updated(e.alice, w.Id, `{"url":"`+newRcv.srv.URL+`/moved","ordered":true}`)
		require.EqualValues(t, 3, got.BufferedEvents, "buffered events are kept")
		require.EqualValues(t, 3, e.getWebhook(e.alice, w.Id).BufferedEvents)

		// Every httptest TLS server has the same certificate: one pool trusts both.
		e.runDispatcher(newRcv)
		un, err := e.alice.UnpauseWebhookWithResponse(ctx, w.Id, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, un.StatusCode(), "%s", un.Body)
		var arrived []string
		for range 3 {
			arrived = append(arrived, newRcv.next(t).header.Get("webhook-id"))
		}
		require.Equal(t, sent, arrived, "ordered: in publish order, at the new URL")

		// Back to the old URL while running: the next delivery goes there.
		e.updated(e.alice, w.Id, `{"url":"`+oldRcv.srv.URL+`/hooks"}`)
		ev := e.publish(pub, event("order.created", `{}`))
		require.Equal(t, ev.Id, oldRcv.next(t).header.Get("webhook-id"))
		select {
		case r := <-newRcv.got:
			t.Fatalf("the new receiver got %s after the URL moved back", r.header.Get("webhook-id"))
		case <-time.After(200 * time.Millisecond):
		}
		select {
		case r := <-oldRcv.got:
			t.Fatalf("the old receiver got more: %s", r.header.Get("webhook-id"))
		default:
		}
	})
}

// TestUpdateWebhookSignals: a new URL or ordering tells the dispatchers to give
// back the claims of the webhook that have not started, as a pause does; a new
// subscription, or a change that changes nothing, does not.
func TestUpdateWebhookSignals(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		w := e.register(e.alice, "https://example.com/h")
		var mu sync.Mutex
		var got []string
		e.store.OnSignal(func(s store.Signal) {
			if s.Channel == store.WebhooksChannel {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, s.Payload)
			}
		})
		signalled := func() []string {
			mu.Lock()
			defer mu.Unlock()
			out := got
			got = nil
			return out
		}
		for _, tc := range []struct {
			body string
			want []string
		}{
			{`{"url":"https://example.com/moved"}`, []string{w.Id}},
			{`{"url":"https://example.com/moved"}`, nil},
			{`{"ordered":true}`, []string{w.Id}},
			{`{"subscription":{"event_types":["invoice.paid"]}}`, nil},
			{`{}`, nil},
		} {
			e.updated(e.alice, w.Id, tc.body)
			require.Equal(t, tc.want, signalled(), tc.body)
		}
	})
}
