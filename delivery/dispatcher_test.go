package delivery_test

// The dispatcher's tests run real HTTPS receivers against SQLite and
// PostgreSQL. They wait on signals, never on sleeps or polling: a receiver
// reports each request on a channel, and the dispatcher reports what it
// decided (claims, starts, claims given back and why, outcomes recorded)
// through delivery.Observe. Every wait has a deadline (hang) that only turns
// a hang into a failure with a message. Timing is driven by the tests: leases
// are expired or shortened in SQL, clocks are moved, hanging receivers are
// released by the test.

import (
	"bytes"
	"context"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookferry/hookferry/delivery"
	"github.com/hookferry/hookferry/metrics"
	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/hookferry/hookferry/webhook"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/prometheus/client_golang/prometheus"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite" // database/sql driver "sqlite", for the tests' own SQL
)

var (
	ctx   = context.Background()
	owner = webhook.Owner{TenantID: "acme", UserID: "alice"}
)

// hang bounds every wait of these tests. It is no part of what is tested:
// it turns a hang into a failure that says what never happened.
const hang = 20 * time.Second

// recv receives one value from ch.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(hang)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("waited %s for %s", hang, what)
		panic("unreachable")
	}
}

// journal keeps everything a signal channel carried, flattened: waits look
// at the whole history, so that waiting for one thing never loses another.
type journal[B, T any] struct {
	ch      <-chan B
	flatten func(B) []T
	items   []T
}

func newJournal[B, T any](ch <-chan B, flatten func(B) []T) *journal[B, T] {
	return &journal[B, T]{ch: ch, flatten: flatten}
}

// watch is a receiver that must get no request while a test waits, but
// those allowed.
type watch struct {
	rc    *receiver
	allow func(a arrival) bool
}

// until reads until ok holds for everything seen so far, and returns it. A
// request at the watched receiver meanwhile fails the test at once, unless
// allowed.
func (j *journal[B, T]) until(t testing.TB, what string, ok func([]T) bool, w ...watch) []T {
	t.Helper()
	timer := time.NewTimer(hang)
	defer timer.Stop()
	var arrivals chan arrival
	if len(w) > 0 {
		arrivals = w[0].rc.arrivals
	}
	for !ok(j.items) {
		select {
		case b := <-j.ch:
			j.items = append(j.items, j.flatten(b)...)
		case a := <-arrivals:
			w[0].rc.got = append(w[0].rc.got, a)
			if w[0].allow == nil || !w[0].allow(a) {
				t.Fatalf("%s got a request (event %s) while waiting for %s", w[0].rc.name(), a.event, what)
			}
		case <-timer.C:
			t.Fatalf("waited %s for %s; saw %d", hang, what, len(j.items))
		}
	}
	return j.items
}

// now returns everything seen so far, what is buffered included.
func (j *journal[B, T]) now() []T {
	for {
		select {
		case b := <-j.ch:
			j.items = append(j.items, j.flatten(b)...)
		default:
			return j.items
		}
	}
}

func count[T any](n int, match func(T) bool) func([]T) bool {
	return func(items []T) bool { return countOf(items, match) >= n }
}

func countOf[T any](items []T, match func(T) bool) int {
	n := 0
	for _, it := range items {
		if match(it) {
			n++
		}
	}
	return n
}

func one[T any](v T) []T { return []T{v} }

// roots trusts the certificate every httptest TLS server shares.
var roots = sync.OnceValue(func() *x509.CertPool {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return pool
})

// env is a fresh database, a store on it, and the tests' own connection to it.
type env struct {
	t        *testing.T
	url      string
	postgres bool
	store    *store.Store
	clock    func() time.Time // the store's clock (SQLite's database clock)
	raw      *sql.DB
}

func newEnv(t *testing.T, url string, clock func() time.Time) *env {
	t.Helper()
	e := &env{t: t, url: url, postgres: strings.HasPrefix(url, "postgres"), clock: clock}
	if e.clock == nil {
		e.clock = time.Now
	}
	e.store = openStore(t, url, e.clock)
	driver, dsn := "pgx", url
	if !e.postgres {
		driver, dsn = "sqlite", "file:"+strings.TrimPrefix(url, "sqlite:")+"?_pragma=busy_timeout(10000)&_time_format=sqlite"
	}
	raw, err := sql.Open(driver, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = raw.Close() })
	e.raw = raw
	return e
}

