package delivery_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookferry/hookferry/delivery"
	"github.com/hookferry/hookferry/metrics"
	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/hookferry/hookferry/webhook"
	"github.com/prometheus/client_golang/prometheus"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"
)

var (
	ctx   = context.Background()
	owner = webhook.Owner{TenantID: "acme", UserID: "alice"}
)

// endpoint is a real HTTPS receiver that verifies every request with the
// Standard Webhooks reference verifier and answers with respond.
type endpoint struct {
	t       *testing.T
	srv     *httptest.Server
	hook    webhook.Webhook
	respond func(n int) int // the status for the n-th request (from 1); nil means 204

	mu       sync.Mutex
	events   []string // envelope ids in arrival order
	ids      []string // webhook-id headers in arrival order
	arrivals []time.Time
}

func (e *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		e.t.Errorf("reading delivery: %v", err)
		return
	}
	verifier, err := standardwebhooks.NewWebhook(e.hook.Secret)
	if err != nil {
		e.t.Errorf("verifier: %v", err)
		return
	}
	if err := verifier.Verify(body, r.Header); err != nil {
		e.t.Errorf("signature does not verify: %v (headers %v)", err, r.Header)
	}
	var env store.Envelope
	if err := json.Unmarshal(body, &env); err != nil {
		e.t.Errorf("envelope: %v: %s", err, body)
	}
	if r.Header.Get("content-type") != "application/json" || r.Header.Get("webhook-id") != env.ID {
		e.t.Errorf("headers: %v for envelope %s", r.Header, env.ID)
	}
	e.mu.Lock()
	e.events = append(e.events, env.ID)
	e.ids = append(e.ids, r.Header.Get("webhook-id"))
	e.arrivals = append(e.arrivals, time.Now())
	n := len(e.events)
	e.mu.Unlock()
	status := http.StatusNoContent
	if e.respond != nil {
		status = e.respond(n)
	}
	w.WriteHeader(status)
}

func (e *endpoint) received() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.events...)
}

// env is a store, a dispatcher and the receivers it delivers to.
type env struct {
	t     *testing.T
	url   string
	store *store.Store
	roots *x509.CertPool
	stop  context.CancelFunc
	done  chan struct{}
}

func setup(t *testing.T, be storetest.Backend) *env {
	t.Helper()
	url := be.URL(t)
	st, err := store.Open(ctx, url, store.Options{Keys: storetest.Keys()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return &env{t: t, url: url, store: st}
}

// start runs a dispatcher until the test ends (or stop is called).
func (e *env) start(cfg delivery.Config, sc delivery.SenderConfig) {
	e.t.Helper()
	if sc.RootCAs == nil {
		sc.RootCAs = e.roots
		sc.AllowPrivate = true
	}
	sender, err := delivery.NewSender(sc)
	require.NoError(e.t, err)
	d := delivery.New(e.store, sender, cfg)
	runCtx, stop := context.WithCancel(ctx)
	e.stop, e.done = stop, make(chan struct{})
	go func() {
		defer close(e.done)
		require.NoError(e.t, d.Run(runCtx))
	}()
	e.t.Cleanup(e.shutdown)
}

func (e *env) shutdown() {
	if e.stop != nil {
		e.stop()
		<-e.done
		e.stop = nil
	}
}

// endpoint registers a webhook of owner for types that delivers to a new receiver.
func (e *env) endpoint(respond func(int) int, types ...string) *endpoint {
	e.t.Helper()
	return e.endpointOf(owner, respond, types...)
}

func (e *env) endpointOf(owner webhook.Owner, respond func(int) int, types ...string) *endpoint {
	e.t.Helper()
	ep := &endpoint{t: e.t, respond: respond}
	ep.srv = httptest.NewTLSServer(ep)
	e.t.Cleanup(ep.srv.Close)
	if e.roots == nil {
		e.roots = x509.NewCertPool()
		e.roots.AddCert(ep.srv.Certificate()) // every httptest TLS server shares it
	}
	url := ep.srv.URL + "/hooks/" + fmt.Sprint(len(types))
	w, err := webhook.New(owner, url, url+fmt.Sprintf("#%p", ep), types, time.Now(), nil)
	require.NoError(e.t, err)
	require.NoError(e.t, e.store.RegisterWebhook(ctx, w, 1000))
	ep.hook = w
	return ep
}

func (e *env) publish(typ string, n int) []string {
	e.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		p, err := e.store.Publish(ctx, store.Event{TenantID: owner.TenantID, Type: typ, Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))})
		require.NoError(e.t, err)
		ids[i] = p.EventID
	}
	return ids
}

