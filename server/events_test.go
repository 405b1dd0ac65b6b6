package server_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookferry/hookferry/auth"
	hookferry "github.com/hookferry/hookferry/clients/go"
	"github.com/hookferry/hookferry/delivery"
	"github.com/hookferry/hookferry/server"
	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/store/storetest"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"
)

// publisher is a client holding EVENTS_PUBLISH (only) in tenant.
func (e *env) publisher(tenant string) *hookferry.ClientWithResponses {
	e.t.Helper()
	return e.client(e.token(tenant, "producer-"+tenant, auth.PermissionEventsPublish))
}

// event is a publishEvent body of type typ carrying data (a JSON object).
func event(typ, data string) hookferry.PublishEventJSONRequestBody {
	return hookferry.PublishEventJSONRequestBody{Type: typ, Data: json.RawMessage(data)}
}

// publish publishes body, which must be accepted.
func (e *env) publish(c *hookferry.ClientWithResponses, body hookferry.PublishEventJSONRequestBody) hookferry.PublishedEvent {
	e.t.Helper()
	res, err := c.PublishEventWithResponse(ctx, body)
	require.NoError(e.t, err)
	require.Equal(e.t, http.StatusAccepted, res.StatusCode(), "publish %s: %s", body.Type, res.Body)
	require.NotNil(e.t, res.JSON202)
	require.True(e.t, strings.HasPrefix(res.JSON202.Id, "evt_"), res.JSON202.Id)
	return *res.JSON202
}

// deliveries reads the whole delivery log of webhookID, newest first.
func (e *env) deliveries(c *hookferry.ClientWithResponses, webhookID string) []hookferry.Delivery {
	e.t.Helper()
	var out []hookferry.Delivery
	params := &hookferry.ListDeliveriesParams{Limit: ptr(100)}
	for {
		res, err := c.ListDeliveriesWithResponse(ctx, webhookID, params)
		require.NoError(e.t, err)
		require.Equal(e.t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		out = append(out, res.JSON200.Items...)
		if res.JSON200.NextCursor == nil {
			return out
		}
		params.Cursor = res.JSON200.NextCursor
	}
}

// eventIDs lists the event ids of ds, in order.
func eventIDs(ds []hookferry.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.EventId
	}
	return out
}

func (e *env) getWebhook(c *hookferry.ClientWithResponses, id string) hookferry.Webhook {
	e.t.Helper()
	res, err := c.GetWebhookWithResponse(ctx, id, nil)
	require.NoError(e.t, err)
	require.Equal(e.t, http.StatusOK, res.StatusCode(), "%s", res.Body)
	return *res.JSON200
}

func TestPublishEventFansOut(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		bob := e.client(e.token("acme", "bob", auth.PermissionWebhookManagement))
		carol := e.client(e.token("globex", "carol", auth.PermissionWebhookManagement))
		orders := e.register(e.alice, "https://example.com/orders", "order.created")
		both := e.register(e.alice, "https://example.com/both", "order.created", "payment.failed")
		payments := e.register(e.alice, "https://example.com/payments", "payment.failed")
		bobs := e.register(bob, "https://example.com/orders", "order.created")
		carols := e.register(carol, "https://example.com/orders", "order.created")
		res, err := e.alice.PauseWebhookWithResponse(ctx, both.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode())
		acme := e.publisher("acme")

		// Subscribed, same tenant, active or paused.
		created := e.publish(acme, event("order.created", `{"order_id":"1"}`))
		require.EqualValues(t, 3, created.Deliveries, "orders, both (paused) and bob's")
		failed := e.publish(acme, event("payment.failed", `{}`))
		require.EqualValues(t, 2, failed.Deliveries, "both (paused) and payments")
		nobody := e.publish(acme, event("invoice.paid", `{}`))
		require.EqualValues(t, 0, nobody.Deliveries, "nobody subscribed")
		require.NotEqual(t, created.Id, failed.Id)

		// The audience restricts to its users' webhooks.
		audience := func(typ string, users ...string) hookferry.PublishEventJSONRequestBody {
			b := event(typ, `{}`)
			b.Audience = &hookferry.Audience{UserIds: users}
			return b
		}
		toBob := e.publish(acme, audience("order.created", "bob"))
		require.EqualValues(t, 1, toBob.Deliveries)
		toAll := e.publish(acme, audience("order.created", "alice", "bob"))
		require.EqualValues(t, 3, toAll.Deliveries)
		toAlice := e.publish(acme, audience("payment.failed", "alice", "dave"))
		require.EqualValues(t, 2, toAlice.Deliveries)
		require.EqualValues(t, 0, e.publish(acme, audience("order.created", "dave")).Deliveries)
		require.EqualValues(t, 0, e.publish(acme, audience("order.created", "carol")).Deliveries, "carol is in another tenant")

		// Another tenant's publisher reaches only its own tenant.
		globex := e.publisher("globex")
		theirs := e.publish(globex, event("order.created", `{}`))
		require.EqualValues(t, 1, theirs.Deliveries)
		require.EqualValues(t, 0, e.publish(globex, audience("order.created", "alice", "bob")).Deliveries)

		require.Equal(t, []string{toAll.Id, created.Id}, eventIDs(e.deliveries(e.alice, orders.Id)))
		require.Equal(t, []string{toAlice.Id, toAll.Id, failed.Id, created.Id}, eventIDs(e.deliveries(e.alice, both.Id)))
		require.Equal(t, []string{toAlice.Id, failed.Id}, eventIDs(e.deliveries(e.alice, payments.Id)))
		require.Equal(t, []string{toAll.Id, toBob.Id, created.Id}, eventIDs(e.deliveries(bob, bobs.Id)))
		require.Equal(t, []string{theirs.Id}, eventIDs(e.deliveries(carol, carols.Id)))
		for _, d := range e.deliveries(e.alice, both.Id) {
			if d.EventId == failed.Id || d.EventId == toAlice.Id {
				require.Equal(t, "payment.failed", d.EventType)
			} else {
				require.Equal(t, "order.created", d.EventType)
			}
		}
	})
}