func openStore(t *testing.T, url string, clock func() time.Time) *store.Store {
	t.Helper()
	st, err := store.Open(ctx, url, store.Options{Keys: storetest.Keys(), Now: clock})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// eachBackend runs body on a fresh SQLite and a fresh PostgreSQL database.
func eachBackend(t *testing.T, body func(t *testing.T, e *env)) {
	t.Helper()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			body(t, newEnv(t, be.URL(t), nil))
		})
	}
}

// onPostgres runs body on a fresh PostgreSQL database (a schema of its own).
func onPostgres(t *testing.T, body func(t *testing.T, e *env)) {
	t.Helper()
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		body(t, newEnv(t, storetest.PostgresURL(t), nil))
	})
}

// exec runs q, written with ? placeholders, on the tests' own connection.
func (e *env) exec(q string, args ...any) {
	e.t.Helper()
	if e.postgres {
		var b strings.Builder
		n := 0
		for _, r := range q {
			if r == '?' {
				n++
				fmt.Fprintf(&b, "$%d", n)
				continue
			}
			b.WriteRune(r)
		}
		q = b.String()
	}
	_, err := e.raw.ExecContext(ctx, q, args...)
	require.NoError(e.t, err, q)
}

func marks(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }

func int64s(ids []int64) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}

// setLeases makes the leases of the deliveries ids end d after the database's
// now (before it, for d < 0): PostgreSQL's now(), SQLite's store clock.
func (e *env) setLeases(d time.Duration, ids ...int64) {
	e.t.Helper()
	if e.postgres {
		e.exec("UPDATE deliveries SET leased_until = now() + make_interval(secs => CAST(? AS double precision)) WHERE id IN ("+marks(len(ids))+")",
			append([]any{d.Seconds()}, int64s(ids)...)...)
		return
	}
	e.exec("UPDATE deliveries SET leased_until = ? WHERE id IN ("+marks(len(ids))+")",
		append([]any{e.clock().UTC().Add(d)}, int64s(ids)...)...)
}

// takeOver does to the deliveries ids what another worker's claim does: a
// lease of d, a new claim_seq.
func (e *env) takeOver(d time.Duration, ids ...int64) {
	e.t.Helper()
	set := "leased_until = ?"
	args := []any{e.clock().UTC().Add(d)}
	if e.postgres {
		set, args = "leased_until = now() + make_interval(secs => CAST(? AS double precision))", []any{d.Seconds()}
	}
	e.exec("UPDATE deliveries SET "+set+", claim_seq = claim_seq + 1 WHERE id IN ("+marks(len(ids))+")", append(args, int64s(ids)...)...)
}

// row is a delivery as the database holds it.
type row struct {
	Status   string
	Attempts int
	Due      bool // next_attempt_at is set
	Leased   bool
	ClaimSeq int64
}

func (e *env) row(id int64) (row, bool) {
	e.t.Helper()
	var r row
	var due sql.NullTime
	q := "SELECT status, attempts, next_attempt_at, leased_until IS NOT NULL, claim_seq FROM deliveries WHERE id = $1"
	if !e.postgres {
		q = strings.Replace(q, "$1", "?", 1)
	}
	err := e.raw.QueryRowContext(ctx, q, id).Scan(&r.Status, &r.Attempts, &due, &r.Leased, &r.ClaimSeq)
	if err == sql.ErrNoRows {
		return r, false
	}
	require.NoError(e.t, err)
	r.Due = due.Valid
	return r, true
}

// requireHeld says the deliveries are pending, uncharged, not leased and
// held (no due time: their webhook is paused).
func (e *env) requireHeld(ids []int64, attempts int) {
	e.t.Helper()
	for _, id := range ids {
		r, ok := e.row(id)
		require.True(e.t, ok, "delivery %d", id)
		require.Equal(e.t, row{Status: store.StatusPending, Attempts: attempts, ClaimSeq: r.ClaimSeq}, r, "delivery %d", id)
	}
}