func (e *env) deliveries(ep *endpoint) []store.Delivery {
	e.t.Helper()
	page, err := e.store.ListDeliveries(ctx, owner, ep.hook.ID, "", "", 100)
	require.NoError(e.t, err)
	return page.Items
}

// eventually polls cond; the deadline only guards against a hang.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func eachBackend(t *testing.T, body func(t *testing.T, e *env)) {
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			body(t, setup(t, be))
		})
	}
}

// attemptsByOutcome reads hookferry_delivery_attempts_total from registry.
func attemptsByOutcome(t *testing.T, registry *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := registry.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "hookferry_delivery_attempts_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

func sorted(ss []string) []string {
	out := append([]string(nil), ss...)
	sort.Strings(out)
	return out
}

func TestDeliversEveryEventSigned(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		a := e.endpoint(nil, "order.created")
		b := e.endpoint(nil, "order.created", "payment.failed")
		c := e.endpoint(nil, "payment.failed")
		e.start(delivery.Config{}, delivery.SenderConfig{})
		orders := e.publish("order.created", 30)
		payments := e.publish("payment.failed", 5)

		eventually(t, "all delivered", func() bool {
			return len(a.received()) == 30 && len(b.received()) == 35 && len(c.received()) == 5
		})
		require.Equal(t, sorted(orders), sorted(a.received()))
		require.Equal(t, sorted(append(orders, payments...)), sorted(b.received()))
		require.Equal(t, sorted(payments), sorted(c.received()))
		eventually(t, "recorded", func() bool {
			for _, d := range e.deliveries(a) {
				if d.Status != store.StatusDelivered {
					return false
				}
			}
			return true
		})
		for _, d := range e.deliveries(a) {
			require.Equal(t, 1, d.Attempts)
			require.Equal(t, 204, *d.LastStatusCode)
			require.NotNil(t, d.DeliveredAt)
			require.Nil(t, d.NextAttemptAt)
		}
	})
}

func TestRetriesOnTheScheduleThenFails(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		failing := e.endpoint(func(int) int { return http.StatusInternalServerError }, "order.created")
		flaky := e.endpoint(func(n int) int {
			if n <= 2 {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		}, "order.created")
		registry := prometheus.NewRegistry()
		var logs syncBuffer
		e.start(delivery.Config{RetrySchedule: []time.Duration{time.Millisecond, 2 * time.Millisecond},
			Metrics: metrics.New(registry, nil), Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}, delivery.SenderConfig{})
		ids := e.publish("order.created", 1)

		eventually(t, "out of retries", func() bool {
			ds := e.deliveries(failing)
			return len(ds) == 1 && ds[0].Status == store.StatusFailed
		})
		d := e.deliveries(failing)[0]
		require.Equal(t, 3, d.Attempts, "the first attempt and two retries")
		require.Equal(t, 500, *d.LastStatusCode)
		require.Contains(t, d.LastError, "500")
		require.Equal(t, []string{ids[0], ids[0], ids[0]}, failing.received(), "webhook-id is stable across retries")

		eventually(t, "delivered on the third attempt", func() bool {
			ds := e.deliveries(flaky)
			return len(ds) == 1 && ds[0].Status == store.StatusDelivered
		})
		d = e.deliveries(flaky)[0]
		require.Equal(t, 3, d.Attempts)
		require.Equal(t, 200, *d.LastStatusCode)
		require.Empty(t, d.LastError)

		// Six attempts: four refused and retried, one out of retries, one delivered.
		require.Equal(t, map[string]float64{"rejected": 4, "failed": 1, "delivered": 1}, attemptsByOutcome(t, registry))
		// One debug line per attempt, never with the secret or the URL.
		out := logs.String()
		require.Equal(t, 6, strings.Count(out, "level=DEBUG msg=\"delivery: attempt\" webhook="), out)
		require.Equal(t, 4, strings.Count(out, "outcome=rejected"), out)
		require.Equal(t, 1, strings.Count(out, "outcome=failed"), out)
		require.NotContains(t, out, strings.TrimPrefix(failing.hook.Secret, "whsec_"))
		require.NotContains(t, out, failing.srv.URL)
	})
}