func TestPublishEventRejectsBadInput(t *testing.T) {
	t.Parallel()
	users := make([]string, 1001)
	for i := range users {
		users[i] = fmt.Sprintf("%q", fmt.Sprintf("u%d", i))
	}
	cases := []struct {
		name, body string
		code       hookferry.ErrorCode
		mention    string // the message must name this
	}{
		{"unknown type", `{"type":"order.exploded","data":{}}`, hookferry.ErrorCodeUNKNOWNEVENTTYPE, "order.exploded"},
		{"malformed type", `{"type":"no spaces","data":{}}`, hookferry.ErrorCodeUNKNOWNEVENTTYPE, "no spaces"},
		{"empty type", `{"type":"","data":{}}`, hookferry.ErrorCodeUNKNOWNEVENTTYPE, `""`},
		{"over-long type", `{"type":"` + strings.Repeat("a", 129) + `","data":{}}`, hookferry.ErrorCodeUNKNOWNEVENTTYPE, strings.Repeat("a", 129)},
		{"ping type is not for producers", `{"type":"webhook.ping","data":{}}`, hookferry.ErrorCodeUNKNOWNEVENTTYPE, "webhook.ping"},
		{"malformed type beats the rest", `{"type":"no spaces","data":[],"x":1}`, hookferry.ErrorCodeUNKNOWNEVENTTYPE, "no spaces"},
		{"type missing", `{"data":{}}`, hookferry.ErrorCodeINVALIDREQUEST, "type"},
		{"type not a string", `{"type":7,"data":{}}`, hookferry.ErrorCodeINVALIDREQUEST, "type"},
		{"data missing", `{"type":"order.created"}`, hookferry.ErrorCodeINVALIDREQUEST, "data"},
		{"data an array", `{"type":"order.created","data":[1,2]}`, hookferry.ErrorCodeINVALIDREQUEST, "data"},
		{"data a string", `{"type":"order.created","data":"x"}`, hookferry.ErrorCodeINVALIDREQUEST, "data"},
		{"data a number", `{"type":"order.created","data":42}`, hookferry.ErrorCodeINVALIDREQUEST, "data"},
		{"data null", `{"type":"order.created","data":null}`, hookferry.ErrorCodeINVALIDREQUEST, "data"},
		{"extra field", `{"type":"order.created","data":{},"colour":"red"}`, hookferry.ErrorCodeINVALIDREQUEST, "colour"},
		{"extra field named url", `{"type":"order.created","data":{},"url":"http://example.com"}`, hookferry.ErrorCodeINVALIDREQUEST, "url"},
		{"extra field named subscription", `{"type":"order.created","data":{},"subscription":{"event_types":[]}}`, hookferry.ErrorCodeINVALIDREQUEST, "subscription"},
		{"empty audience", `{"type":"order.created","data":{},"audience":{"user_ids":[]}}`, hookferry.ErrorCodeINVALIDREQUEST, "user_ids"},
		{"audience without user_ids", `{"type":"order.created","data":{},"audience":{}}`, hookferry.ErrorCodeINVALIDREQUEST, "user_ids"},
		{"audience not an object", `{"type":"order.created","data":{},"audience":["alice"]}`, hookferry.ErrorCodeINVALIDREQUEST, "audience"},
		{"audience extra field", `{"type":"order.created","data":{},"audience":{"user_ids":["alice"],"roles":["admin"]}}`, hookferry.ErrorCodeINVALIDREQUEST, "roles"},
		{"audience duplicate user", `{"type":"order.created","data":{},"audience":{"user_ids":["alice","alice"]}}`, hookferry.ErrorCodeINVALIDREQUEST, "user_ids"},
		{"audience empty user id", `{"type":"order.created","data":{},"audience":{"user_ids":[""]}}`, hookferry.ErrorCodeINVALIDREQUEST, "user_ids"},
		{"audience too large", `{"type":"order.created","data":{},"audience":{"user_ids":[` + strings.Join(users, ",") + `]}}`, hookferry.ErrorCodeINVALIDREQUEST, "user_ids"},
		{"empty producer id", `{"type":"order.created","data":{},"id":""}`, hookferry.ErrorCodeINVALIDREQUEST, "id"},
		{"over-long producer id", `{"type":"order.created","data":{},"id":"` + strings.Repeat("k", 256) + `"}`, hookferry.ErrorCodeINVALIDREQUEST, "id"},
		{"producer id not a string", `{"type":"order.created","data":{},"id":7}`, hookferry.ErrorCodeINVALIDREQUEST, "id"},
		{"malformed JSON", `{"type":"order.created","data":{`, hookferry.ErrorCodeINVALIDREQUEST, "body"},
		{"not an object", `["order.created"]`, hookferry.ErrorCodeINVALIDREQUEST, "body"},
		{"empty body", ``, hookferry.ErrorCodeINVALIDREQUEST, "body"},
	}
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		w := e.register(e.alice, "https://example.com/h", "order.created")
		pub := e.publisher("acme")
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				res, err := pub.PublishEventWithBodyWithResponse(ctx, "application/json", strings.NewReader(tc.body))
				require.NoError(t, err)
				msg := requireError(t, res, res.Body, http.StatusBadRequest, tc.code)
				require.Contains(t, msg, tc.mention)
			})
		}
		t.Run("wrong content type", func(t *testing.T) {
			res, err := pub.PublishEventWithBodyWithResponse(ctx, "text/plain", strings.NewReader(`{"type":"order.created","data":{}}`))
			require.NoError(t, err)
			requireError(t, res, res.Body, http.StatusBadRequest, hookferry.ErrorCodeINVALIDREQUEST)
		})
		require.Empty(t, e.deliveries(e.alice, w.Id), "a rejected event queued a delivery")
		require.Zero(t, e.getWebhook(e.alice, w.Id).BufferedEvents)
	})
}

// TestPublishEventUnknownTypeBeatsOtherErrors: the most specific code wins
// whichever layer notices first (DESIGN.md), as "url beats the rest" does for
// registerWebhook and as a malformed type does here.
func TestPublishEventUnknownTypeBeatsOtherErrors(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		pub := e.publisher("acme")
		for _, body := range []string{
			`{"type":"order.exploded","data":[]}`,
			`{"type":"order.exploded","data":{},"x":1}`,
			`{"type":"order.exploded"}`,
		} {
			res, err := pub.PublishEventWithBodyWithResponse(ctx, "application/json", strings.NewReader(body))
			require.NoError(t, err)
			msg := requireError(t, res, res.Body, http.StatusBadRequest, hookferry.ErrorCodeUNKNOWNEVENTTYPE)
			require.Contains(t, msg, "order.exploded")
		}
	})
}

func TestPublishEventBodyTooLarge(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		w := e.register(e.alice, "https://example.com/h", "order.created")
		pub := e.publisher("acme")
		// A body of exactly the limit is accepted; one byte more is not.
		body := func(size int) string {
			const head, tail = `{"type":"order.created","data":{"blob":"`, `"}}`
			return head + strings.Repeat("a", size-len(head)-len(tail)) + tail
		}
		limit := server.DefaultMaxBodyBytes
		require.Equal(t, 256<<10, limit)

		res, err := pub.PublishEventWithBodyWithResponse(ctx, "application/json", strings.NewReader(body(limit)))
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, res.StatusCode(), "%.300s", res.Body)
		require.EqualValues(t, 1, res.JSON202.Deliveries)

		res, err = pub.PublishEventWithBodyWithResponse(ctx, "application/json", strings.NewReader(body(limit+1)))
		require.NoError(t, err)
		requireError(t, res, res.Body, http.StatusRequestEntityTooLarge, hookferry.ErrorCodePAYLOADTOOLARGE)

		// Without a Content-Length the limit holds while reading.
		res, err = pub.PublishEventWithBodyWithResponse(ctx, "application/json", struct{ io.Reader }{strings.NewReader(body(limit + 1))})
		require.NoError(t, err)
		requireError(t, res, res.Body, http.StatusRequestEntityTooLarge, hookferry.ErrorCodePAYLOADTOOLARGE)
		res, err = pub.PublishEventWithBodyWithResponse(ctx, "application/json", struct{ io.Reader }{strings.NewReader(body(4 * limit))})
		require.NoError(t, err)
		requireError(t, res, res.Body, http.StatusRequestEntityTooLarge, hookferry.ErrorCodePAYLOADTOOLARGE)

		require.Len(t, e.deliveries(e.alice, w.Id), 1, "only the accepted event was queued")
	})
}