func (e *env) publish(tenant, typ string, n int) []string {
	e.t.Helper()
	return publishOn(e.t, e.store, tenant, typ, n)
}

func publishOn(t *testing.T, st *store.Store, tenant, typ string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		p, err := st.Publish(ctx, store.Event{TenantID: tenant, Type: typ, Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))})
		require.NoError(t, err)
		ids[i] = p.EventID
	}
	return ids
}

func (e *env) deliveries(rc *receiver) []store.Delivery {
	e.t.Helper()
	page, err := e.store.ListDeliveries(ctx, rc.hook.Owner, rc.hook.ID, "", "", 1000)
	require.NoError(e.t, err)
	return page.Items
}

func (e *env) webhook(rc *receiver) webhook.Webhook {
	e.t.Helper()
	w, err := e.store.GetWebhook(ctx, rc.hook.Owner, rc.hook.ID)
	require.NoError(e.t, err)
	return w
}

// receiver is a real HTTPS endpoint with a webhook registered for it. It
// verifies every request with the Standard Webhooks reference verifier,
// reports it on arrivals, then answers.
type receiver struct {
	t    *testing.T
	srv  *httptest.Server
	hook webhook.Webhook
	// answer gives the status for a request; it may block. nil answers 204.
	answer   func(a arrival, r *http.Request) int
	header   http.Header // added to every answer
	arrivals chan arrival
	stop     chan struct{} // closed when the test ends: blocked answers return
	got      []arrival     // what the test has taken from arrivals

	mu       sync.Mutex
	inFlight int
	most     int // the most requests in flight at once
}

// arrival is one verified request.
type arrival struct {
	event    string // the envelope's id, = webhook-id
	n        int    // 1 for the receiver's first request
	inFlight int    // requests in flight at the receiver, this one included
}

type option func(*receiver, *webhook.Webhook)

func answering(f func(a arrival, r *http.Request) int) option {
	return func(rc *receiver, _ *webhook.Webhook) { rc.answer = f }
}

func status(code int) option {
	return answering(func(arrival, *http.Request) int { return code })
}

func withHeader(k, v string) option {
	return func(rc *receiver, _ *webhook.Webhook) { rc.header = http.Header{k: {v}} }
}

func types(ts ...string) option {
	return func(_ *receiver, w *webhook.Webhook) { w.EventTypes = ts }
}

func ownedBy(o webhook.Owner) option { return func(_ *receiver, w *webhook.Webhook) { w.Owner = o } }

func ordered() option { return func(_ *receiver, w *webhook.Webhook) { w.Ordered = true } }

func arrivingOn(ch chan arrival) option {
	return func(rc *receiver, _ *webhook.Webhook) { rc.arrivals = ch }
}

// hanging answers nothing until the test ends or the sender gives up.
func hanging() option {
	return answering(func(_ arrival, r *http.Request) int { <-r.Context().Done(); return 204 })
}

// held answers each request once the test sends on release (or closes it).
func held(release <-chan struct{}) option {
	return answering(func(_ arrival, r *http.Request) int {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return 204
	})
}

