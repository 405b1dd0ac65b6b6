package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/hookferry/hookferry/webhook"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
)

// The store conformance suite: one table of deterministic tests of what the
// dispatcher relies on (claims, fences, ordered webhooks, transitions, leases,
// publishes), each run on every backend. Time is the store's injected clock;
// on PostgreSQL leases are on the database's now(), so a lease is ended there
// by moving leased_until (expire), never by sleeping.
var conformance = []struct {
	name string
	run  func(t *testing.T, e *env)
}{
	{"ClaimSkipsPausedWebhooks", testClaimSkipsPausedWebhooks},
	{"ClaimSkipsExcluded", testClaimSkipsExcluded},
	{"ClaimSkipsLeasedUntilLeaseEnds", testClaimSkipsLeased},
	{"ClaimSkipsNotDue", testClaimSkipsNotDue},
	{"ClaimSkipsFinished", testClaimSkipsFinished},
	{"ClaimOldestDueFirst", testClaimOldestDueFirst},
	{"ClaimReturnsWhatSendingNeeds", testClaimReturnsWhatSendingNeeds},
	{"ClaimLimit", testClaimLimit},
	{"StaleClaimSeqAfterLeaseExpiry", testStaleAfterExpiry},
	{"StaleClaimSeqAfterRedeliver", testStaleAfterRedeliver},
	{"OrderedOneAtATime", testOrderedOneAtATime},
	{"OrderedRedeliverInFlight", testOrderedRedeliverInFlight},
	{"OrderedRedeliverWaitsForClaims", testOrderedRedeliverWaitsForClaims},
	{"OrderedPauseUnpauseDrainsInOrder", testOrderedPauseUnpause},
	{"OrderedConcurrentClaims", testOrderedConcurrentClaims},
	{"OrderedRedeliverRacesClaims", testOrderedRedeliverRace},
	{"PauseAndUnpause", testPauseAndUnpause},
	{"DeleteLeavesNothingClaimable", testDelete},
	{"StartableLeaseBound", testStartableLeaseBound},
	{"StartableFence", testStartableFence},
	{"RecordGonePauses", testRecordGone},
	{"RecordAutoPause", testRecordAutoPause},
	{"LeasesOnOneClock", testLeasesOnOneClock},
	{"PublishIsAtomic", testPublishAtomic},
	{"PublishCancelled", testPublishCancelled},
	{"TwoInstancesWriteAtOnce", testTwoInstancesWrite},
}

func TestConformance(t *testing.T) {
	t.Parallel()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range conformance {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t, newEnv(t, be))
				})
			}
		})
	}
}

// testClock is a settable clock that goroutines may read.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *testClock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// env is one test's database and store.
type env struct {
	t   *testing.T
	pg  bool
	url string
	clk *testClock
	st  *store.Store
	db  *gorm.DB
	t0  time.Time // the clock at the start
}

var (
	alice = webhook.Owner{TenantID: "acme", UserID: "alice"}
	bob   = webhook.Owner{TenantID: "acme", UserID: "bob"}
	carol = webhook.Owner{TenantID: "globex", UserID: "carol"}
	olga  = webhook.Owner{TenantID: "ordered", UserID: "olga"}
)

const lease = time.Minute

func newEnv(t *testing.T, be storetest.Backend) *env {
	t.Helper()
	// Near the real time: on PostgreSQL leases are on the database's clock.
	t0 := time.Now().UTC().Truncate(time.Second)
	e := &env{t: t, pg: be.Name == "postgres", url: be.URL(t), clk: &testClock{t: t0}, t0: t0}
	e.st = e.open(e.clk.Now)
	e.db = e.st.GormDB()
	return e
}

// open opens another store (another instance) on the database, with clock now.
func (e *env) open(now func() time.Time) *store.Store {
	e.t.Helper()
	st, err := store.Open(ctx, e.url, store.Options{Keys: storetest.Keys(), Now: now})
	require.NoError(e.t, err)
	e.t.Cleanup(func() { _ = st.Close() })
	return st
}

func (e *env) webhook(owner webhook.Owner, url string, ordered bool) webhook.Webhook {
	e.t.Helper()
	w, err := webhook.New(owner, url, url, []string{"order.created", "order.boom"}, webhook.SigningSymmetric, e.clk.Now(), nil)
	require.NoError(e.t, err)
	w.Ordered = ordered
	require.NoError(e.t, e.st.RegisterWebhook(ctx, w, 25))
	return w
}

// publish publishes n events to tenant one after the other and returns their ids.
func (e *env) publish(st *store.Store, tenant string, n int) []string {
	e.t.Helper()
	ids := make([]string, n)
	for i := range n {
		p, err := st.Publish(ctx, store.Event{TenantID: tenant, Type: "order.created", Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))})
		require.NoError(e.t, err)
		ids[i] = p.EventID
	}
	return ids
}

// deliveryIDs are the ids of the webhook's deliveries, oldest first.
func (e *env) deliveryIDs(webhookID string) []int64 {
	e.t.Helper()
	var ids []int64
	require.NoError(e.t, e.db.Raw("SELECT id FROM deliveries WHERE webhook_id = ? ORDER BY id", webhookID).Scan(&ids).Error)
	return ids
}

func (e *env) claim(req store.ClaimRequest) []store.Claim {
	e.t.Helper()
	if req.Lease == 0 {
		req.Lease = lease
	}
	cs, err := e.st.Claim(ctx, req)
	require.NoError(e.t, err)
	return cs
}

func (e *env) claimAll() []store.Claim { e.t.Helper(); return e.claim(store.ClaimRequest{Limit: 100}) }

// first is the first of cs, which must not be empty.
func (e *env) first(cs []store.Claim) store.Claim {
	e.t.Helper()
	require.NotEmpty(e.t, cs)
	return cs[0]
}

func (e *env) record(rs ...store.Result) []store.Paused {
	e.t.Helper()
	p, err := e.st.Record(ctx, rs, 0)
	require.NoError(e.t, err)
	return p
}

func (e *env) startable(within time.Duration, cs ...store.Claim) map[int64]bool {
	e.t.Helper()
	refs := make([]store.ClaimRef, len(cs))
	for i, c := range cs {
		refs[i] = store.ClaimRef{DeliveryID: c.DeliveryID, ClaimSeq: c.ClaimSeq}
	}
	ok, err := e.st.Startable(ctx, refs, within)
	require.NoError(e.t, err)
	return ok
}

// rowState is a delivery's row as the database has it.
type rowState struct {
	Status         string
	Attempts       int
	SchedulePos    int
	ClaimSeq       int64
	NextAttemptAt  *time.Time
	LeasedUntil    *time.Time
	LastStatusCode *int
	LastError      string
}