func TestPublishEventIdempotent(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		bob := e.client(e.token("acme", "bob", auth.PermissionWebhookManagement))
		a := e.register(e.alice, "https://example.com/a", "order.created")
		b := e.register(bob, "https://example.com/b", "order.created")
		pub := e.publisher("acme")
		body := event("order.created", `{"order_id":"1042"}`)
		body.Id = ptr("order-1042-created")

		first := e.publish(pub, body)
		require.EqualValues(t, 2, first.Deliveries)
		again := e.publish(pub, body)
		require.Equal(t, first, again, "the same producer id answers the original event")

		// Even with another type, data or audience, the id names the original.
		other := event("payment.failed", `{"x":1}`)
		other.Id = body.Id
		other.Audience = &hookferry.Audience{UserIds: []string{"bob"}}
		require.Equal(t, first, e.publish(pub, other))

		// A webhook registered since does not get the original either.
		late := e.register(e.alice, "https://example.com/late", "order.created")
		require.Equal(t, first, e.publish(pub, body))

		require.Equal(t, []string{first.Id}, eventIDs(e.deliveries(e.alice, a.Id)), "a repeat queued a delivery")
		require.Equal(t, []string{first.Id}, eventIDs(e.deliveries(bob, b.Id)))
		require.Empty(t, e.deliveries(e.alice, late.Id))
		require.EqualValues(t, 1, e.getWebhook(e.alice, a.Id).BufferedEvents)

		// Without an id, two publishes are two events.
		x := e.publish(pub, event("order.created", `{}`))
		y := e.publish(pub, event("order.created", `{}`))
		require.NotEqual(t, x.Id, y.Id)

		// A producer id is unique per tenant: another tenant's is another event.
		c := e.client(e.token("globex", "carol", auth.PermissionWebhookManagement))
		cw := e.register(c, "https://example.com/c", "order.created")
		theirs := e.publish(e.publisher("globex"), body)
		require.NotEqual(t, first.Id, theirs.Id)
		require.EqualValues(t, 1, theirs.Deliveries)
		require.Equal(t, []string{theirs.Id}, eventIDs(e.deliveries(c, cw.Id)))
		require.Len(t, e.deliveries(e.alice, a.Id), 3, "first, x and y")
	})
}

func TestPublishEventConcurrentSameProducerID(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		w := e.register(e.alice, "https://example.com/a", "order.created")
		e.register(e.alice, "https://example.com/b", "order.created")
		pub := e.publisher("acme")
		body := event("order.created", `{"n":1}`)
		body.Id = ptr("same-every-time")

		const n = 50
		answers := make([]hookferry.PublishedEvent, n)
		errs := make([]string, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				res, err := pub.PublishEventWithResponse(ctx, body)
				switch {
				case err != nil:
					errs[i] = err.Error()
				case res.StatusCode() != http.StatusAccepted:
					errs[i] = fmt.Sprintf("%d %s", res.StatusCode(), res.Body)
				default:
					answers[i] = *res.JSON202
				}
			})
		}
		close(start)
		wg.Wait()
		for i := range n {
			require.Empty(t, errs[i], "publish %d", i)
			require.Equal(t, answers[0], answers[i], "publish %d answered another event", i)
		}
		require.EqualValues(t, 2, answers[0].Deliveries)
		require.Equal(t, []string{answers[0].Id}, eventIDs(e.deliveries(e.alice, w.Id)), "exactly one event was stored")
		require.EqualValues(t, 1, e.getWebhook(e.alice, w.Id).BufferedEvents)
	})
}

func TestEventsAndDeliveriesPermissions(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		w := e.register(e.alice, "https://example.com/h", "order.created")
		pub := e.publisher("acme")
		first := e.publish(pub, event("order.created", `{}`))
		require.EqualValues(t, 1, first.Deliveries)
		dlv := e.deliveries(e.alice, w.Id)[0].Id
		body := event("order.created", `{}`)

		for name, c := range map[string]*hookferry.ClientWithResponses{"no token": e.client(""), "unknown token": e.client("hf_" + strings.Repeat("x", 43))} {
			t.Run(name, func(t *testing.T) {
				res, err := c.PublishEventWithResponse(ctx, body)
				require.NoError(t, err)
				requireError(t, res, res.Body, http.StatusUnauthorized, hookferry.ErrorCodeUNAUTHENTICATED)
				require.NotEmpty(t, res.HTTPResponse.Header.Get("WWW-Authenticate"))
				list, err := c.ListDeliveriesWithResponse(ctx, w.Id, nil)
				require.NoError(t, err)
				requireError(t, list, list.Body, http.StatusUnauthorized, hookferry.ErrorCodeUNAUTHENTICATED)
				re, err := c.RedeliverWithResponse(ctx, w.Id, dlv)
				require.NoError(t, err)
				requireError(t, re, re.Body, http.StatusUnauthorized, hookferry.ErrorCodeUNAUTHENTICATED)
				ping, err := c.PingWebhookWithResponse(ctx, w.Id)
				require.NoError(t, err)
				requireError(t, ping, ping.Body, http.StatusUnauthorized, hookferry.ErrorCodeUNAUTHENTICATED)
			})
		}
		t.Run("management token cannot publish", func(t *testing.T) {
			res, err := e.alice.PublishEventWithResponse(ctx, body)
			require.NoError(t, err)
			msg := requireError(t, res, res.Body, http.StatusForbidden, hookferry.ErrorCodePERMISSIONDENIED)
			require.Contains(t, msg, "EVENTS_PUBLISH")
			// Permission is judged before the body: a bad body is still 403.
			res, err = e.alice.PublishEventWithBodyWithResponse(ctx, "application/json", strings.NewReader(`{"type":"nope"}`))
			require.NoError(t, err)
			requireError(t, res, res.Body, http.StatusForbidden, hookferry.ErrorCodePERMISSIONDENIED)
		})
		t.Run("publish token cannot manage deliveries", func(t *testing.T) {
			list, err := pub.ListDeliveriesWithResponse(ctx, w.Id, nil)
			require.NoError(t, err)
			msg := requireError(t, list, list.Body, http.StatusForbidden, hookferry.ErrorCodePERMISSIONDENIED)
			require.Contains(t, msg, "WEBHOOK_MANAGEMENT")
			re, err := pub.RedeliverWithResponse(ctx, w.Id, dlv)
			require.NoError(t, err)
			requireError(t, re, re.Body, http.StatusForbidden, hookferry.ErrorCodePERMISSIONDENIED)
			ping, err := pub.PingWebhookWithResponse(ctx, w.Id)
			require.NoError(t, err)
			requireError(t, ping, ping.Body, http.StatusForbidden, hookferry.ErrorCodePERMISSIONDENIED)
		})
		t.Run("a token may hold both", func(t *testing.T) {
			both := e.client(e.token("acme", "alice", auth.PermissionWebhookManagement, auth.PermissionEventsPublish))
			ev := e.publish(both, body)
			require.EqualValues(t, 1, ev.Deliveries)
			require.Equal(t, ev.Id, e.deliveries(both, w.Id)[0].EventId)
		})
		require.Len(t, e.deliveries(e.alice, w.Id), 2, "only the permitted publishes queued deliveries")
	})
}