// firstHeld holds the first request until release is closed; the others get 204.
func firstHeld(release <-chan struct{}) option {
	return answering(func(a arrival, r *http.Request) int {
		if a.n == 1 {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		return 204
	})
}

func (e *env) receiver(opts ...option) *receiver {
	e.t.Helper()
	return newReceiver(e.t, e.store, opts...)
}

func newReceiver(t *testing.T, st *store.Store, opts ...option) *receiver {
	t.Helper()
	rc := &receiver{t: t, stop: make(chan struct{})}
	w := webhook.Webhook{Owner: owner, EventTypes: []string{"order.created"}}
	for _, o := range opts {
		o(rc, &w)
	}
	if rc.arrivals == nil {
		rc.arrivals = make(chan arrival, 4096)
	}
	var mu sync.Mutex
	n := 0
	rc.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		a, ok := rc.verify(r)
		if !ok {
			rw.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		n++
		a.n = n
		mu.Unlock()
		rc.mu.Lock()
		rc.inFlight++
		a.inFlight = rc.inFlight
		rc.most = max(rc.most, rc.inFlight)
		rc.mu.Unlock()
		// Counted out before the response can reach the sender: net/http
		// writes it when the handler returns.
		defer func() {
			rc.mu.Lock()
			rc.inFlight--
			rc.mu.Unlock()
		}()
		select {
		case rc.arrivals <- a:
		default:
			t.Errorf("%s: arrivals channel full", rc.name())
		}
		code := http.StatusNoContent
		if rc.answer != nil {
			// Blocked answers return when the test ends.
			cctx, cancel := context.WithCancel(r.Context())
			defer cancel()
			go func() {
				select {
				case <-rc.stop:
					cancel()
				case <-cctx.Done():
				}
			}()
			code = rc.answer(a, r.WithContext(cctx))
		}
		for k, v := range rc.header {
			rw.Header()[k] = v
		}
		rw.WriteHeader(code)
	}))
	rc.srv.StartTLS()
	t.Cleanup(func() {
		close(rc.stop)
		rc.srv.Close()
	})
	url := rc.srv.URL + "/hooks"
	hook, err := webhook.New(w.Owner, url, url, w.EventTypes, webhook.SigningSymmetric, time.Now(), nil)
	require.NoError(t, err)
	hook.Ordered = w.Ordered
	require.NoError(t, st.RegisterWebhook(ctx, hook, 1000))
	rc.hook = hook
	return rc
}

func (rc *receiver) verify(r *http.Request) (arrival, bool) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		rc.t.Errorf("%s: reading a delivery: %v", rc.name(), err)
		return arrival{}, false
	}
	verifier, err := standardwebhooks.NewWebhook(rc.hook.Secret)
	if err != nil {
		rc.t.Errorf("verifier: %v", err)
		return arrival{}, false
	}
	if err := verifier.Verify(body, r.Header); err != nil {
		rc.t.Errorf("%s: signature does not verify: %v (headers %v)", rc.name(), err, r.Header)
		return arrival{}, false
	}
	var env store.Envelope
	if err := json.Unmarshal(body, &env); err != nil {
		rc.t.Errorf("%s: envelope: %v: %s", rc.name(), err, body)
		return arrival{}, false
	}
	if r.Header.Get("content-type") != "application/json" || r.Header.Get("webhook-id") != env.ID {
		rc.t.Errorf("%s: headers %v for envelope %s", rc.name(), r.Header, env.ID)
	}
	return arrival{event: env.ID}, true
}

func (rc *receiver) name() string { return "webhook " + rc.hook.ID }

// take waits until the receiver has had n requests in all, and returns them.
func (rc *receiver) take(n int) []arrival {
	rc.t.Helper()
	timer := time.NewTimer(hang)
	defer timer.Stop()
	for len(rc.got) < n {
		select {
		case a := <-rc.arrivals:
			rc.got = append(rc.got, a)
		case <-timer.C:
			rc.t.Fatalf("%s: waited %s for request %d; had %d", rc.name(), hang, n, len(rc.got))
		}
	}
	return rc.got
}

// events are the envelope ids of every request so far, in arrival order.
func (rc *receiver) events() []string {
	for {
		select {
		case a := <-rc.arrivals:
			rc.got = append(rc.got, a)
			continue
		default:
		}
		break
	}
	out := make([]string, len(rc.got))
	for i, a := range rc.got {
		out[i] = a.event
	}
	return out
}

// most is the most requests the receiver has had in flight at once.
func (rc *receiver) maxInFlight() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.most
}

// runner is a dispatcher running until the test ends, and what it reports.
type runner struct {
	t    *testing.T
	d    *delivery.Dispatcher
	sig  *delivery.Signals
	stop context.CancelFunc
	done chan error // Run's error, once it returned

	claimed  *journal[[]store.Claim, []store.Claim] // one item per claim made
	started  *journal[store.Claim, store.Claim]
	back     *journal[delivery.GivenBack, given]
	overtime *journal[store.Claim, store.Claim]
	ended    *journal[store.Claim, store.Claim]
	recorded *journal[delivery.Recorded, store.Result]
}