func (e *env) row(id int64) rowState {
	e.t.Helper()
	var r rowState
	res := e.db.Raw(`SELECT status, attempts, schedule_pos, claim_seq, next_attempt_at, leased_until, last_status_code, last_error
		FROM deliveries WHERE id = ?`, id).Scan(&r)
	require.NoError(e.t, res.Error)
	require.EqualValues(e.t, 1, res.RowsAffected, "delivery %d", id)
	return r
}

// attemptsLogged counts the attempt rows of a delivery.
func (e *env) attemptsLogged(id int64) int64 {
	e.t.Helper()
	var n int64
	require.NoError(e.t, e.db.Raw("SELECT COUNT(*) FROM attempts WHERE delivery_id = ?", id).Scan(&n).Error)
	return n
}

// expire ends the leases of the deliveries now, on the clock leases are on.
func (e *env) expire(ids ...int64) {
	e.t.Helper()
	var err error
	if e.pg {
		err = e.db.Exec("UPDATE deliveries SET leased_until = now() - interval '1 second' WHERE id IN ?", ids).Error
	} else {
		err = e.db.Exec("UPDATE deliveries SET leased_until = ? WHERE id IN ?", e.clk.Now().Add(-time.Second), ids).Error
	}
	require.NoError(e.t, err)
}

// leased counts the webhook's pending deliveries under a live lease.
func (e *env) leased(webhookID string) int64 {
	e.t.Helper()
	var n int64
	var err error
	if e.pg {
		err = e.db.Raw("SELECT COUNT(*) FROM deliveries WHERE webhook_id = ? AND status = 'PENDING' AND leased_until > now()", webhookID).Scan(&n).Error
	} else {
		err = e.db.Raw("SELECT COUNT(*) FROM deliveries WHERE webhook_id = ? AND status = 'PENDING' AND leased_until > ?", webhookID, e.clk.Now()).Scan(&n).Error
	}
	require.NoError(e.t, err)
	return n
}

func (e *env) redeliver(owner webhook.Owner, webhookID string, id int64) {
	e.t.Helper()
	_, err := e.st.Redeliver(ctx, owner, webhookID, dlv(id))
	require.NoError(e.t, err)
}

func dlv(id int64) string { return fmt.Sprintf("dlv_%d", id) }

func ids(cs []store.Claim) []int64 {
	out := make([]int64, len(cs))
	for i, c := range cs {
		out[i] = c.DeliveryID
	}
	return out
}

// of are the claims of one webhook.
func of(webhookID string, cs []store.Claim) []store.Claim {
	var out []store.Claim
	for _, c := range cs {
		if c.WebhookID == webhookID {
			out = append(out, c)
		}
	}
	return out
}

func delivered(c store.Claim, at time.Time) store.Result {
	return store.Result{DeliveryID: c.DeliveryID, ClaimSeq: c.ClaimSeq, WebhookID: c.WebhookID, Status: store.StatusDelivered,
		SchedulePos: c.SchedulePos, Attempted: true, AttemptedAt: at, StatusCode: 204}
}

func retry(c store.Claim, at, next time.Time) store.Result {
	return store.Result{DeliveryID: c.DeliveryID, ClaimSeq: c.ClaimSeq, WebhookID: c.WebhookID, Status: store.StatusPending,
		NextAttemptAt: next, SchedulePos: c.SchedulePos + 1, Attempted: true, AttemptedAt: at, StatusCode: 500, Error: "HTTP 500"}
}

func failed(c store.Claim, at time.Time) store.Result {
	return store.Result{DeliveryID: c.DeliveryID, ClaimSeq: c.ClaimSeq, WebhookID: c.WebhookID, Status: store.StatusFailed,
		SchedulePos: c.SchedulePos + 1, Attempted: true, AttemptedAt: at, StatusCode: 500, Error: "HTTP 500"}
}

func released(c store.Claim) store.Result {
	return store.Result{DeliveryID: c.DeliveryID, ClaimSeq: c.ClaimSeq, WebhookID: c.WebhookID, Status: store.StatusPending,
		SchedulePos: c.SchedulePos}
}

// waitFor polls cond until it holds (at most 10s).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// --- Claim skips what it must ---

// A paused webhook's deliveries are never claimed: neither those held by the
// pause (no due time) nor one with a due time, which a release before the
// results of paused webhooks were held left behind: the claim checks the
// webhook's status itself.
func testClaimSkipsPausedWebhooks(t *testing.T, e *env) {
	paused, active := e.webhook(alice, "https://a.example/paused", false), e.webhook(bob, "https://b.example/active", false)
	e.publish(e.st, "acme", 3)
	inFlight := of(paused.ID, e.claim(store.ClaimRequest{Limit: 1}))
	require.Len(t, inFlight, 1)
	_, err := e.st.PauseWebhook(ctx, alice, paused.ID, webhook.PauseReasonUser)
	require.NoError(t, err)
	e.record(retry(inFlight[0], e.clk.Now(), e.clk.Now().Add(time.Minute)))
	require.Nil(t, e.row(inFlight[0].DeliveryID).NextAttemptAt, "the retry after the pause is held")
	require.NoError(t, e.db.Exec("UPDATE deliveries SET next_attempt_at = ? WHERE id = ?", e.clk.Now(), inFlight[0].DeliveryID).Error)

	e.clk.Add(time.Hour)
	cs := e.claimAll()
	require.Len(t, cs, 3)
	require.Len(t, of(active.ID, cs), 3, "only the active webhook's")
	require.Zero(t, e.leased(paused.ID))
}

func testClaimSkipsExcluded(t *testing.T, e *env) {
	a, b, c := e.webhook(alice, "https://a.example/h", false), e.webhook(bob, "https://b.example/h", false), e.webhook(carol, "https://c.example/h", false)
	e.publish(e.st, "acme", 2)
	e.publish(e.st, "globex", 2)

	cs := e.claim(store.ClaimRequest{Limit: 100, ExcludeWebhooks: []string{a.ID}})
	require.Len(t, cs, 4)
	require.Empty(t, of(a.ID, cs))
	require.Zero(t, e.leased(a.ID), "excluded rows are not leased")
	e.expire(ids(cs)...)

	cs = e.claim(store.ClaimRequest{Limit: 100, ExcludeTenants: []string{"acme"}})
	require.Len(t, cs, 2)
	require.Len(t, of(c.ID, cs), 2)
	require.Zero(t, e.leased(a.ID)+e.leased(b.ID))
	e.expire(ids(cs)...)

	cs = e.claim(store.ClaimRequest{Limit: 100, ExcludeWebhooks: []string{b.ID}, ExcludeTenants: []string{"globex"}})
	require.Len(t, cs, 2)
	require.Len(t, of(a.ID, cs), 2)
	e.expire(ids(cs)...)

	require.Empty(t, e.claim(store.ClaimRequest{Limit: 100, ExcludeWebhooks: []string{a.ID, b.ID}, ExcludeTenants: []string{"globex"}}))
	require.Len(t, e.claimAll(), 6)
}