func TestListDeliveries(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		w := e.register(e.alice, "https://example.com/h", "order.created")
		other := e.register(e.alice, "https://example.com/other", "order.created", "payment.failed")
		pub := e.publisher("acme")
		require.Empty(t, e.deliveries(e.alice, w.Id))

		var published []string // oldest first
		var at []time.Time
		for i := range 7 {
			e.clock.Advance(time.Second)
			published = append(published, e.publish(pub, event("order.created", fmt.Sprintf(`{"n":%d}`, i))).Id)
			at = append(at, e.clock.Now())
			e.publish(pub, event("payment.failed", `{}`)) // for other only
		}
		newestFirst := slices.Clone(published)
		slices.Reverse(newestFirst)

		// Pages of 3, 3 and 1, newest first, each delivery exactly once.
		var got []hookferry.Delivery
		var sizes []int
		params := &hookferry.ListDeliveriesParams{Limit: ptr(3)}
		for page := 0; ; page++ {
			require.Less(t, page, 10, "pagination does not end")
			res, err := e.alice.ListDeliveriesWithResponse(ctx, w.Id, params)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
			got = append(got, res.JSON200.Items...)
			sizes = append(sizes, len(res.JSON200.Items))
			if res.JSON200.NextCursor == nil {
				break
			}
			require.NotEmpty(t, *res.JSON200.NextCursor)
			params.Cursor = res.JSON200.NextCursor
		}
		require.Equal(t, []int{3, 3, 1}, sizes)
		require.Equal(t, newestFirst, eventIDs(got))
		ids := map[string]bool{}
		for i, d := range got {
			require.True(t, strings.HasPrefix(d.Id, "dlv_"), d.Id)
			require.False(t, ids[d.Id], "delivery %s listed twice", d.Id)
			ids[d.Id] = true
			require.Equal(t, "order.created", d.EventType)
			require.Equal(t, hookferry.DeliveryStatusPENDING, d.Status)
			require.Zero(t, d.Attempts)
			want := at[len(at)-1-i]
			require.True(t, d.CreatedAt.Equal(want), "created_at %s, want %s", d.CreatedAt, want)
			require.NotNil(t, d.NextAttemptAt, "a pending delivery says when it is due")
			require.True(t, d.NextAttemptAt.Equal(want), "next_attempt_at %s, want %s (due at once)", d.NextAttemptAt, want)
			require.Nil(t, d.LastStatusCode)
			require.Nil(t, d.LastError)
			require.Nil(t, d.DeliveredAt)
		}

		// The raw JSON has the spec's names.
		raw, err := e.alice.ListDeliveriesWithResponse(ctx, w.Id, &hookferry.ListDeliveriesParams{Limit: ptr(1)})
		require.NoError(t, err)
		var doc struct {
			Items      []map[string]any `json:"items"`
			NextCursor *string          `json:"next_cursor"`
		}
		require.NoError(t, json.Unmarshal(raw.Body, &doc))
		require.Len(t, doc.Items, 1)
		for _, k := range []string{"id", "event_id", "event_type", "status", "attempts", "next_attempt_at", "created_at"} {
			require.Contains(t, doc.Items[0], k)
		}
		require.NotNil(t, doc.NextCursor)

		// The default page holds them all; a limit of exactly the count has no next page.
		for _, p := range []*hookferry.ListDeliveriesParams{nil, {Limit: ptr(7)}, {Limit: ptr(100)}} {
			res, err := e.alice.ListDeliveriesWithResponse(ctx, w.Id, p)
			require.NoError(t, err)
			require.Equal(t, newestFirst, eventIDs(res.JSON200.Items))
			require.Nil(t, res.JSON200.NextCursor, "%s", res.Body)
		}
		// The other webhook has its own log.
		require.Len(t, e.deliveries(e.alice, other.Id), 14)

		// Filtering by status.
		res, err := e.alice.ListDeliveriesWithResponse(ctx, w.Id, &hookferry.ListDeliveriesParams{Status: ptr(hookferry.DeliveryStatusPENDING)})
		require.NoError(t, err)
		require.Len(t, res.JSON200.Items, 7)
		for _, s := range []hookferry.DeliveryStatus{hookferry.DeliveryStatusDELIVERED, hookferry.DeliveryStatusFAILED} {
			res, err := e.alice.ListDeliveriesWithResponse(ctx, w.Id, &hookferry.ListDeliveriesParams{Status: ptr(s)})
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, res.StatusCode())
			require.Empty(t, res.JSON200.Items, "%s", s)
			require.Nil(t, res.JSON200.NextCursor)
		}

		t.Run("bad parameters", func(t *testing.T) {
			bad := map[string]*hookferry.ListDeliveriesParams{
				"cursor garbage":     {Cursor: ptr("abc")},
				"cursor prefix only": {Cursor: ptr("dlv_")},
				"cursor not numeric": {Cursor: ptr("dlv_abc")},
				"cursor zero":        {Cursor: ptr("dlv_0")},
				"cursor negative":    {Cursor: ptr("dlv_-5")},
				"cursor too long":    {Cursor: ptr("dlv_" + strings.Repeat("1", 61))},
				"limit 0":            {Limit: ptr(0)},
				"limit 101":          {Limit: ptr(101)},
				"limit negative":     {Limit: ptr(-1)},
				"unknown status":     {Status: ptr(hookferry.DeliveryStatus("LOST"))},
			}
			for name, p := range bad {
				t.Run(name, func(t *testing.T) {
					res, err := e.alice.ListDeliveriesWithResponse(ctx, w.Id, p)
					require.NoError(t, err)
					requireError(t, res, res.Body, http.StatusBadRequest, hookferry.ErrorCodeINVALIDREQUEST)
				})
			}
			for _, q := range []string{"limit=abc", "limit=1.5", "limit="} {
				t.Run(q, func(t *testing.T) {
					req, err := http.NewRequest(http.MethodGet, e.url+"/v1/webhooks/"+w.Id+"/deliveries?"+q, nil)
					require.NoError(t, err)
					req.Header.Set("Authorization", "Bearer "+e.token("acme", "alice", auth.PermissionWebhookManagement))
					resp, err := http.DefaultClient.Do(req)
					require.NoError(t, err)
					defer resp.Body.Close()
					body, err := io.ReadAll(resp.Body)
					require.NoError(t, err)
					requireError(t, statusOf(resp.StatusCode), body, http.StatusBadRequest, hookferry.ErrorCodeINVALIDREQUEST)
				})
			}
		})

		t.Run("not the caller's webhook", func(t *testing.T) {
			bob := e.client(e.token("acme", "bob", auth.PermissionWebhookManagement))
			globexAlice := e.client(e.token("globex", "alice", auth.PermissionWebhookManagement))
			for name, c := range map[string]*hookferry.ClientWithResponses{"another user": bob, "same user id, another tenant": globexAlice} {
				for _, p := range []*hookferry.ListDeliveriesParams{nil, {Cursor: ptr("garbage")}} {
					res, err := c.ListDeliveriesWithResponse(ctx, w.Id, p)
					require.NoError(t, err)
					requireError(t, res, res.Body, http.StatusNotFound, hookferry.ErrorCodeWEBHOOKNOTFOUND)
					require.NotContains(t, string(res.Body), published[0], name)
				}
			}
			for _, id := range []string{"wh_nope", "x", strings.Repeat("w", 200)} {
				res, err := e.alice.ListDeliveriesWithResponse(ctx, id, nil)
				require.NoError(t, err)
				requireError(t, res, res.Body, http.StatusNotFound, hookferry.ErrorCodeWEBHOOKNOTFOUND)
			}
		})
	})
}

