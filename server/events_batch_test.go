package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/hookferry/hookferry/auth"
	hookferry "github.com/hookferry/hookferry/clients/go"
	"github.com/hookferry/hookferry/server"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/stretchr/testify/require"
)

// publishBatch publishes events as one batch, which must be accepted.
func (e *env) publishBatch(c *hookferry.ClientWithResponses, events ...hookferry.PublishEventRequest) []hookferry.PublishedEvent {
	e.t.Helper()
	res, err := c.PublishEventsWithResponse(ctx, hookferry.PublishEventsRequest{Events: events})
	require.NoError(e.t, err)
	require.Equal(e.t, http.StatusAccepted, res.StatusCode(), "%.500s", res.Body)
	require.Len(e.t, res.JSON202.Events, len(events))
	return res.JSON202.Events
}

// withID is ev with the producer id id.
func withID(ev hookferry.PublishEventRequest, id string) hookferry.PublishEventRequest {
	ev.Id = &id
	return ev
}

// batchError checks a refused batch: status, code, and the index and field
// named in the message and the details; it returns the message.
func batchError(t *testing.T, res *hookferry.PublishEventsResponse, status int, code hookferry.ErrorCode, index int, field string) string {
	t.Helper()
	msg := requireError(t, res, res.Body, status, code)
	var e hookferry.Error
	require.NoError(t, json.Unmarshal(res.Body, &e))
	require.NotNil(t, e.Details, "%s", res.Body)
	require.EqualValues(t, index, (*e.Details)["index"], "%s", res.Body)
	require.Equal(t, field, (*e.Details)["field"], "%s", res.Body)
	require.Contains(t, msg, fmt.Sprintf("events[%d]", index))
	return msg
}

func TestPublishEventsBatch(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		bob := e.client(e.token("acme", "bob", auth.PermissionWebhookManagement))
		orders := e.register(e.alice, "https://example.com/orders", "order.created")
		payments := e.register(e.alice, "https://example.com/payments", "payment.failed")
		bobs := e.register(bob, "https://example.com/orders", "order.created")
		pub := e.publisher("acme")

		toBob := event("order.created", `{"n":4}`)
		toBob.Audience = &hookferry.Audience{UserIds: []string{"bob"}}
		got := e.publishBatch(pub,
			withID(event("order.created", `{"n":1}`), "a"),
			event("payment.failed", `{"n":2}`),
			withID(event("payment.failed", `{"n":3}`), "a"), // the same producer id: answers the first
			toBob,
			event("invoice.paid", `{}`),
		)
		require.EqualValues(t, []int64{2, 1, 2, 1, 0}, []int64{got[0].Deliveries, got[1].Deliveries, got[2].Deliveries, got[3].Deliveries, got[4].Deliveries})
		require.Equal(t, got[0], got[2], "a repeated producer id in a batch answers its first event")
		ids := map[string]bool{}
		for _, g := range got {
			require.True(t, strings.HasPrefix(g.Id, "evt_"), g.Id)
			ids[g.Id] = true
		}
		require.Len(t, ids, 4, "four distinct events")
		// In the order sent (the log is newest first).
		require.Equal(t, []string{got[0].Id}, eventIDs(e.deliveries(e.alice, orders.Id)))
		require.Equal(t, []string{got[1].Id}, eventIDs(e.deliveries(e.alice, payments.Id)))
		require.Equal(t, []string{got[3].Id, got[0].Id}, eventIDs(e.deliveries(bob, bobs.Id)))

		// Against earlier events: an id of a single publish, and of the batch.
		single := e.publish(pub, withID(event("order.created", `{}`), "b"))
		again := e.publishBatch(pub,
			withID(event("order.created", `{}`), "b"),
			withID(event("order.created", `{}`), "c"),
			withID(event("order.created", `{}`), "a"),
			withID(event("order.created", `{}`), "c"),
		)
		require.Equal(t, single, again[0])
		require.EqualValues(t, 2, again[1].Deliveries)
		require.False(t, ids[again[1].Id])
		require.Equal(t, got[0], again[2])
		require.Equal(t, again[1], again[3])
		require.Equal(t, again[1], e.publish(pub, withID(event("order.created", `{}`), "c")), "a single publish finds a batch's producer id")
		require.Equal(t, []string{again[1].Id, single.Id, got[0].Id}, eventIDs(e.deliveries(e.alice, orders.Id)))

		// Another tenant's batch reaches its own webhooks only, and its ids are its own.
		carol := e.client(e.token("globex", "carol", auth.PermissionWebhookManagement))
		theirs := e.register(carol, "https://example.com/c", "order.created")
		other := e.publishBatch(e.publisher("globex"), withID(event("order.created", `{}`), "a"))
		require.NotEqual(t, got[0].Id, other[0].Id)
		require.EqualValues(t, 1, other[0].Deliveries)
		require.Equal(t, []string{other[0].Id}, eventIDs(e.deliveries(carol, theirs.Id)))
		require.Len(t, e.deliveries(e.alice, orders.Id), 3)
	})
}