// given is one claim given back without an attempt, and why.
type given struct {
	why   string
	claim store.Claim
}

func (e *env) run(cfg delivery.Config, sc delivery.SenderConfig) *runner {
	e.t.Helper()
	return start(e.t, e.store, cfg, sc, nil)
}

// start runs a dispatcher on st; before, if given, sees it before Run. A test
// gives sc.RootCAs only to refuse private targets.
func start(t *testing.T, st *store.Store, cfg delivery.Config, sc delivery.SenderConfig, before func(*delivery.Dispatcher)) *runner {
	t.Helper()
	if sc.RootCAs == nil {
		sc.RootCAs, sc.AllowPrivate = roots(), true
	}
	if cfg.SlowAfter == 0 {
		// On a loaded machine an ordinary attempt can pass a second: only
		// the tests of overtime and the held-back lane set SlowAfter.
		cfg.SlowAfter = time.Minute
	}
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = 100 * time.Millisecond
	}
	sender, err := delivery.NewSender(sc)
	require.NoError(t, err)
	d := delivery.New(st, sender, cfg)
	sig := delivery.Observe(t, d)
	if before != nil {
		before(d)
	}
	r := &runner{t: t, d: d, sig: sig, done: make(chan error, 1),
		claimed:  newJournal(sig.Claimed, one[[]store.Claim]),
		started:  newJournal(sig.Started, one[store.Claim]),
		back:     newJournal(sig.GivenBack, flattenGiven),
		overtime: newJournal(sig.Overtime, one[store.Claim]),
		ended:    newJournal(sig.Ended, one[store.Claim]),
		recorded: newJournal(sig.Recorded, func(r delivery.Recorded) []store.Result { return r.Results }),
	}
	runCtx, stop := context.WithCancel(ctx)
	r.stop = stop
	go func() { r.done <- d.Run(runCtx) }()
	t.Cleanup(func() { r.shutdown() })
	return r
}

func flattenGiven(g delivery.GivenBack) []given {
	out := make([]given, len(g.Claims))
	for i, c := range g.Claims {
		out[i] = given{g.Why, c}
	}
	return out
}

// shutdown stops the dispatcher and waits for Run to return.
func (r *runner) shutdown() {
	r.t.Helper()
	if r.stop == nil {
		return
	}
	r.stop()
	r.stop = nil
	require.NoError(r.t, recv(r.t, r.done, "Run to return"))
}

// flush waits until the loop has handled everything sent to it so far and
// started what it could; idle waits for its claims to settle too.
func (r *runner) flush(idle bool) { r.t.Helper(); delivery.Flush(r.t, r.d, idle) }

// claims waits until n claims matching have been claimed, and returns them.
func (r *runner) claims(n int, match func(store.Claim) bool) []store.Claim {
	r.t.Helper()
	return filter(slices.Concat(r.claimed.until(r.t, fmt.Sprintf("%d claims", n), func(bs [][]store.Claim) bool {
		return countOf(slices.Concat(bs...), match) >= n
	})...), match)
}

// claimedNow is every claim made so far.
func (r *runner) claimedNow() []store.Claim { return slices.Concat(r.claimed.now()...) }

// results waits until n results matching have been recorded, and returns them.
func (r *runner) results(what string, n int, match func(store.Result) bool) []store.Result {
	r.t.Helper()
	return filter(r.recorded.until(r.t, what, count(n, match)), match)
}

// givenBack waits until every claim of cs has been given back for why. A
// request at forbid meanwhile fails the test, but for an event whose claim
// was given back already (claimed again since).
func (r *runner) givenBack(why string, cs []store.Claim, forbid ...*receiver) {
	r.t.Helper()
	want := refs(cs)
	var w []watch
	if len(forbid) > 0 {
		w = append(w, watch{rc: forbid[0], allow: func(a arrival) bool {
			// Given back before it could be claimed again: the signal is in
			// the channel by the time of the request.
			for _, g := range r.back.now() {
				if want[ref(g.claim)] && g.claim.EventID == a.event {
					return true
				}
			}
			return false
		}})
	}
	r.back.until(r.t, fmt.Sprintf("%d claims given back (%s)", len(cs), why), func(gs []given) bool {
		n := 0
		for _, g := range gs {
			if want[ref(g.claim)] {
				if g.why != why {
					r.t.Fatalf("delivery %d given back (%s), not (%s)", g.claim.DeliveryID, g.why, why)
				}
				n++
			}
		}
		return n >= len(want)
	}, w...)
}