// statusOf adapts a plain status code to requireError.
type statusOf int

func (s statusOf) StatusCode() int { return int(s) }

// TestDeliveryStatusesInTheLog drives deliveries to DELIVERED and FAILED through
// the store, as a dispatcher does, and reads them back through the API.
func TestDeliveryStatusesInTheLog(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		w := e.register(e.alice, "https://example.com/h", "order.created")
		pub := e.publisher("acme")
		var published []string
		for i := range 4 {
			published = append(published, e.publish(pub, event("order.created", fmt.Sprintf(`{"n":%d}`, i))).Id)
		}
		// Claim the two oldest; the first is delivered, the second out of retries.
		claims, err := e.store.Claim(ctx, store.ClaimRequest{Limit: 2, Lease: time.Minute})
		require.NoError(t, err)
		require.Len(t, claims, 2)
		require.Equal(t, published[:2], []string{claims[0].EventID, claims[1].EventID})
		e.clock.Advance(3 * time.Second)
		when := e.clock.Now()
		_, err = e.store.Record(ctx, []store.Result{
			{DeliveryID: claims[0].DeliveryID, ClaimSeq: claims[0].ClaimSeq, WebhookID: w.Id, Status: store.StatusDelivered,
				Attempted: true, AttemptedAt: when, StatusCode: 204, Duration: time.Millisecond},
			{DeliveryID: claims[1].DeliveryID, ClaimSeq: claims[1].ClaimSeq, WebhookID: w.Id, Status: store.StatusFailed,
				Attempted: true, AttemptedAt: when, StatusCode: 503, Error: "HTTP 503 Service Unavailable", Duration: time.Millisecond},
		}, 0)
		require.NoError(t, err)

		byStatus := func(s hookferry.DeliveryStatus) []hookferry.Delivery {
			res, err := e.alice.ListDeliveriesWithResponse(ctx, w.Id, &hookferry.ListDeliveriesParams{Status: &s})
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
			return res.JSON200.Items
		}
		delivered := byStatus(hookferry.DeliveryStatusDELIVERED)
		require.Equal(t, []string{published[0]}, eventIDs(delivered))
		d := delivered[0]
		require.Equal(t, 1, d.Attempts)
		require.Equal(t, ptr(204), d.LastStatusCode)
		require.Nil(t, d.LastError)
		require.NotNil(t, d.DeliveredAt)
		require.True(t, d.DeliveredAt.Equal(when), "delivered_at %s", d.DeliveredAt)
		require.Nil(t, d.NextAttemptAt, "next_attempt_at only while PENDING")

		failed := byStatus(hookferry.DeliveryStatusFAILED)
		require.Equal(t, []string{published[1]}, eventIDs(failed))
		f := failed[0]
		require.Equal(t, 1, f.Attempts)
		require.Equal(t, ptr(503), f.LastStatusCode)
		require.NotNil(t, f.LastError)
		require.Contains(t, *f.LastError, "503")
		require.Nil(t, f.DeliveredAt)
		require.Nil(t, f.NextAttemptAt)

		require.Equal(t, []string{published[3], published[2]}, eventIDs(byStatus(hookferry.DeliveryStatusPENDING)))
		require.Equal(t, []string{published[3], published[2], published[1], published[0]}, eventIDs(e.deliveries(e.alice, w.Id)))
		require.EqualValues(t, 2, e.getWebhook(e.alice, w.Id).BufferedEvents, "only pending deliveries are buffered")

		// Filter and pagination together.
		res, err := e.alice.ListDeliveriesWithResponse(ctx, w.Id, &hookferry.ListDeliveriesParams{Status: ptr(hookferry.DeliveryStatusPENDING), Limit: ptr(1)})
		require.NoError(t, err)
		require.Equal(t, []string{published[3]}, eventIDs(res.JSON200.Items))
		require.NotNil(t, res.JSON200.NextCursor)
		res, err = e.alice.ListDeliveriesWithResponse(ctx, w.Id, &hookferry.ListDeliveriesParams{Status: ptr(hookferry.DeliveryStatusPENDING), Limit: ptr(1), Cursor: res.JSON200.NextCursor})
		require.NoError(t, err)
		require.Equal(t, []string{published[2]}, eventIDs(res.JSON200.Items))
		if res.JSON200.NextCursor != nil {
			res, err = e.alice.ListDeliveriesWithResponse(ctx, w.Id, &hookferry.ListDeliveriesParams{Status: ptr(hookferry.DeliveryStatusPENDING), Limit: ptr(1), Cursor: res.JSON200.NextCursor})
			require.NoError(t, err)
			require.Empty(t, res.JSON200.Items, "past the last pending delivery")
			require.Nil(t, res.JSON200.NextCursor)
		}

		// Redelivering the failed one queues it again, due now, its history kept.
		e.clock.Advance(time.Minute)
		re, err := e.alice.RedeliverWithResponse(ctx, w.Id, f.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, re.StatusCode(), "%s", re.Body)
		require.Equal(t, f.Id, re.JSON202.Id)
		require.Equal(t, hookferry.DeliveryStatusPENDING, re.JSON202.Status)
		require.NotNil(t, re.JSON202.NextAttemptAt)
		require.True(t, re.JSON202.NextAttemptAt.Equal(e.clock.Now()), "next_attempt_at %s", re.JSON202.NextAttemptAt)
		require.Equal(t, 1, re.JSON202.Attempts)
		require.Empty(t, byStatus(hookferry.DeliveryStatusFAILED))
		require.Equal(t, []string{published[3], published[2], published[1]}, eventIDs(byStatus(hookferry.DeliveryStatusPENDING)))
		require.EqualValues(t, 3, e.getWebhook(e.alice, w.Id).BufferedEvents)

		// And a delivered one too.
		re, err = e.alice.RedeliverWithResponse(ctx, w.Id, d.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, re.StatusCode(), "%s", re.Body)
		require.Equal(t, hookferry.DeliveryStatusPENDING, re.JSON202.Status)
		require.EqualValues(t, 4, e.getWebhook(e.alice, w.Id).BufferedEvents)
		require.Len(t, e.deliveries(e.alice, w.Id), 4, "redelivery adds no delivery")
	})
}