// TestPublishEventsAllOrNothing: a batch with one bad event stores none of
// its events, names the event and the field, and leaves its producer ids free.
func TestPublishEventsAllOrNothing(t *testing.T) {
	t.Parallel()
	good := `{"type":"order.created","id":"kept-free","data":{}}`
	cases := []struct {
		name, event string
		status      int
		code        hookferry.ErrorCode
		field       string
		mention     string
	}{
		{"unknown type", `{"type":"order.exploded","data":{}}`, 400, hookferry.ErrorCodeUNKNOWNEVENTTYPE, "events[2].type", "order.exploded"},
		{"unknown type beats other errors", `{"type":"order.exploded","data":[],"x":1}`, 400, hookferry.ErrorCodeUNKNOWNEVENTTYPE, "events[2].type", "order.exploded"},
		{"data missing", `{"type":"order.created"}`, 400, hookferry.ErrorCodeINVALIDREQUEST, "events[2].data", "missing"},
		{"data an array", `{"type":"order.created","data":[1]}`, 400, hookferry.ErrorCodeINVALIDREQUEST, "events[2].data", "data"},
		{"type not a string", `{"type":7,"data":{}}`, 400, hookferry.ErrorCodeINVALIDREQUEST, "events[2].type", "type"},
		{"extra field", `{"type":"order.created","data":{},"colour":"red"}`, 400, hookferry.ErrorCodeINVALIDREQUEST, "events[2]", "colour"},
		{"empty producer id", `{"type":"order.created","data":{},"id":""}`, 400, hookferry.ErrorCodeINVALIDREQUEST, "events[2].id", "id"},
		{"empty audience", `{"type":"order.created","data":{},"audience":{"user_ids":[]}}`, 400, hookferry.ErrorCodeINVALIDREQUEST, "events[2].audience.user_ids", "user_ids"},
		{"not an object", `"order.created"`, 400, hookferry.ErrorCodeINVALIDREQUEST, "events[2]", "object"},
		{"data over the limit of one event", `{"type":"order.created","data":{"blob":"` + strings.Repeat("x", server.DefaultMaxBodyBytes) + `"}}`, 413, hookferry.ErrorCodePAYLOADTOOLARGE, "events[2].data", "262144"},
	}
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		w := e.register(e.alice, "https://example.com/h", "order.created")
		pub := e.publisher("acme")
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				// The bad event is third; a good one is after it too.
				body := `{"events":[` + good + `,{"type":"order.created","data":{"n":2}},` + tc.event + `,{"type":"order.created","data":{}}]}`
				res, err := pub.PublishEventsWithBodyWithResponse(ctx, "application/json", strings.NewReader(body))
				require.NoError(t, err)
				msg := batchError(t, res, tc.status, tc.code, 2, tc.field)
				require.Contains(t, msg, tc.mention)
			})
		}
		t.Run("two bad events: the first is named", func(t *testing.T) {
			body := `{"events":[` + good + `,{"type":"order.created","data":7},{"type":"order.created"}]}`
			res, err := pub.PublishEventsWithBodyWithResponse(ctx, "application/json", strings.NewReader(body))
			require.NoError(t, err)
			batchError(t, res, 400, hookferry.ErrorCodeINVALIDREQUEST, 1, "events[1].data")
		})
		for _, body := range []string{`{"events":[]}`, `{}`, `{"events":{}}`, `{"events":[],"x":1}`, `[]`, ``} {
			res, err := pub.PublishEventsWithBodyWithResponse(ctx, "application/json", strings.NewReader(body))
			require.NoError(t, err)
			requireError(t, res, res.Body, http.StatusBadRequest, hookferry.ErrorCodeINVALIDREQUEST)
		}
		over := make([]hookferry.PublishEventRequest, 501)
		for i := range over {
			over[i] = event("order.created", `{}`)
		}
		res, err := pub.PublishEventsWithResponse(ctx, hookferry.PublishEventsRequest{Events: over})
		require.NoError(t, err)
		msg := requireError(t, res, res.Body, http.StatusBadRequest, hookferry.ErrorCodeINVALIDREQUEST)
		require.Contains(t, msg, "500")

		require.Empty(t, e.deliveries(e.alice, w.Id), "a refused batch queued a delivery")
		kept := e.publish(pub, withID(event("order.created", `{}`), "kept-free"))
		require.EqualValues(t, 1, kept.Deliveries, "a refused batch took its producer id")

		// 500 is accepted, in order.
		full := e.publishBatch(pub, over[:500]...)
		require.EqualValues(t, 1, full[499].Deliveries)
		log := e.deliveries(e.alice, w.Id)
		require.Len(t, log, 501)
		require.Equal(t, full[0].Id, log[499].EventId)
		require.Equal(t, full[499].Id, log[0].EventId)
	})
}