func testClaimSkipsLeased(t *testing.T, e *env) {
	w := e.webhook(alice, "https://a.example/h", false)
	e.publish(e.st, "acme", 3)
	d := e.deliveryIDs(w.ID)
	first := e.claim(store.ClaimRequest{Limit: 2})
	require.Equal(t, d[:2], ids(first))
	require.Equal(t, d[2:], ids(e.claimAll()), "the leased ones are skipped")
	require.Empty(t, e.claimAll())
	other := e.open(e.clk.Now)
	cs, err := other.Claim(ctx, store.ClaimRequest{Limit: 10, Lease: lease})
	require.NoError(t, err)
	require.Empty(t, cs, "nor does another instance take them")

	if !e.pg {
		// SQLite: the lease ends on the store's clock, at its end exactly.
		e.clk.Add(lease - time.Microsecond)
		require.Empty(t, e.claimAll())
		e.clk.Add(time.Microsecond)
	} else {
		e.expire(first[0].DeliveryID)
	}
	again := e.claimAll()
	require.NotEmpty(t, again)
	require.Equal(t, d[0], again[0].DeliveryID)
	require.Equal(t, first[0].ClaimSeq+1, again[0].ClaimSeq, "a takeover is a new claim")
}

func testClaimSkipsNotDue(t *testing.T, e *env) {
	w := e.webhook(alice, "https://a.example/h", false)
	e.publish(e.st, "acme", 2)
	d := e.deliveryIDs(w.ID)
	e.clk.Set(e.t0.Add(-time.Second))
	require.Empty(t, e.claimAll(), "published after now")
	e.clk.Set(e.t0)
	cs := e.claimAll()
	require.Equal(t, d, ids(cs))

	e.record(retry(cs[0], e.t0, e.t0.Add(time.Minute)), retry(cs[1], e.t0, e.t0.Add(2*time.Minute)))
	e.clk.Set(e.t0.Add(time.Minute - time.Microsecond))
	require.Empty(t, e.claimAll())
	e.clk.Set(e.t0.Add(time.Minute))
	cs = e.claimAll()
	require.Equal(t, d[:1], ids(cs), "due at its retry time exactly")
	e.record(delivered(cs[0], e.clk.Now()))
	e.clk.Set(e.t0.Add(90 * time.Second))
	require.Empty(t, e.claimAll())
	e.clk.Set(e.t0.Add(2 * time.Minute))
	require.Equal(t, d[1:], ids(e.claimAll()))
}

// DELIVERED and FAILED rows are never claimed, even with a due time left.
func testClaimSkipsFinished(t *testing.T, e *env) {
	w := e.webhook(alice, "https://a.example/h", false)
	e.publish(e.st, "acme", 3)
	d := e.deliveryIDs(w.ID)
	cs := e.claim(store.ClaimRequest{Limit: 2})
	e.record(delivered(cs[0], e.t0), failed(cs[1], e.t0))
	require.Equal(t, d[2:], ids(e.claimAll()))
	e.expire(d[2])
	require.NoError(t, e.db.Exec("UPDATE deliveries SET next_attempt_at = ?, leased_until = NULL WHERE webhook_id = ?", e.t0.Add(-time.Hour), w.ID).Error)
	require.Equal(t, d[2:], ids(e.claimAll()), "only the pending one")
}

// Oldest due first: by due time, then by id.
func testClaimOldestDueFirst(t *testing.T, e *env) {
	w := e.webhook(alice, "https://a.example/h", false)
	for i := range 3 {
		e.clk.Set(e.t0.Add(time.Duration(i) * time.Second))
		e.publish(e.st, "acme", 1)
	}
	d := e.deliveryIDs(w.ID)
	first := e.claim(store.ClaimRequest{Limit: 1})
	require.Equal(t, d[:1], ids(first))
	e.record(retry(first[0], e.t0, e.t0.Add(10*time.Second)))
	e.clk.Set(e.t0.Add(20 * time.Second))
	require.Equal(t, d[1:3], ids(e.claim(store.ClaimRequest{Limit: 2})), "d1 is due later than d2 and d3")
	require.Equal(t, d[:1], ids(e.claim(store.ClaimRequest{Limit: 2})))
}

func testClaimReturnsWhatSendingNeeds(t *testing.T, e *env) {
	a := e.webhook(alice, "https://a.example/h?x=1", false)
	o := e.webhook(olga, "https://o.example/h", true)
	evA := e.publish(e.st, "acme", 1)[0]
	evO := e.publish(e.st, "ordered", 1)[0]
	before := e.dbNow()
	cs := e.claimAll()
	after := e.dbNow()
	require.Len(t, cs, 2)
	for _, c := range cs {
		w, ev, owner := a, evA, alice
		if c.WebhookID == o.ID {
			w, ev, owner = o, evO, olga
		}
		require.Equal(t, w.ID, c.WebhookID)
		require.Equal(t, ev, c.EventID)
		require.Equal(t, owner.TenantID, c.TenantID)
		require.Equal(t, owner.UserID, c.UserID)
		require.Equal(t, w.Ordered, c.Ordered)
		require.Equal(t, w.URL, c.URL)
		require.Equal(t, w.Secret, c.Secret, "the opened secret")
		require.EqualValues(t, 1, c.ClaimSeq)
		require.Zero(t, c.Attempts)
		require.Zero(t, c.SchedulePos)
		var env store.Envelope
		require.NoError(t, json.Unmarshal(c.Payload, &env))
		require.Equal(t, ev, env.ID)
		require.Equal(t, "order.created", env.Type)
		require.JSONEq(t, `{"n":0}`, string(env.Data))
		require.Equal(t, time.UTC, c.LeasedUntil.Location())
		require.False(t, c.LeasedUntil.Before(before.Add(lease)), "leased until now+lease on the database's clock")
		require.False(t, c.LeasedUntil.After(after.Add(lease)))
	}
	// After a retry the claim carries the attempts made and the schedule used.
	e.record(retry(cs[0], e.t0, e.t0))
	e.expire(cs[1].DeliveryID)
	again := e.claimAll()
	require.Len(t, again, 2)
	require.Equal(t, 1, again[0].Attempts)
	require.Equal(t, 1, again[0].SchedulePos)
	require.Zero(t, again[1].Attempts)
	require.EqualValues(t, 2, again[1].ClaimSeq)
}

// dbNow is now on the clock leases are on.
func (e *env) dbNow() time.Time {
	e.t.Helper()
	if !e.pg {
		return e.clk.Now()
	}
	var now time.Time
	require.NoError(e.t, e.db.Raw("SELECT now()").Scan(&now).Error)
	return now.UTC().Truncate(time.Microsecond)
}