func filter[T any](items []T, match func(T) bool) []T {
	var out []T
	for _, it := range items {
		if match(it) {
			out = append(out, it)
		}
	}
	return out
}

func ref(c store.Claim) store.ClaimRef {
	return store.ClaimRef{DeliveryID: c.DeliveryID, ClaimSeq: c.ClaimSeq}
}

func refs(cs []store.Claim) map[store.ClaimRef]bool {
	m := map[store.ClaimRef]bool{}
	for _, c := range cs {
		m[ref(c)] = true
	}
	return m
}

func ids(cs []store.Claim) []int64 {
	out := make([]int64, len(cs))
	for i, c := range cs {
		out[i] = c.DeliveryID
	}
	return out
}

func of(rc *receiver) func(store.Claim) bool {
	return func(c store.Claim) bool { return c.WebhookID == rc.hook.ID }
}

func resultOf(rc *receiver, status string) func(store.Result) bool {
	return func(r store.Result) bool { return r.WebhookID == rc.hook.ID && (status == "" || r.Status == status) }
}

func attempted(rc *receiver, status string) func(store.Result) bool {
	return func(r store.Result) bool { return r.Attempted && resultOf(rc, status)(r) }
}

func released(cs []store.Claim) func(store.Result) bool {
	want := refs(cs)
	return func(r store.Result) bool {
		return !r.Attempted && want[store.ClaimRef{DeliveryID: r.DeliveryID, ClaimSeq: r.ClaimSeq}]
	}
}