func TestPublishEventsBodyLimit(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		const limit = 64 << 10
		e := setup(t, be, func(c *server.Config) { c.MaxBatchBytes = limit })
		w := e.register(e.alice, "https://example.com/h", "order.created")
		pub := e.publisher("acme")
		body := func(size int) string {
			const head, tail = `{"events":[{"type":"order.created","data":{"blob":"`, `"}}]}`
			return head + strings.Repeat("a", size-len(head)-len(tail)) + tail
		}
		res, err := pub.PublishEventsWithBodyWithResponse(ctx, "application/json", strings.NewReader(body(limit)))
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, res.StatusCode(), "%.300s", res.Body)
		res, err = pub.PublishEventsWithBodyWithResponse(ctx, "application/json", strings.NewReader(body(limit+1)))
		require.NoError(t, err)
		msg := requireError(t, res, res.Body, http.StatusRequestEntityTooLarge, hookferry.ErrorCodePAYLOADTOOLARGE)
		require.Contains(t, msg, "65536")
		require.Len(t, e.deliveries(e.alice, w.Id), 1)

		// The batch limit is the batch's alone: a single publish keeps its own.
		res2, err := pub.PublishEventWithBodyWithResponse(ctx, "application/json", strings.NewReader(`{"type":"order.created","data":{"blob":"`+strings.Repeat("a", limit)+`"}}`))
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, res2.StatusCode(), "%.300s", res2.Body)
	})
}

// TestPublishEventsConcurrentSameProducerIDs: batches racing with the same
// producer ids store each id once, and all answer the same events.
func TestPublishEventsConcurrentSameProducerIDs(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		w := e.register(e.alice, "https://example.com/a", "order.created")
		pub := e.publisher("acme")
		batch := []hookferry.PublishEventRequest{
			withID(event("order.created", `{}`), "x"),
			event("order.created", `{}`),
			withID(event("order.created", `{}`), "y"),
		}
		const n = 20
		answers := make([][]hookferry.PublishedEvent, n)
		errs := make([]string, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				res, err := pub.PublishEventsWithResponse(ctx, hookferry.PublishEventsRequest{Events: batch})
				switch {
				case err != nil:
					errs[i] = err.Error()
				case res.StatusCode() != http.StatusAccepted:
					errs[i] = fmt.Sprintf("%d %s", res.StatusCode(), res.Body)
				default:
					answers[i] = res.JSON202.Events
				}
			})
		}
		close(start)
		wg.Wait()
		for i := range n {
			require.Empty(t, errs[i], "batch %d", i)
			require.Equal(t, answers[0][0], answers[i][0], "batch %d answered another event for x", i)
			require.Equal(t, answers[0][2], answers[i][2], "batch %d answered another event for y", i)
		}
		require.Len(t, e.deliveries(e.alice, w.Id), 2+n, "x and y once, the event without an id every time")
	})
}