func testClaimLimit(t *testing.T, e *env) {
	w := e.webhook(alice, "https://a.example/h", false)
	e.publish(e.st, "acme", 5)
	d := e.deliveryIDs(w.ID)
	require.Empty(t, e.claim(store.ClaimRequest{Limit: 0}))
	require.Empty(t, e.claim(store.ClaimRequest{Limit: -1}))
	require.Zero(t, e.leased(w.ID))
	require.Equal(t, d[:3], ids(e.claim(store.ClaimRequest{Limit: 3})))
	require.EqualValues(t, 3, e.leased(w.ID))
	require.Equal(t, d[3:], ids(e.claim(store.ClaimRequest{Limit: 3})))
}

// --- A stale fence is ignored every time ---

// A result of a claim whose lease ended and was taken over writes nothing to
// the delivery, whatever it says, however often it comes; the attempt it made
// is logged (it happened: the receiver saw it), its outcome is not the
// delivery's. The current claim's result is applied.
func testStaleAfterExpiry(t *testing.T, e *env) {
	w := e.webhook(alice, "https://a.example/h", false)
	e.publish(e.st, "acme", 1)
	d := e.deliveryIDs(w.ID)[0]
	stale := e.first(e.claimAll())
	require.EqualValues(t, 1, stale.ClaimSeq)
	e.expire(d)
	current := e.claimAll()
	require.Len(t, current, 1)
	require.EqualValues(t, 2, current[0].ClaimSeq)
	want := e.row(d)
	require.NotNil(t, want.LeasedUntil)

	for i, r := range []store.Result{
		delivered(stale, e.t0), failed(stale, e.t0), retry(stale, e.t0, e.t0.Add(time.Hour)), released(stale), delivered(stale, e.t0),
	} {
		e.record(r)
		require.Equal(t, want, e.row(d), "stale result %d changed the delivery", i)
	}
	require.EqualValues(t, 4, e.attemptsLogged(d), "the stale attempts are logged, the release is no attempt")
	require.True(t, e.startable(time.Second, current[0])[d], "the current claim is still startable")

	e.record(delivered(current[0], e.t0))
	got := e.row(d)
	require.Equal(t, store.StatusDelivered, got.Status)
	require.Equal(t, 1, got.Attempts, "the count is the current claim's")
	require.Nil(t, got.LeasedUntil)
	require.EqualValues(t, 4, e.attemptsLogged(d), "the delivery's row is the log of its successful attempt")
}

// Redeliver moves the fence: the claim made before it is stale.
func testStaleAfterRedeliver(t *testing.T, e *env) {
	w := e.webhook(alice, "https://a.example/h", false)
	e.publish(e.st, "acme", 1)
	d := e.deliveryIDs(w.ID)[0]
	stale := e.first(e.claimAll())
	e.clk.Add(time.Second)
	e.redeliver(alice, w.ID, d)
	want := e.row(d)
	require.Equal(t, stale.ClaimSeq+1, want.ClaimSeq)
	require.Nil(t, want.LeasedUntil, "an unordered redelivery is claimable at once")
	for range 3 {
		e.record(delivered(stale, e.clk.Now()))
		e.record(released(stale))
		require.Equal(t, want, e.row(d))
	}
	current := e.claimAll()
	require.Len(t, current, 1)
	require.Equal(t, want.ClaimSeq+1, current[0].ClaimSeq)
	leasedNow := e.row(d)
	e.record(retry(stale, e.clk.Now(), e.clk.Now()))
	require.Equal(t, leasedNow, e.row(d), "nor after the next claim")
	e.record(delivered(current[0], e.clk.Now()))
	require.Equal(t, store.StatusDelivered, e.row(d).Status)
}

// --- An ordered webhook has one delivery leased at a time ---

func testOrderedOneAtATime(t *testing.T, e *env) {
	o := e.webhook(olga, "https://o.example/h", true)
	u := e.webhook(alice, "https://a.example/h", false)
	e.publish(e.st, "ordered", 5)
	e.publish(e.st, "acme", 5)
	d := e.deliveryIDs(o.ID)
	next := func() []int64 { t.Helper(); return ids(of(o.ID, e.claim(store.ClaimRequest{Limit: 10}))) }

	cs := e.claim(store.ClaimRequest{Limit: 10})
	require.Len(t, of(u.ID, cs), 5, "the unordered webhook is not held back")
	head := of(o.ID, cs)
	require.Equal(t, d[:1], ids(head), "only the oldest")
	require.Empty(t, next(), "nothing while it is leased")
	require.EqualValues(t, 1, e.leased(o.ID))

	// A lease that ends without a result: the same one again.
	e.expire(d[0])
	again := of(o.ID, e.claim(store.ClaimRequest{Limit: 10}))
	require.Equal(t, d[:1], ids(again))
	e.record(delivered(again[0], e.t0))

	second := of(o.ID, e.claim(store.ClaimRequest{Limit: 10}))
	require.Equal(t, d[1:2], ids(second), "the next after a delivery")
	e.record(retry(second[0], e.t0, e.t0.Add(time.Minute)))
	require.Empty(t, next(), "nothing until its retry is due, not the later ones")
	e.clk.Set(e.t0.Add(30 * time.Second))
	require.Empty(t, next())
	e.clk.Set(e.t0.Add(time.Minute))
	second = of(o.ID, e.claim(store.ClaimRequest{Limit: 10}))
	require.Equal(t, d[1:2], ids(second), "the retry when due")
	require.Equal(t, 1, second[0].Attempts)
	e.record(failed(second[0], e.clk.Now()))

	third := of(o.ID, e.claim(store.ClaimRequest{Limit: 10}))
	require.Equal(t, d[2:3], ids(third), "the next after a failure")

	// Redelivering an older one while one is in flight: no second lease.
	e.redeliver(olga, o.ID, d[0])
	require.Empty(t, next())
	require.EqualValues(t, 1, e.leased(o.ID))
	e.record(delivered(third[0], e.clk.Now()))
	first := of(o.ID, e.claim(store.ClaimRequest{Limit: 10}))
	require.Equal(t, d[:1], ids(first), "the redelivered one goes next")
	require.Empty(t, next())
	e.record(delivered(first[0], e.clk.Now()))
	require.Equal(t, d[3:4], next())
}