// waiting splits a webhook's claims into those started and those waiting.
func waiting(all, started []store.Claim) []store.Claim {
	on := refs(started)
	var out []store.Claim
	for _, c := range all {
		if !on[ref(c)] {
			out = append(out, c)
		}
	}
	return out
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
	out := slices.Clone(ss)
	slices.Sort(out)
	return out
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

func TestDeliversEveryEventSigned(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		a := e.receiver(types("order.created"))
		b := e.receiver(types("order.created", "payment.failed"))
		c := e.receiver(types("payment.failed"))
		run := e.run(delivery.Config{}, delivery.SenderConfig{})
		orders := e.publish(owner.TenantID, "order.created", 30)
		payments := e.publish(owner.TenantID, "payment.failed", 5)

		a.take(30)
		b.take(35)
		c.take(5)
		require.Equal(t, sorted(orders), sorted(a.events()))
		require.Equal(t, sorted(append(orders, payments...)), sorted(b.events()))
		require.Equal(t, sorted(payments), sorted(c.events()))
		run.results("70 deliveries recorded", 70, func(r store.Result) bool { return r.Status == store.StatusDelivered })
		for _, d := range e.deliveries(a) {
			require.Equal(t, store.StatusDelivered, d.Status)
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
		failing := e.receiver(status(http.StatusInternalServerError))
		flaky := e.receiver(answering(func(a arrival, _ *http.Request) int {
			if a.n <= 2 {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		}))
		registry := prometheus.NewRegistry()
		var logs syncBuffer
		run := e.run(delivery.Config{RetrySchedule: []time.Duration{time.Millisecond, 2 * time.Millisecond},
			Metrics: metrics.New(registry, nil), Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}, delivery.SenderConfig{})
		ids := e.publish(owner.TenantID, "order.created", 1)

		run.results("out of retries", 1, resultOf(failing, store.StatusFailed))
		run.results("delivered on the third attempt", 1, resultOf(flaky, store.StatusDelivered))
		d := e.deliveries(failing)[0]
		require.Equal(t, store.StatusFailed, d.Status)
		require.Equal(t, 3, d.Attempts, "the first attempt and two retries")
		require.Equal(t, 500, *d.LastStatusCode)
		require.Contains(t, d.LastError, "500")
		require.Equal(t, []string{ids[0], ids[0], ids[0]}, failing.events(), "webhook-id is stable across retries")
		d = e.deliveries(flaky)[0]
		require.Equal(t, store.StatusDelivered, d.Status)
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
		paused := e.receiver()
		active := e.receiver()
		_, err := e.store.PauseWebhook(ctx, owner, paused.hook.ID, webhook.PauseReasonUser)
		require.NoError(t, err)
		run := e.run(delivery.Config{PerWebhook: 1}, delivery.SenderConfig{})
		ids := e.publish(owner.TenantID, "order.created", 25)

		active.take(25)
		run.results("the active webhook's deliveries recorded", 25, resultOf(active, store.StatusDelivered))
		run.flush(true)
		require.Empty(t, paused.events(), "nothing is sent to a paused webhook")
		require.Empty(t, filter(run.claimedNow(), of(paused)), "nor claimed")
		require.EqualValues(t, 25, e.webhook(paused).BufferedEvents)

		_, err = e.store.UnpauseWebhook(ctx, owner, paused.hook.ID, 0)
		require.NoError(t, err)
		paused.take(25)
		require.Equal(t, ids, paused.events(), "oldest first")
		run.results("the buffered deliveries recorded", 25, resultOf(paused, store.StatusDelivered))
		require.Zero(t, e.webhook(paused).BufferedEvents)
	})
}

func TestDeletedWebhookGetsNothing(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		doomed := e.receiver()
		witness := e.receiver()
		_, err := e.store.PauseWebhook(ctx, owner, doomed.hook.ID, webhook.PauseReasonUser)
		require.NoError(t, err)
		e.publish(owner.TenantID, "order.created", 10)
		_, err = e.store.DeleteWebhook(ctx, owner, doomed.hook.ID)
		require.NoError(t, err)
		depth, err := e.store.QueueDepth(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 10, depth, "the deleted webhook's deliveries went with it")

		run := e.run(delivery.Config{}, delivery.SenderConfig{})
		e.publish(owner.TenantID, "order.created", 10)
		witness.take(20)
		run.flush(true)
		require.Empty(t, doomed.events())
	})
}

func TestAutoPauseAfterFailingTooLong(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		failing := e.receiver(status(http.StatusBadGateway))
		paused := make(chan struct{})
		var once sync.Once
		e.store.OnSignal(func(s store.Signal) { // Record pauses it, then signals
			if s.Channel == store.WebhooksChannel && s.Payload == failing.hook.ID {
				once.Do(func() { close(paused) })
			}
		})
		schedule := make([]time.Duration, 1000)
		for i := range schedule {
			schedule[i] = 5 * time.Millisecond
		}
		run := e.run(delivery.Config{RetrySchedule: schedule, AutoPauseAfter: 100 * time.Millisecond}, delivery.SenderConfig{})
		e.publish(owner.TenantID, "order.created", 3)
		recv(t, paused, "the webhook paused")
		w := e.webhook(failing)
		require.Equal(t, webhook.StatusPaused, w.Status)
		require.Equal(t, webhook.PauseReasonDeliveryFailures, w.PauseReason)
		require.EqualValues(t, 3, w.BufferedEvents, "its events stay buffered")
		run.flush(true)
		for _, d := range e.deliveries(failing) {
			require.Equal(t, store.StatusPending, d.Status)
		}
	})
}

func TestPrivateTargetsRefusedAtDialTime(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		local := e.receiver()
		run := e.run(delivery.Config{RetrySchedule: []time.Duration{}}, delivery.SenderConfig{RootCAs: roots(), AllowPrivate: false})
		e.publish(owner.TenantID, "order.created", 1)
		run.results("failed", 1, resultOf(local, store.StatusFailed))
		d := e.deliveries(local)[0]
		require.Equal(t, store.StatusFailed, d.Status)
		require.Contains(t, d.LastError, "not a public address")
		require.Nil(t, d.LastStatusCode)
		require.Empty(t, local.events())
	})
}