func TestBufferedEvents(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		orders := e.register(e.alice, "https://example.com/orders", "order.created")
		payments := e.register(e.alice, "https://example.com/payments", "payment.failed")
		idle := e.register(e.alice, "https://example.com/idle", "invoice.paid")
		pub := e.publisher("acme")
		for range 3 {
			e.publish(pub, event("order.created", `{}`))
		}
		e.publish(pub, event("payment.failed", `{}`))

		buffered := func() map[string]int64 {
			res, err := e.alice.ListWebhooksWithResponse(ctx, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, res.StatusCode())
			out := map[string]int64{}
			for _, w := range res.JSON200.Items {
				out[w.Id] = w.BufferedEvents
				require.Equal(t, w.BufferedEvents, e.getWebhook(e.alice, w.Id).BufferedEvents, "getWebhook and listWebhooks agree")
			}
			return out
		}
		require.Equal(t, map[string]int64{orders.Id: 3, payments.Id: 1, idle.Id: 0}, buffered())

		// A paused webhook keeps buffering; so does a ping.
		res, err := e.alice.PauseWebhookWithResponse(ctx, orders.Id)
		require.NoError(t, err)
		require.EqualValues(t, 3, res.JSON200.BufferedEvents)
		e.publish(pub, event("order.created", `{}`))
		ping, err := e.alice.PingWebhookWithResponse(ctx, idle.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, ping.StatusCode())
		require.Equal(t, map[string]int64{orders.Id: 4, payments.Id: 1, idle.Id: 1}, buffered())

		// Unpause and delete answer the count too.
		un, err := e.alice.UnpauseWebhookWithResponse(ctx, orders.Id, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, un.StatusCode(), "%s", un.Body)
		require.EqualValues(t, 4, un.JSON200.BufferedEvents)
		del, err := e.alice.DeleteWebhookWithResponse(ctx, payments.Id)
		require.NoError(t, err)
		require.EqualValues(t, 1, del.JSON200.BufferedEvents)
		require.Equal(t, map[string]int64{orders.Id: 4, idle.Id: 1}, buffered())

		// Another user's webhooks are not counted in, nor affect, alice's.
		bob := e.client(e.token("acme", "bob", auth.PermissionWebhookManagement))
		bobs := e.register(bob, "https://example.com/orders", "order.created")
		e.publish(pub, event("order.created", `{}`))
		require.Equal(t, map[string]int64{orders.Id: 5, idle.Id: 1}, buffered())
		require.EqualValues(t, 1, e.getWebhook(bob, bobs.Id).BufferedEvents)
	})
}

func TestRedeliver(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		w := e.register(e.alice, "https://example.com/a", "order.created")
		sibling := e.register(e.alice, "https://example.com/b", "payment.failed")
		bob := e.client(e.token("acme", "bob", auth.PermissionWebhookManagement))
		bobs := e.register(bob, "https://example.com/a", "order.created")
		pub := e.publisher("acme")
		ev := e.publish(pub, event("order.created", `{}`))
		require.EqualValues(t, 2, ev.Deliveries)
		e.publish(pub, event("payment.failed", `{}`))
		d := e.deliveries(e.alice, w.Id)[0]
		siblings := e.deliveries(e.alice, sibling.Id)[0]
		bobsDelivery := e.deliveries(bob, bobs.Id)[0]

		e.clock.Advance(time.Hour)
		res, err := e.alice.RedeliverWithResponse(ctx, w.Id, d.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, res.StatusCode(), "%s", res.Body)
		got := res.JSON202
		require.Equal(t, d.Id, got.Id)
		require.Equal(t, ev.Id, got.EventId)
		require.Equal(t, "order.created", got.EventType)
		require.Equal(t, hookferry.DeliveryStatusPENDING, got.Status)
		require.Zero(t, got.Attempts)
		require.True(t, got.CreatedAt.Equal(d.CreatedAt))
		require.NotNil(t, got.NextAttemptAt)
		require.True(t, got.NextAttemptAt.Equal(e.clock.Now()), "due now: %s", got.NextAttemptAt)
		require.Len(t, e.deliveries(e.alice, w.Id), 1, "redelivery re-queues; it adds no delivery")
		require.Equal(t, *got, e.deliveries(e.alice, w.Id)[0], "the log shows what redeliver answered")

		notFound := func(c *hookferry.ClientWithResponses, webhookID, deliveryID string, code hookferry.ErrorCode) {
			t.Helper()
			res, err := c.RedeliverWithResponse(ctx, webhookID, deliveryID)
			require.NoError(t, err)
			requireError(t, res, res.Body, http.StatusNotFound, code)
		}
		for _, id := range []string{"dlv_999999", "x", "dlv_0", "dlv_abc", "dlv_", "dlv_-1", "DLV_1", strings.TrimPrefix(d.Id, "dlv_"), d.Id + "0", "dlv_99999999999999999999999"} {
			t.Run("delivery "+id, func(t *testing.T) {
				notFound(e.alice, w.Id, id, hookferry.ErrorCodeDELIVERYNOTFOUND)
			})
		}
		// A delivery of another webhook, the caller's own or another user's.
		notFound(e.alice, w.Id, siblings.Id, hookferry.ErrorCodeDELIVERYNOTFOUND)
		notFound(e.alice, w.Id, bobsDelivery.Id, hookferry.ErrorCodeDELIVERYNOTFOUND)
		// A webhook that is not the caller's, whatever the delivery.
		notFound(e.alice, "wh_nope", d.Id, hookferry.ErrorCodeWEBHOOKNOTFOUND)
		notFound(e.alice, "wh_nope", "x", hookferry.ErrorCodeWEBHOOKNOTFOUND)
		notFound(e.alice, bobs.Id, bobsDelivery.Id, hookferry.ErrorCodeWEBHOOKNOTFOUND)
		notFound(bob, w.Id, d.Id, hookferry.ErrorCodeWEBHOOKNOTFOUND)
		notFound(e.client(e.token("globex", "alice", auth.PermissionWebhookManagement)), w.Id, d.Id, hookferry.ErrorCodeWEBHOOKNOTFOUND)

		// None of the refusals touched anything.
		bd := e.deliveries(bob, bobs.Id)[0]
		require.Equal(t, bobsDelivery, bd)
		require.Equal(t, siblings, e.deliveries(e.alice, sibling.Id)[0])
	})
}