// Redelivering the delivery in flight keeps its lease: the attempt on the wire
// is not joined by another, and its result is stale.
func testOrderedRedeliverInFlight(t *testing.T, e *env) {
	o := e.webhook(olga, "https://o.example/h", true)
	e.publish(e.st, "ordered", 2)
	d := e.deliveryIDs(o.ID)
	inFlight := e.claimAll()
	require.Equal(t, d[:1], ids(inFlight))
	e.redeliver(olga, o.ID, d[0])
	require.NotNil(t, e.row(d[0]).LeasedUntil)
	require.Empty(t, e.claimAll())
	require.False(t, e.startable(time.Second, inFlight...)[d[0]], "the fence moved")
	e.record(delivered(inFlight[0], e.t0))
	require.Equal(t, store.StatusPending, e.row(d[0]).Status, "its result is stale")
	require.Empty(t, e.claimAll(), "the lease still holds the webhook")
	e.expire(d[0])
	again := e.claimAll()
	require.Equal(t, d[:1], ids(again))
	require.Equal(t, inFlight[0].ClaimSeq+2, again[0].ClaimSeq)
}

// A redelivery of an older delivery waits for a claim of the webhook under
// way, so that a claim that sees the redelivered one as the oldest also sees
// the lease just taken. A claim under way is an open transaction that leased
// the head (PostgreSQL; on SQLite the writer lock serialises them anyway).
func testOrderedRedeliverWaitsForClaims(t *testing.T, e *env) {
	if !e.pg {
		t.Skip("SQLite: one writer; a claim under way holds the database")
	}
	o := e.webhook(olga, "https://o.example/h", true)
	e.publish(e.st, "ordered", 3)
	d := e.deliveryIDs(o.ID)
	e.record(delivered(e.first(e.claimAll()), e.t0))

	raw := rawDB(t, e.url)
	tx, err := raw.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer tx.Rollback()
	_, err = tx.Exec("UPDATE deliveries SET leased_until = now() + interval '1 minute', claim_seq = claim_seq + 1 WHERE id = $1", d[1])
	require.NoError(t, err)
	var pid int
	require.NoError(t, tx.QueryRow("SELECT pg_backend_pid()").Scan(&pid))

	redelivered := make(chan error, 1)
	go func() {
		_, err := e.st.Redeliver(ctx, olga, o.ID, dlv(d[0]))
		redelivered <- err
	}()
	var done bool
	var redeliverErr error
	waitFor(t, "the redelivery to wait for the claim or to finish", func() bool {
		select {
		case redeliverErr = <-redelivered:
			done = true
			return true
		default:
		}
		var waiting int
		require.NoError(t, raw.QueryRow("SELECT COUNT(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", pid).Scan(&waiting))
		return waiting > 0
	})
	cs := e.claimAll()
	require.NoError(t, tx.Commit())
	if !done {
		redeliverErr = <-redelivered
	}
	require.NoError(t, redeliverErr)
	require.Empty(t, cs, "a claim meanwhile took a second delivery of the ordered webhook")
	require.Empty(t, e.claimAll())
	require.EqualValues(t, 1, e.leased(o.ID))
}

// Paused, an ordered webhook holds its deliveries; unpaused, it drains them
// one at a time, oldest first.
func testOrderedPauseUnpause(t *testing.T, e *env) {
	o := e.webhook(olga, "https://o.example/h", true)
	e.publish(e.st, "ordered", 3)
	e.record(delivered(e.first(e.claimAll()), e.t0))
	_, err := e.st.PauseWebhook(ctx, olga, o.ID, webhook.PauseReasonUser)
	require.NoError(t, err)
	e.publish(e.st, "ordered", 3)
	e.clk.Add(time.Hour)
	require.Empty(t, e.claimAll())
	_, err = e.st.UnpauseWebhook(ctx, olga, o.ID, 0)
	require.NoError(t, err)
	d := e.deliveryIDs(o.ID)
	var got []int64
	for {
		cs := e.claimAll()
		if len(cs) == 0 {
			break
		}
		require.Len(t, cs, 1)
		require.EqualValues(t, 1, e.leased(o.ID))
		got = append(got, cs[0].DeliveryID)
		e.record(delivered(cs[0], e.clk.Now()))
	}
	require.Equal(t, d[1:], got)
}

// Concurrent claims (and redeliveries) never hold two deliveries of an
// ordered webhook, and each claimed is its oldest pending.
func testOrderedConcurrentClaims(t *testing.T, e *env) {
	o := e.webhook(olga, "https://o.example/h", true)
	u := e.webhook(alice, "https://a.example/h", false)
	e.publish(e.st, "ordered", 40)
	e.publish(e.st, "acme", 40)
	stores := []*store.Store{e.st, e.open(e.clk.Now)}
	const workers = 8
	rounds := 40
	if !e.pg {
		rounds = 10 // one writer: nothing runs at once
	}
	type outcome struct {
		claims []store.Claim
		err    error
	}
	var deliveredOrdered []int64
	progress := 0
	for round := range rounds {
		start := make(chan struct{})
		outs := make(chan outcome, workers)
		redeliver := round%2 == 1 && len(deliveredOrdered) > 0
		for w := range workers {
			go func() {
				<-start
				if w == 0 && redeliver {
					_, err := stores[0].Redeliver(ctx, olga, o.ID, dlv(deliveredOrdered[0]))
					outs <- outcome{err: err}
					return
				}
				cs, err := stores[w%len(stores)].Claim(ctx, store.ClaimRequest{Limit: 10, Lease: lease})
				outs <- outcome{claims: cs, err: err}
			}()
		}
		close(start)
		var all []store.Claim
		for range workers {
			out := <-outs
			require.NoError(t, out.err)
			all = append(all, out.claims...)
		}
		if redeliver {
			deliveredOrdered = deliveredOrdered[1:]
		}
		ordered := of(o.ID, all)
		require.LessOrEqual(t, len(ordered), 1, "round %d: two deliveries of the ordered webhook claimed", round)
		require.LessOrEqual(t, e.leased(o.ID), int64(1), "round %d", round)
		var results []store.Result
		if len(ordered) == 1 {
			progress++
			if !redeliver { // else the claim may have come first, the redelivered one next
				var oldest int64
				require.NoError(t, e.db.Raw("SELECT MIN(id) FROM deliveries WHERE webhook_id = ? AND status = 'PENDING'", o.ID).Scan(&oldest).Error)
				require.Equal(t, oldest, ordered[0].DeliveryID, "round %d: not the oldest pending", round)
			}
			results = append(results, delivered(ordered[0], e.clk.Now()))
			deliveredOrdered = append(deliveredOrdered, ordered[0].DeliveryID)
		}
		for _, c := range of(u.ID, all) {
			results = append(results, retry(c, e.clk.Now(), e.clk.Now())) // due again at once: noise for the next round
		}
		if len(results) > 0 {
			e.record(results...)
		}
	}
	require.GreaterOrEqual(t, progress, rounds/2, "the ordered webhook hardly moved")
}