// TestNewWorkWakesTheWorkers: with polling all but off, a publish still reaches
// the receiver at once — through the in-process signal, and on PostgreSQL
// through LISTEN/NOTIFY from another instance's store.
func TestNewWorkWakesTheWorkers(t *testing.T) {
	t.Parallel()
	noPolling := delivery.Config{PollInterval: time.Hour}
	eachBackend(t, func(t *testing.T, e *env) {
		rc := e.receiver()
		run := e.run(noPolling, delivery.SenderConfig{})
		run.claimed.until(t, "the first claim", func(bs [][]store.Claim) bool { return len(bs) > 0 })
		run.flush(true) // nothing more to claim until woken
		ids := e.publish(owner.TenantID, "order.created", 1)
		rc.take(1)
		require.Equal(t, ids, rc.events())
	})
	t.Run("another instance", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, storetest.PostgresURL(t), nil)
		rc := e.receiver()
		run := e.run(noPolling, delivery.SenderConfig{})
		// The listener's first connection signals new deliveries to catch up
		// with what was notified while it was away: from then on it listens.
		// This handler runs after the dispatcher's, which has poked it by then.
		listening := make(chan struct{})
		var once sync.Once
		e.store.OnSignal(func(s store.Signal) {
			if s.Channel == store.DeliveriesChannel {
				once.Do(func() { close(listening) })
			}
		})
		listenCtx, stopListening := context.WithCancel(ctx)
		listened := make(chan struct{})
		go func() { defer close(listened); _ = e.store.Listen(listenCtx) }()
		t.Cleanup(func() { stopListening(); <-listened })
		recv(t, listening, "LISTEN")
		run.flush(true) // the catch-up's claim is over: only a NOTIFY can wake it now

		producer := openStore(t, e.url, nil)
		ids := publishOn(t, producer, owner.TenantID, "order.created", 1)
		rc.take(1)
		require.Equal(t, ids, rc.events())
	})
}

// TestErasedWebhookGetsNothingMore: while a webhook's first attempt is on the
// wire and more wait in memory, another process (the CLI) erases its owner;
// no further attempt starts: the gate sees the erasure before the CLI's
// signal could reach this process.
func TestErasedWebhookGetsNothingMore(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		release := make(chan struct{})
		doomed := e.receiver(firstHeld(release))
		globex := webhook.Owner{TenantID: "globex", UserID: "gina"}
		witness := e.receiver(ownedBy(globex))
		e.publish(owner.TenantID, "order.created", 5) // claimed at once: one claim takes them all
		run := e.run(delivery.Config{PerWebhook: 1}, delivery.SenderConfig{})
		claims := run.claims(5, of(doomed))
		doomed.take(1) // on the wire; four wait their turn
		run.flush(false)
		first := filter(run.started.now(), of(doomed))
		require.Equal(t, 1, len(first))

		cli := openStore(t, e.url, nil)
		erased, err := cli.Erase(ctx, owner.TenantID, owner.UserID)
		require.NoError(t, err)
		require.EqualValues(t, 1, erased.Webhooks)
		require.EqualValues(t, 5, erased.Deliveries)
		close(release)

		run.givenBack(delivery.BackGate, waiting(claims, first), doomed)
		publishOn(t, e.store, globex.TenantID, "order.created", 1)
		witness.take(1)
		run.flush(true)
		require.Len(t, doomed.events(), 1, "nothing after the attempt that was on the wire")
	})
}

// TestBacklogBeyondTheRoomNeedsNoPoll: one webhook's backlog is larger than
// the room one claim may take of it; as its attempts finish, the rest is
// claimed without waiting for a poll (an hour here) or a new publish.
func TestBacklogBeyondTheRoomNeedsNoPoll(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		rc := e.receiver()
		ids := e.publish(owner.TenantID, "order.created", 40)
		run := e.run(delivery.Config{PerWebhook: 1, PollInterval: time.Hour}, delivery.SenderConfig{})
		rc.take(len(ids))
		require.ElementsMatch(t, ids, rc.events())
		require.Greater(t, len(run.claimed.now()), 1, "one claim took them all: the room did not bound it")
	})
}