func TestPingWebhook(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		w := e.register(e.alice, "https://example.com/a", "order.created")
		other := e.register(e.alice, "https://example.com/b", "order.created")
		bob := e.client(e.token("acme", "bob", auth.PermissionWebhookManagement))
		bobs := e.register(bob, "https://example.com/a", "order.created")
		pub := e.publisher("acme")
		first := e.publish(pub, event("order.created", `{}`))

		e.clock.Advance(time.Second)
		res, err := e.alice.PingWebhookWithResponse(ctx, w.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, res.StatusCode(), "%s", res.Body)
		ping := *res.JSON202
		require.True(t, strings.HasPrefix(ping.Id, "evt_"), ping.Id)
		require.EqualValues(t, 1, ping.Deliveries)

		log := e.deliveries(e.alice, w.Id)
		require.Equal(t, []string{ping.Id, first.Id}, eventIDs(log), "the ping is the newest delivery")
		require.Equal(t, "webhook.ping", log[0].EventType)
		require.Equal(t, hookferry.DeliveryStatusPENDING, log[0].Status)
		require.True(t, log[0].CreatedAt.Equal(e.clock.Now()))
		require.Equal(t, []string{first.Id}, eventIDs(e.deliveries(e.alice, other.Id)), "to that webhook alone")
		require.Equal(t, []string{first.Id}, eventIDs(e.deliveries(bob, bobs.Id)))

		// Each ping is an event of its own; a paused webhook buffers it.
		_, err = e.alice.PauseWebhookWithResponse(ctx, w.Id)
		require.NoError(t, err)
		res, err = e.alice.PingWebhookWithResponse(ctx, w.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, res.StatusCode(), "%s", res.Body)
		require.EqualValues(t, 1, res.JSON202.Deliveries)
		require.NotEqual(t, ping.Id, res.JSON202.Id)
		require.EqualValues(t, 3, e.getWebhook(e.alice, w.Id).BufferedEvents)

		// A producer cannot publish webhook.ping to everybody.
		bad, err := pub.PublishEventWithResponse(ctx, event("webhook.ping", `{}`))
		require.NoError(t, err)
		requireError(t, bad, bad.Body, http.StatusBadRequest, hookferry.ErrorCodeUNKNOWNEVENTTYPE)

		for name, c := range map[string]struct {
			client *hookferry.ClientWithResponses
			id     string
		}{
			"another user's webhook": {e.alice, bobs.Id},
			"by another user":        {bob, w.Id},
			"another tenant":         {e.client(e.token("globex", "alice", auth.PermissionWebhookManagement)), w.Id},
			"unknown webhook":        {e.alice, "wh_nope"},
			"malformed webhook id":   {e.alice, "x"},
			"deleted webhook":        {e.alice, e.deleted(e.alice)},
			"an event id":            {e.alice, first.Id},
		} {
			t.Run(name, func(t *testing.T) {
				res, err := c.client.PingWebhookWithResponse(ctx, c.id)
				require.NoError(t, err)
				requireError(t, res, res.Body, http.StatusNotFound, hookferry.ErrorCodeWEBHOOKNOTFOUND)
			})
		}
		require.Equal(t, []string{first.Id}, eventIDs(e.deliveries(bob, bobs.Id)), "refused pings queued nothing")
		require.Len(t, e.deliveries(e.alice, other.Id), 1)
	})
}

// deleted registers a webhook of c and deletes it; it returns its id.
func (e *env) deleted(c *hookferry.ClientWithResponses) string {
	e.t.Helper()
	w := e.register(c, fmt.Sprintf("https://example.com/deleted/%d", time.Now().UnixNano()))
	res, err := c.DeleteWebhookWithResponse(ctx, w.Id)
	require.NoError(e.t, err)
	require.Equal(e.t, http.StatusOK, res.StatusCode())
	return w.Id
}

func TestDeleteWebhookRemovesDeliveries(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		gone := e.register(e.alice, "https://example.com/gone", "order.created")
		kept := e.register(e.alice, "https://example.com/kept", "order.created")
		pub := e.publisher("acme")
		body := event("order.created", `{}`)
		body.Id = ptr("k1")
		first := e.publish(pub, body)
		require.EqualValues(t, 2, first.Deliveries)
		second := e.publish(pub, event("order.created", `{}`))
		require.EqualValues(t, 2, second.Deliveries)
		_, err := e.alice.PingWebhookWithResponse(ctx, gone.Id)
		require.NoError(t, err)
		dlv := e.deliveries(e.alice, gone.Id)[0].Id
		depth, err := e.store.QueueDepth(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 5, depth)

		del, err := e.alice.DeleteWebhookWithResponse(ctx, gone.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, del.StatusCode())
		require.EqualValues(t, 3, del.JSON200.BufferedEvents, "the webhook as it was")

		res, err := e.alice.ListDeliveriesWithResponse(ctx, gone.Id, nil)
		require.NoError(t, err)
		requireError(t, res, res.Body, http.StatusNotFound, hookferry.ErrorCodeWEBHOOKNOTFOUND)
		re, err := e.alice.RedeliverWithResponse(ctx, gone.Id, dlv)
		require.NoError(t, err)
		requireError(t, re, re.Body, http.StatusNotFound, hookferry.ErrorCodeWEBHOOKNOTFOUND)
		re, err = e.alice.RedeliverWithResponse(ctx, kept.Id, dlv)
		require.NoError(t, err)
		requireError(t, re, re.Body, http.StatusNotFound, hookferry.ErrorCodeDELIVERYNOTFOUND)

		// Its queued deliveries are gone from the database, the other's stay.
		depth, err = e.store.QueueDepth(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 2, depth, "the deleted webhook's deliveries are still queued")
		require.Equal(t, []string{second.Id, first.Id}, eventIDs(e.deliveries(e.alice, kept.Id)))

		// Publishing again reaches one webhook fewer.
		third := e.publish(pub, event("order.created", `{}`))
		require.EqualValues(t, 1, third.Deliveries)
		// The same URL registered again is a new webhook with an empty log.
		again := e.register(e.alice, "https://example.com/gone", "order.created")
		require.NotEqual(t, gone.Id, again.Id)
		require.Empty(t, e.deliveries(e.alice, again.Id))
		require.Zero(t, e.getWebhook(e.alice, again.Id).BufferedEvents)
		// Repeating the producer id still answers the original event, and
		// queues nothing for the new webhook.
		repeat := e.publish(pub, body)
		require.Equal(t, first.Id, repeat.Id)
		require.Empty(t, e.deliveries(e.alice, again.Id))
	})
}