// A redelivery of an older delivery racing claims of the webhook's head:
// a claim whose statement began before the redelivery committed, and locked
// the head after it, must not keep the head beside the claim of the
// redelivered one. Statistical (the race is inside one statement), so many
// short rounds; PostgreSQL only (SQLite runs one transaction at a time).
func testOrderedRedeliverRace(t *testing.T, e *env) {
	if !e.pg {
		t.Skip("SQLite: one transaction at a time")
	}
	o := e.webhook(olga, "https://o.example/h", true)
	e.publish(e.st, "ordered", 5)
	d := e.deliveryIDs(o.ID)
	stores := []*store.Store{e.st, e.open(e.clk.Now), e.open(e.clk.Now)}
	const claimers = 16
	type outcome struct {
		claims []store.Claim
		err    error
	}
	for round := range 400 {
		// d[0] delivered, d[1] the head, nothing leased.
		require.NoError(t, e.db.Exec("UPDATE deliveries SET leased_until = NULL, status = 'PENDING', next_attempt_at = ? WHERE webhook_id = ?", e.t0, o.ID).Error)
		require.NoError(t, e.db.Exec("UPDATE deliveries SET status = 'DELIVERED', next_attempt_at = NULL WHERE id = ?", d[0]).Error)
		start := make(chan struct{})
		outs := make(chan outcome, claimers+1)
		go func() {
			<-start
			_, err := stores[0].Redeliver(ctx, olga, o.ID, dlv(d[0]))
			outs <- outcome{err: err}
		}()
		for w := range claimers {
			go func() {
				<-start
				time.Sleep(time.Duration(w%8) * 250 * time.Microsecond) // spread them over the redelivery
				cs, err := stores[w%len(stores)].Claim(ctx, store.ClaimRequest{Limit: 10, Lease: lease})
				outs <- outcome{claims: cs, err: err}
			}()
		}
		close(start)
		var all []store.Claim
		for range claimers + 1 {
			out := <-outs
			require.NoError(t, out.err)
			all = append(all, out.claims...)
		}
		require.LessOrEqual(t, len(all), 1, "round %d: claimed %v at once", round, ids(all))
		require.LessOrEqual(t, e.leased(o.ID), int64(1), "round %d", round)
	}
}

// --- Transitions leave no claimable row ---

func testPauseAndUnpause(t *testing.T, e *env) {
	w := e.webhook(alice, "https://a.example/h", false)
	other := e.webhook(bob, "https://b.example/h", false)
	e.publish(e.st, "acme", 3)
	d := e.deliveryIDs(w.ID)
	out := of(w.ID, e.claim(store.ClaimRequest{Limit: 2, ExcludeWebhooks: []string{other.ID}}))
	require.Equal(t, d[:2], ids(out))
	require.True(t, e.startable(time.Second, out...)[d[0]])

	_, err := e.st.PauseWebhook(ctx, alice, w.ID, webhook.PauseReasonUser)
	require.NoError(t, err)
	ok := e.startable(time.Second, out...)
	require.False(t, ok[d[0]] || ok[d[1]], "a paused webhook's claims do not start")
	for _, id := range d {
		require.Nil(t, e.row(id).NextAttemptAt, "held")
	}
	// The attempts under way when it paused end after it: a retry and a
	// release stay held, and keep nothing due that a claim would have to skip.
	e.record(retry(out[0], e.clk.Now(), e.clk.Now().Add(time.Minute)), released(out[1]))
	for _, id := range d {
		require.Nil(t, e.row(id).NextAttemptAt, "held after a result recorded during the pause")
		require.Equal(t, store.StatusPending, e.row(id).Status)
	}
	require.Equal(t, 1, e.row(d[0]).Attempts, "the attempt counts")
	e.expire(d...)
	e.clk.Add(time.Hour)
	require.Empty(t, of(w.ID, e.claimAll()))

	e.clk.Add(time.Hour)
	_, err = e.st.UnpauseWebhook(ctx, alice, w.ID, 0)
	require.NoError(t, err)
	for _, id := range d {
		next := e.row(id).NextAttemptAt
		require.NotNil(t, next, "due again at the unpause")
		require.Equal(t, e.clk.Now(), next.UTC())
	}
	var got []int64
	for range d {
		cs := e.claim(store.ClaimRequest{Limit: 1, ExcludeWebhooks: []string{other.ID}})
		require.Len(t, cs, 1)
		got = append(got, cs[0].DeliveryID)
	}
	require.Equal(t, d, got, "oldest first")
}

func testDelete(t *testing.T, e *env) {
	w := e.webhook(alice, "https://a.example/h", false)
	other := e.webhook(bob, "https://b.example/h", false)
	e.publish(e.st, "acme", 3)
	out := of(w.ID, e.claim(store.ClaimRequest{Limit: 10, ExcludeWebhooks: []string{other.ID}}))
	require.Len(t, out, 3)
	_, err := e.st.DeleteWebhook(ctx, alice, w.ID)
	require.NoError(t, err)
	ok := e.startable(time.Second, out...)
	require.Empty(t, ok, "a deleted webhook's claims do not start")
	e.clk.Add(time.Hour)
	cs := e.claimAll()
	require.Len(t, cs, 3)
	require.Len(t, of(other.ID, cs), 3)
	require.Empty(t, e.deliveryIDs(w.ID))
}

// Startable: only when the lease lasts at least within longer.
func testStartableLeaseBound(t *testing.T, e *env) {
	e.webhook(alice, "https://a.example/h", false)
	e.publish(e.st, "acme", 1)
	cs := e.claimAll()
	require.Len(t, cs, 1)
	id := cs[0].DeliveryID
	require.True(t, e.startable(lease/2, cs...)[id])
	require.False(t, e.startable(2*lease, cs...)[id], "the lease ends before the attempt would")
	if !e.pg {
		e.clk.Add(lease - time.Second)
		require.True(t, e.startable(time.Second, cs...)[id], "the lease ends at now+within exactly")
		require.False(t, e.startable(time.Second+time.Microsecond, cs...)[id])
	} else {
		e.expire(id)
		require.False(t, e.startable(0, cs...)[id], "an ended lease")
	}
}

// Startable: never for a claim whose fence moved.
func testStartableFence(t *testing.T, e *env) {
	w := e.webhook(alice, "https://a.example/h", false)
	e.publish(e.st, "acme", 2)
	cs := e.claimAll()
	require.Len(t, cs, 2)
	a, b := cs[0], cs[1]
	e.redeliver(alice, w.ID, a.DeliveryID)
	ok := e.startable(time.Second, a, b)
	require.False(t, ok[a.DeliveryID], "redelivered")
	require.True(t, ok[b.DeliveryID])

	e.expire(b.DeliveryID)
	taken := e.claimAll()
	require.Len(t, taken, 2)
	ok = e.startable(time.Second, append([]store.Claim{a, b}, taken...)...)
	require.Len(t, ok, 2)
	for _, c := range taken {
		require.True(t, ok[c.DeliveryID], "the current claims")
	}
	ok = e.startable(time.Second, a, b)
	require.False(t, ok[a.DeliveryID] || ok[b.DeliveryID], "the stale claims")

	e.record(delivered(taken[0], e.t0))
	require.False(t, e.startable(time.Second, taken[0])[taken[0].DeliveryID], "a recorded claim")
}