// TestPausedWebhookBuffersThenDeliversOldestFirst: a paused webhook gets
// nothing while an active one subscribed to the same events gets everything;
// after unpause the buffered events arrive in publication order.
func TestPausedWebhookBuffersThenDeliversOldestFirst(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		paused := e.endpoint(nil, "order.created")
		active := e.endpoint(nil, "order.created")
		_, err := e.store.PauseWebhook(ctx, owner, paused.hook.ID, webhook.PauseReasonUser)
		require.NoError(t, err)
		e.start(delivery.Config{PerWebhook: 1}, delivery.SenderConfig{})
		ids := e.publish("order.created", 25)

		eventually(t, "the active webhook has everything", func() bool { return len(active.received()) == 25 })
		require.Empty(t, paused.received(), "nothing is sent to a paused webhook")
		w, err := e.store.GetWebhook(ctx, owner, paused.hook.ID)
		require.NoError(t, err)
		require.EqualValues(t, 25, w.BufferedEvents)

		_, err = e.store.UnpauseWebhook(ctx, owner, paused.hook.ID, 0)
		require.NoError(t, err)
		eventually(t, "buffered events delivered", func() bool { return len(paused.received()) == 25 })
		require.Equal(t, ids, paused.received(), "oldest first")
		eventually(t, "buffer empty", func() bool {
			w, err := e.store.GetWebhook(ctx, owner, paused.hook.ID)
			require.NoError(t, err)
			return w.BufferedEvents == 0
		})
	})
}

func TestDeletedWebhookGetsNothing(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		doomed := e.endpoint(nil, "order.created")
		witness := e.endpoint(nil, "order.created")
		_, err := e.store.PauseWebhook(ctx, owner, doomed.hook.ID, webhook.PauseReasonUser)
		require.NoError(t, err)
		e.publish("order.created", 10)
		_, err = e.store.DeleteWebhook(ctx, owner, doomed.hook.ID)
		require.NoError(t, err)
		depth, err := e.store.QueueDepth(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 10, depth, "the deleted webhook's deliveries went with it")

		e.start(delivery.Config{}, delivery.SenderConfig{})
		e.publish("order.created", 10)
		eventually(t, "the witness has everything", func() bool { return len(witness.received()) == 20 })
		require.Empty(t, doomed.received())
	})
}

// TestHangingWebhookDoesNotDelayOthers: one receiver never answers; another
// still gets every event, while the hanging one holds only its share of
// workers. The healthy receiver's latency is logged, not asserted.
func TestHangingWebhookDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		release := make(chan struct{})
		hanging := e.endpoint(func(int) int { <-release; return 200 }, "order.created")
		healthy := e.endpoint(nil, "order.created")
		t.Cleanup(func() { close(release) })
		e.start(delivery.Config{Workers: 8, PerWebhook: 2, ShutdownGrace: time.Millisecond}, delivery.SenderConfig{Timeout: time.Minute})
		start := time.Now()
		e.publish("order.created", 200)
		eventually(t, "the healthy webhook has everything", func() bool { return len(healthy.received()) == 200 })
		require.LessOrEqual(t, len(hanging.received()), 2, "the hanging webhook holds at most its per-webhook share")
		healthy.mu.Lock()
		last := healthy.arrivals[len(healthy.arrivals)-1]
		healthy.mu.Unlock()
		t.Logf("200 events to the healthy webhook in %s while the other hangs", last.Sub(start))
	})
}