// receiver is an HTTPS endpoint that keeps every request it gets.
type receiver struct {
	srv *httptest.Server
	got chan receivedRequest
}

type receivedRequest struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T) *receiver {
	rcv := &receiver{got: make(chan receivedRequest, 100)}
	rcv.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		rcv.got <- receivedRequest{header: r.Header.Clone(), body: body}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rcv.srv.Close)
	return rcv
}

// next waits for the next request.
func (rcv *receiver) next(t *testing.T) receivedRequest {
	t.Helper()
	select {
	case r := <-rcv.got:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery arrived")
		return receivedRequest{}
	}
}

// runDispatcher delivers e's deliveries, trusting rcv's certificate, until the
// test ends; cfg, if given, configures the dispatcher.
func (e *env) runDispatcher(rcv *receiver, cfg ...delivery.Config) {
	e.t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(rcv.srv.Certificate())
	sender, err := delivery.NewSender(delivery.SenderConfig{RootCAs: roots, AllowPrivate: true})
	require.NoError(e.t, err)
	d := delivery.New(e.store, sender, append(cfg, delivery.Config{})[0])
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	e.t.Cleanup(func() {
		stop()
		require.NoError(e.t, <-done)
		sender.Close()
	})
}

func TestDeliveryCarriesDataExactlyAndVerifies(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be, func(c *server.Config) { c.AllowPrivateTargets = true })
		rcv := newReceiver(t)
		w := e.register(e.alice, rcv.srv.URL+"/hooks", "order.created")
		require.NotNil(t, w.Authentication)
		secret := w.Authentication.Secret
		e.runDispatcher(rcv)
		pub := e.publisher("acme")

		data := `{"amount":12345678901234567890123,"negative":-9007199254740993,"precise":0.10000000000000000000000000001,` +
			`"exp":1e400,"nested":{"list":[1,2.50,{"deep":98765432109876543210}]},"text":"caf\u00e9 ✓","empty":{}}`
		body := event("order.created", data)
		body.Id = ptr("big-numbers")
		ev := e.publish(pub, body)
		require.EqualValues(t, 1, ev.Deliveries)

		got := rcv.next(t)
		verifier, err := standardwebhooks.NewWebhook(secret)
		require.NoError(t, err)
		require.NoError(t, verifier.Verify(got.body, got.header), "the reference verifier rejects the delivery: %v", got.header)
		require.Equal(t, ev.Id, got.header.Get("webhook-id"))
		require.Equal(t, "application/json", got.header.Get("content-type"))
		require.True(t, strings.HasPrefix(got.header.Get("user-agent"), "hookferry"), got.header.Get("user-agent"))

		var envelope struct {
			ID        string          `json:"id"`
			Type      string          `json:"type"`
			Timestamp time.Time       `json:"timestamp"`
			Data      json.RawMessage `json:"data"`
		}
		dec := json.NewDecoder(bytes.NewReader(got.body))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(&envelope), "%s", got.body)
		require.Equal(t, ev.Id, envelope.ID)
		require.Equal(t, "order.created", envelope.Type)
		require.False(t, envelope.Timestamp.IsZero())
		require.Equal(t, data, string(envelope.Data), "data must arrive byte for byte")

		// A verifier with another secret, or a tampered body, fails.
		tampered := bytes.Replace(got.body, []byte("12345678901234567890123"), []byte("12345678901234567890124"), 1)
		require.Error(t, verifier.Verify(tampered, got.header))

		// The log says delivered.
		require.Eventually(t, func() bool {
			ds := e.deliveries(e.alice, w.Id)
			return len(ds) == 1 && ds[0].Status == hookferry.DeliveryStatusDELIVERED
		}, 30*time.Second, 10*time.Millisecond)
		d := e.deliveries(e.alice, w.Id)[0]
		require.Equal(t, 1, d.Attempts)
		require.Equal(t, ptr(http.StatusNoContent), d.LastStatusCode)
		require.NotNil(t, d.DeliveredAt)
		require.Nil(t, d.NextAttemptAt)
		require.Zero(t, e.getWebhook(e.alice, w.Id).BufferedEvents)

		// A ping goes out signed too, with the webhook's id as its data.
		ping, err := e.alice.PingWebhookWithResponse(ctx, w.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, ping.StatusCode())
		got = rcv.next(t)
		require.NoError(t, verifier.Verify(got.body, got.header))
		require.Equal(t, ping.JSON202.Id, got.header.Get("webhook-id"))
		require.NoError(t, json.Unmarshal(got.body, &envelope))
		require.Equal(t, "webhook.ping", envelope.Type)
		require.JSONEq(t, fmt.Sprintf(`{"webhook_id":%q}`, w.Id), string(envelope.Data))

		// A redelivery sends the same event again, same webhook-id, same data.
		re, err := e.alice.RedeliverWithResponse(ctx, w.Id, d.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, re.StatusCode(), "%s", re.Body)
		got = rcv.next(t)
		require.NoError(t, verifier.Verify(got.body, got.header))
		require.Equal(t, ev.Id, got.header.Get("webhook-id"))
		require.NoError(t, json.Unmarshal(got.body, &envelope))
		require.Equal(t, data, string(envelope.Data))
	})
}

// TestDeliveryDataAsSent: the spec promises data "exactly as sent"; insignificant
// whitespace and characters that JSON encoders like to escape must survive too.
func TestDeliveryDataAsSent(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be, func(c *server.Config) { c.AllowPrivateTargets = true })
		rcv := newReceiver(t)
		w := e.register(e.alice, rcv.srv.URL+"/hooks", "order.created")
		e.runDispatcher(rcv)
		data := `{ "html": "<b>a & b</b>", "sep": "\u2028", "n": 1 }`
		// The raw body: the generated client's json.Marshal would re-encode data.
		res, err := e.publisher("acme").PublishEventWithBodyWithResponse(ctx, "application/json",
			strings.NewReader(`{"type": "order.created", "data": `+data+`}`))
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, res.StatusCode(), "%s", res.Body)
		got := rcv.next(t)
		verifier, err := standardwebhooks.NewWebhook(w.Authentication.Secret)
		require.NoError(t, err)
		require.NoError(t, verifier.Verify(got.body, got.header))
		var envelope struct {
			Data json.RawMessage `json:"data"`
		}
		require.NoError(t, json.Unmarshal(got.body, &envelope))
		require.JSONEq(t, data, string(envelope.Data), "the data means the same")
		require.Equal(t, data, string(envelope.Data), "the data arrives byte for byte")
	})
}