// A 410 Gone pauses the webhook (ENDPOINT_GONE) and holds its deliveries,
// the one answered too.
func testRecordGone(t *testing.T, e *env) {
	w := e.webhook(alice, "https://a.example/h", false)
	other := e.webhook(bob, "https://b.example/h", false)
	e.publish(e.st, "acme", 3)
	cs := e.claimAll()
	gone := e.first(of(w.ID, cs))
	r := retry(gone, e.t0, e.t0.Add(time.Minute))
	r.StatusCode, r.Error, r.Gone = 410, "HTTP 410", true
	results := []store.Result{r}
	for _, c := range of(other.ID, cs) {
		results = append(results, delivered(c, e.t0))
	}
	paused := e.record(results...)
	require.Equal(t, []store.Paused{{WebhookID: w.ID, Reason: webhook.PauseReasonEndpointGone}}, paused)
	got, err := e.st.GetWebhook(ctx, alice, w.ID)
	require.NoError(t, err)
	require.Equal(t, webhook.StatusPaused, got.Status)
	require.Equal(t, webhook.PauseReasonEndpointGone, got.PauseReason)
	for _, id := range e.deliveryIDs(w.ID) {
		row := e.row(id)
		require.Equal(t, store.StatusPending, row.Status)
		require.Nil(t, row.NextAttemptAt, "held")
	}
	row := e.row(gone.DeliveryID)
	require.Equal(t, 1, row.Attempts)
	require.NotNil(t, row.LastStatusCode)
	require.Equal(t, 410, *row.LastStatusCode)
	e.expire(ids(cs)...)
	e.clk.Add(time.Hour)
	require.Empty(t, e.claimAll())
	require.Empty(t, e.record(r), "a paused webhook is not paused again")
}

// Failures that last longer than the window pause the webhook
// (DELIVERY_FAILURES); a success starts the streak over.
func testRecordAutoPause(t *testing.T, e *env) {
	const window = time.Hour
	w := e.webhook(alice, "https://a.example/h", false)
	healed := e.webhook(bob, "https://b.example/h", false)
	e.publish(e.st, "acme", 1)
	// record claims the oldest due delivery of hook and records r for it.
	record := func(hook, other webhook.Webhook, r func(store.Claim) store.Result) []store.Paused {
		t.Helper()
		cs := e.claim(store.ClaimRequest{Limit: 1, ExcludeWebhooks: []string{other.ID}})
		require.Len(t, cs, 1)
		require.Equal(t, hook.ID, cs[0].WebhookID)
		p, err := e.st.Record(ctx, []store.Result{r(cs[0])}, window)
		require.NoError(t, err)
		return p
	}
	fail := func(c store.Claim) store.Result { return retry(c, e.clk.Now(), e.clk.Now()) }
	succeed := func(c store.Claim) store.Result { return delivered(c, e.clk.Now()) }

	require.Empty(t, record(w, healed, fail))
	require.Empty(t, record(healed, w, fail))
	e.clk.Add(window / 2)
	require.Empty(t, record(w, healed, fail))
	require.Empty(t, record(healed, w, succeed))
	e.publish(e.st, "acme", 1)
	require.Empty(t, record(healed, w, fail), "a success started the streak over")
	e.clk.Add(window/2 + time.Second)
	require.Empty(t, record(healed, w, fail), "failing for half the window")
	paused := record(w, healed, fail)
	require.Equal(t, []store.Paused{{WebhookID: w.ID, Reason: webhook.PauseReasonDeliveryFailures}}, paused)
	got, err := e.st.GetWebhook(ctx, alice, w.ID)
	require.NoError(t, err)
	require.Equal(t, webhook.StatusPaused, got.Status)
	require.Equal(t, webhook.PauseReasonDeliveryFailures, got.PauseReason)
	for _, id := range e.deliveryIDs(w.ID) {
		require.Nil(t, e.row(id).NextAttemptAt, "held")
	}
	h, err := e.st.GetWebhook(ctx, bob, healed.ID)
	require.NoError(t, err)
	require.Equal(t, webhook.StatusActive, h.Status)
}

// --- Leases are on one clock ---

// On PostgreSQL a lease is written and read on the database's clock: an
// instance whose clock is behind writes a lease the others respect, and one
// whose clock is ahead does not take over a live lease. On SQLite the store's
// clock is the one clock: a lease ends when it says, exactly.
func testLeasesOnOneClock(t *testing.T, e *env) {
	e.webhook(alice, "https://a.example/h", false)
	if !e.pg {
		e.publish(e.st, "acme", 1)
		cs := e.claimAll()
		require.Equal(t, e.clk.Now().Add(lease), cs[0].LeasedUntil)
		e.clk.Add(lease - time.Microsecond)
		require.Empty(t, e.claimAll())
		e.clk.Add(time.Microsecond)
		require.Len(t, e.claimAll(), 1)
		return
	}
	behind := e.open(func() time.Time { return time.Now().Add(-10 * time.Minute) })
	right := e.open(time.Now)
	ahead := e.open(func() time.Time { return time.Now().Add(10 * time.Minute) })
	claim := func(st *store.Store) []store.Claim {
		t.Helper()
		cs, err := st.Claim(ctx, store.ClaimRequest{Limit: 10, Lease: lease})
		require.NoError(t, err)
		return cs
	}
	startable := func(st *store.Store, cs []store.Claim) map[int64]bool {
		t.Helper()
		refs := make([]store.ClaimRef, len(cs))
		for i, c := range cs {
			refs[i] = store.ClaimRef{DeliveryID: c.DeliveryID, ClaimSeq: c.ClaimSeq}
		}
		ok, err := st.Startable(ctx, refs, lease/2)
		require.NoError(t, err)
		return ok
	}
	e.publish(behind, "acme", 3) // due on every clock
	before := e.dbNow()
	cs := claim(behind)
	require.Len(t, cs, 3)
	for _, c := range cs {
		require.False(t, c.LeasedUntil.Before(before.Add(lease)), "the lease is on the database's clock")
	}
	require.Empty(t, claim(right), "the lease of a store whose clock is behind holds")
	require.Empty(t, claim(ahead))
	for _, st := range []*store.Store{behind, right, ahead} {
		ok := startable(st, cs)
		require.Len(t, ok, 3)
		for _, c := range cs {
			require.True(t, ok[c.DeliveryID])
		}
	}

	e.expire(ids(cs)...)
	cs = claim(right)
	require.Len(t, cs, 3)
	require.Empty(t, claim(ahead), "a store whose clock is ahead does not take over a live lease")
	require.Empty(t, claim(behind))
}

// --- Publish ---