func TestAutoPauseAfterFailingTooLong(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		failing := e.endpoint(func(int) int { return http.StatusBadGateway }, "order.created")
		schedule := make([]time.Duration, 1000)
		for i := range schedule {
			schedule[i] = 5 * time.Millisecond
		}
		e.start(delivery.Config{RetrySchedule: schedule, AutoPauseAfter: 100 * time.Millisecond}, delivery.SenderConfig{})
		e.publish("order.created", 3)
		eventually(t, "auto-paused", func() bool {
			w, err := e.store.GetWebhook(ctx, owner, failing.hook.ID)
			require.NoError(t, err)
			return w.Status == webhook.StatusPaused
		})
		w, err := e.store.GetWebhook(ctx, owner, failing.hook.ID)
		require.NoError(t, err)
		require.Equal(t, webhook.PauseReasonDeliveryFailures, w.PauseReason)
		require.EqualValues(t, 3, w.BufferedEvents, "its events stay buffered")
		for _, d := range e.deliveries(failing) {
			require.Equal(t, store.StatusPending, d.Status)
		}
	})
}

func TestPrivateTargetsRefusedAtDialTime(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		local := e.endpoint(nil, "order.created")
		e.start(delivery.Config{RetrySchedule: []time.Duration{}}, delivery.SenderConfig{RootCAs: e.roots, AllowPrivate: false})
		e.publish("order.created", 1)
		eventually(t, "failed", func() bool {
			ds := e.deliveries(local)
			return len(ds) == 1 && ds[0].Status == store.StatusFailed
		})
		d := e.deliveries(local)[0]
		require.Contains(t, d.LastError, "not a public address")
		require.Nil(t, d.LastStatusCode)
		require.Empty(t, local.received())
	})
}

// TestExpiredLeaseIsTakenOver: a worker that claimed deliveries and died leaves
// them leased; once the lease expires another dispatcher delivers them.
func TestExpiredLeaseIsTakenOver(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		ep := e.endpoint(nil, "order.created")
		ids := e.publish("order.created", 5)
		claims, err := e.store.Claim(ctx, store.ClaimRequest{Limit: 10, Lease: 300 * time.Millisecond}) // the worker that dies
		require.NoError(t, err)
		require.Len(t, claims, 5)
		again, err := e.store.Claim(ctx, store.ClaimRequest{Limit: 10, Lease: time.Minute})
		require.NoError(t, err)
		require.Empty(t, again, "leased deliveries are not claimed twice")

		e.start(delivery.Config{PollInterval: 20 * time.Millisecond}, delivery.SenderConfig{})
		eventually(t, "taken over", func() bool { return len(ep.received()) == 5 })
		require.Equal(t, sorted(ids), sorted(ep.received()))

		// The dead worker's late result does not overwrite the new one.
		_, err = e.store.Record(ctx, []store.Result{{DeliveryID: claims[0].DeliveryID, ClaimSeq: claims[0].ClaimSeq,
			WebhookID: ep.hook.ID, Status: store.StatusFailed, Attempted: true, AttemptedAt: time.Now(), Error: "stale"}}, time.Hour)
		require.NoError(t, err)
		eventually(t, "recorded", func() bool {
			for _, d := range e.deliveries(ep) {
				if d.Status != store.StatusDelivered {
					return false
				}
			}
			return true
		})
	})
}

// TestShutdownReleasesWhatItHolds: attempts still hanging when the grace
// period ends are cancelled and their deliveries released, not failed.
func TestShutdownReleasesWhatItHolds(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		release := make(chan struct{})
		hanging := e.endpoint(func(int) int { <-release; return 200 }, "order.created")
		t.Cleanup(func() { close(release) }) // before the receiver closes: cleanups run last first
		e.start(delivery.Config{PerWebhook: 2, ShutdownGrace: 50 * time.Millisecond}, delivery.SenderConfig{Timeout: time.Minute})
		e.publish("order.created", 6)
		eventually(t, "two in flight", func() bool { return len(hanging.received()) == 2 })
		e.shutdown()

		ds := e.deliveries(hanging)
		require.Len(t, ds, 6)
		for _, d := range ds {
			require.Equal(t, store.StatusPending, d.Status)
			require.Zero(t, d.Attempts, "a cancelled attempt is not charged")
		}
		claims, err := e.store.Claim(ctx, store.ClaimRequest{Limit: 10, Lease: time.Minute})
		require.NoError(t, err)
		require.Len(t, claims, 6, "every lease was released")
	})
}