// An event and its deliveries are stored in one transaction: a publish that
// fails leaves neither, and does not take the publishes beside it down.
func testPublishAtomic(t *testing.T, e *env) {
	e.webhook(alice, "https://a.example/h", false)
	e.webhook(bob, "https://b.example/h", false)
	if e.pg {
		require.NoError(t, e.db.Exec(`CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RAISE EXCEPTION ''boom''; END'`).Error)
		require.NoError(t, e.db.Exec(`CREATE TRIGGER boom BEFORE INSERT ON deliveries FOR EACH ROW WHEN (NEW.event_type = 'order.boom') EXECUTE FUNCTION boom()`).Error)
	} else {
		require.NoError(t, e.db.Exec(`CREATE TRIGGER boom BEFORE INSERT ON deliveries WHEN NEW.event_type = 'order.boom' BEGIN SELECT RAISE(ABORT, 'boom'); END`).Error)
	}
	count := func(table, where string) int64 {
		t.Helper()
		var n int64
		require.NoError(t, e.db.Raw("SELECT COUNT(*) FROM "+table+" WHERE "+where).Scan(&n).Error)
		return n
	}
	_, err := e.st.Publish(ctx, store.Event{TenantID: "acme", Type: "order.boom", Data: json.RawMessage(`{}`)})
	require.ErrorContains(t, err, "boom")
	require.Zero(t, count("events", "type = 'order.boom'"), "the event went without its deliveries")

	// Side by side (likely in one group commit), the good ones still commit.
	const good = 10
	errs := make(chan error, good+1)
	for i := range good + 1 {
		typ := "order.created"
		if i == good/2 {
			typ = "order.boom"
		}
		go func() {
			_, err := e.st.Publish(ctx, store.Event{TenantID: "acme", Type: typ, Data: json.RawMessage(`{}`)})
			if typ == "order.boom" && err != nil {
				err = nil
			} else if typ == "order.boom" {
				err = errors.New("the failing publish succeeded")
			}
			errs <- err
		}()
	}
	for range good + 1 {
		require.NoError(t, <-errs)
	}
	require.Zero(t, count("events", "type = 'order.boom'"))
	require.Zero(t, count("deliveries", "event_type = 'order.boom'"))
	require.EqualValues(t, good, count("events", "type = 'order.created'"))
	require.EqualValues(t, 2*good, count("deliveries", "event_type = 'order.created'"))
}

// A publish whose caller has gone returns at once with the context's error;
// one cancelled before it starts stores nothing; the writer it leaves behind
// finishes, and the store closes.
func testPublishCancelled(t *testing.T, e *env) {
	e.webhook(alice, "https://a.example/h", false)
	woken := make(chan struct{}, 100)
	e.st.OnSignal(func(s store.Signal) {
		if s.Channel == store.DeliveriesChannel {
			select {
			case woken <- struct{}{}:
			default:
			}
		}
	})
	gone, cancel := context.WithCancel(ctx)
	cancel()
	for range 20 {
		_, err := e.st.Publish(gone, store.Event{TenantID: "nobody", Type: "order.created", Data: json.RawMessage(`{}`)})
		require.ErrorIs(t, err, context.Canceled)
	}
	e.publish(e.st, "acme", 8) // after what a writer may have taken meanwhile
	var n int64
	require.NoError(t, e.db.Raw("SELECT COUNT(*) FROM events WHERE tenant_id = 'nobody'").Scan(&n).Error)
	require.Zero(t, n, "a publish cancelled before it began stored its event")
	for len(woken) > 0 {
		<-woken
	}

	// Hold the writers up: another connection holds the lock they need.
	raw := rawDB(t, e.url)
	conn, err := raw.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	var pid int
	if e.pg {
		_, err = conn.ExecContext(ctx, "BEGIN")
		require.NoError(t, err)
		_, err = conn.ExecContext(ctx, "LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
		require.NoError(t, err)
		require.NoError(t, conn.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid))
	} else {
		_, err = conn.ExecContext(ctx, "BEGIN IMMEDIATE")
		require.NoError(t, err)
	}
	waiting, cancel := context.WithCancel(ctx)
	defer cancel()
	returned := make(chan error, 1)
	go func() {
		_, err := e.st.Publish(waiting, store.Event{TenantID: "acme", Type: "order.created", Data: json.RawMessage(`{}`)})
		returned <- err
	}()
	if e.pg {
		waitFor(t, "the writer to wait for the lock", func() bool {
			var n int
			require.NoError(t, raw.QueryRow("SELECT COUNT(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", pid).Scan(&n))
			return n > 0
		})
	} else {
		time.Sleep(50 * time.Millisecond) // SQLite shows no waiter; it is waiting for the lock or about to
	}
	cancel()
	select {
	case err := <-returned:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(2 * time.Second):
		t.Fatal("Publish kept waiting after its context was cancelled")
	}
	_, err = conn.ExecContext(ctx, "ROLLBACK")
	require.NoError(t, err)
	// The abandoned publish commits now, and its delivery is due: the
	// workers are woken for it although its caller is gone.
	select {
	case <-woken:
	case <-time.After(15 * time.Second):
		t.Fatal("the abandoned publish committed without waking the delivery workers")
	}
	require.NoError(t, e.db.Raw("SELECT COUNT(*) FROM events WHERE tenant_id = 'acme'").Scan(&n).Error)
	require.EqualValues(t, 9, n)
	closed := make(chan error, 1)
	go func() { closed <- e.st.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Close waits for a writer stuck with an abandoned publish")
	}
}

// Two instances on one database (on SQLite: the server and the CLI) write at
// once: a transaction that reads before it writes waits for the other's write
// instead of failing (SQLITE_BUSY).
func testTwoInstancesWrite(t *testing.T, e *env) {
	o := e.webhook(olga, "https://o.example/h", true)
	e.publish(e.st, "ordered", 3)
	first := e.first(e.claimAll())
	e.record(delivered(first, e.t0))
	other := e.open(e.clk.Now)
	stop, failed := make(chan struct{}), make(chan error, 1)
	go func() {
		defer close(failed)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := other.Claim(ctx, store.ClaimRequest{Limit: 10, Lease: time.Microsecond}); err != nil {
				failed <- err
				return
			}
			time.Sleep(time.Millisecond) // an instance polls; a tight loop would starve the other past busy_timeout
		}
	}()
	for range 50 {
		_, err := e.st.Redeliver(ctx, olga, o.ID, dlv(first.DeliveryID))
		require.NoError(t, err)
		_, err = e.st.PauseWebhook(ctx, olga, o.ID, webhook.PauseReasonUser)
		require.NoError(t, err)
		_, err = e.st.UnpauseWebhook(ctx, olga, o.ID, 0)
		require.NoError(t, err)
	}
	close(stop)
	require.NoError(t, <-failed)
}