// TestNewWorkWakesTheWorkers: with polling all but off, a publish still reaches
// the receiver at once — through the in-process signal, and on PostgreSQL
// through LISTEN/NOTIFY from another instance's store.
func TestNewWorkWakesTheWorkers(t *testing.T) {
	t.Parallel()
	noPolling := delivery.Config{PollInterval: time.Hour}
	eachBackend(t, func(t *testing.T, e *env) {
		ep := e.endpoint(nil, "order.created")
		e.start(noPolling, delivery.SenderConfig{})
		ids := e.publish("order.created", 1)
		eventually(t, "woken by the publish", func() bool { return len(ep.received()) == 1 })
		require.Equal(t, ids, ep.received())
	})
	t.Run("another instance", func(t *testing.T) {
		t.Parallel()
		url := storetest.PostgresURL(t)
		worker, err := store.Open(ctx, url, store.Options{Keys: storetest.Keys()})
		require.NoError(t, err)
		t.Cleanup(func() { _ = worker.Close() })
		e := &env{t: t, store: worker}
		ep := e.endpoint(nil, "order.created")
		listenCtx, stopListening := context.WithCancel(ctx)
		listening := make(chan struct{})
		go func() { defer close(listening); _ = worker.Listen(listenCtx) }()
		t.Cleanup(func() { stopListening(); <-listening })
		e.start(noPolling, delivery.SenderConfig{})

		producer, err := store.Open(ctx, url, store.Options{Keys: storetest.Keys()})
		require.NoError(t, err)
		t.Cleanup(func() { _ = producer.Close() })
		publish := func() {
			_, err := producer.Publish(ctx, store.Event{TenantID: owner.TenantID, Type: "order.created", Data: json.RawMessage(`{}`)})
			require.NoError(t, err)
		}
		// The first may also be found by the catch-up of the listener's first
		// connection; the second can only come through NOTIFY.
		publish()
		eventually(t, "first delivered", func() bool { return len(ep.received()) == 1 })
		publish()
		eventually(t, "woken by NOTIFY from the other store", func() bool { return len(ep.received()) == 2 })
	})
}

// TestErasedWebhookGetsNothingMore: while a webhook's first attempt is on the
// wire and more wait in memory, another process (the CLI) erases its owner;
// no further attempt starts.
func TestErasedWebhookGetsNothingMore(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		arrived, release := make(chan struct{}, 10), make(chan struct{})
		doomed := e.endpoint(func(n int) int {
			arrived <- struct{}{}
			if n == 1 {
				<-release
			}
			return 204
		}, "order.created")
		globex := webhook.Owner{TenantID: "globex", UserID: "gina"}
		witness := e.endpointOf(globex, nil, "order.created")
		e.start(delivery.Config{PerWebhook: 1}, delivery.SenderConfig{})
		e.publish("order.created", 5)
		wait(t, arrived, "the first attempt") // on the wire; four wait their turn

		cli, err := store.Open(ctx, e.url, store.Options{Keys: storetest.Keys()})
		require.NoError(t, err)
		defer cli.Close()
		erased, err := cli.Erase(ctx, owner.TenantID, owner.UserID)
		require.NoError(t, err)
		require.EqualValues(t, 1, erased.Webhooks)
		require.EqualValues(t, 5, erased.Deliveries)
		close(release)

		_, err = e.store.Publish(ctx, store.Event{TenantID: globex.TenantID, Type: "order.created", Data: json.RawMessage(`{}`)})
		require.NoError(t, err)
		eventually(t, "the witness got its event", func() bool { return len(witness.received()) == 1 })
		require.Len(t, doomed.received(), 1, "nothing after the attempt that was on the wire")
	})
}

// wait receives from ch; the deadline only turns a hang into a failure.
func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("never happened: %s", what)
	}
}

// syncBuffer is a bytes.Buffer safe for the dispatcher's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
