package delivery_test

import (
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookferry/hookferry/delivery"
	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/stretchr/testify/require"
)

// Leases are on one clock, the database's: the gate compares them there, so
// a dispatcher's own clock, however wrong, cannot start an attempt on a
// lease that would run out under it, nor can it take over a live one. The
// tests move leases in SQL and clocks by hand instead of racing real time.

// eachBackendClocked is eachBackend with a store on clock (on SQLite, the
// database's clock too).
func eachBackendClocked(t *testing.T, clock func() time.Time, body func(t *testing.T, e *env)) {
	t.Helper()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			body(t, newEnv(t, be.URL(t), clock))
		})
	}
}

// oneOnTheWire: a webhook with one slot, its first request held until
// release is closed, and the claims of three more waiting in memory.
func oneOnTheWire(t *testing.T, e *env, release chan struct{}, cfg delivery.Config, sc delivery.SenderConfig) (*receiver, *runner, []store.Claim) {
	t.Helper()
	rc := e.receiver(firstHeld(release))
	e.publish(owner.TenantID, "order.created", 4)
	cfg.PerWebhook = 1
	run := e.run(cfg, sc)
	claims := run.claims(4, of(rc))
	rc.take(1)
	run.flush(true) // no claim round under way: the tests change the waiting claims' leases next
	started := filter(run.started.now(), of(rc))
	require.Equal(t, 1, len(started))
	return rc, run, waiting(claims, started)
}

// TestGateRefusesAShortLease: claims whose lease, on the database's clock,
// no longer outlasts an attempt are given back by the gate, not attempted;
// the dispatcher's clock (30 minutes fast) and the store's (an hour slow)
// change nothing. Claimed again, they are delivered once each.
func TestGateRefusesAShortLease(t *testing.T) {
	t.Parallel()
	slow := func() time.Time { return time.Now().Add(-time.Hour) }
	fast := func() time.Time { return time.Now().Add(30 * time.Minute) }
	eachBackendClocked(t, slow, func(t *testing.T, e *env) {
		release := make(chan struct{})
		// An attempt may take a minute: a lease must outlast the database's
		// now by 61 s for one to start.
		rc, run, wait := oneOnTheWire(t, e, release, delivery.Config{Now: fast}, delivery.SenderConfig{Timeout: time.Minute})

		e.setLeases(30*time.Second, ids(wait)...)
		close(release)
		run.givenBack(delivery.BackGate, wait, rc)
		rc.take(4)
		run.results("all four delivered", 4, resultOf(rc, store.StatusDelivered))
		for _, d := range e.deliveries(rc) {
			require.Equal(t, 1, d.Attempts, "delivered once, on a claim with a full lease")
		}
	})
}

// TestClaimThatWaitedTooLongIsGivenBack: a claim still waiting when its lease
// would no longer outlast an attempt (by the dispatcher's clock, which the
// test moves) is given back before it reaches the gate, keeping its due time.
func TestClaimThatWaitedTooLongIsGivenBack(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		var skew atomic.Int64
		now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
		release := make(chan struct{})
		lease, timeout := time.Minute, 5*time.Second
		rc, run, wait := oneOnTheWire(t, e, release, delivery.Config{Now: now, Lease: lease, PollInterval: 20 * time.Millisecond},
			delivery.SenderConfig{Timeout: timeout})

		// Later than the lease less an attempt's margin (6 s), earlier than
		// the lease's end.
		skew.Store(int64(lease - timeout))
		run.givenBack(delivery.BackExpired, wait, rc)
		run.results("given back", len(wait), released(wait))
		for _, id := range ids(wait) {
			r, ok := e.row(id)
			require.True(t, ok)
			// (It may be claimed again by now.)
			require.Equal(t, row{Status: store.StatusPending, Due: true, Leased: r.Leased, ClaimSeq: r.ClaimSeq}, r, "nothing charged, still due")
		}
		close(release)
		rc.take(4)
		run.results("all four delivered", 4, resultOf(rc, store.StatusDelivered))
	})
}

// TestLiveLeasesAreNotTakenOver: a second dispatcher whose clocks run an hour
// fast does not take over the claims a first one holds on PostgreSQL: the
// leases end on the database's clock.
func TestLiveLeasesAreNotTakenOver(t *testing.T) {
	t.Parallel()
	onPostgres(t, func(t *testing.T, e *env) {
		rc := e.receiver(hanging())
		e.publish(owner.TenantID, "order.created", 3)
		run := e.run(delivery.Config{}, delivery.SenderConfig{Timeout: time.Minute})
		run.claims(3, of(rc))
		rc.take(3)

		fast := func() time.Time { return time.Now().Add(time.Hour) }
		second := start(t, openStore(t, e.url, fast), delivery.Config{Now: fast}, delivery.SenderConfig{}, nil)
		second.claimed.until(t, "the second dispatcher's first claim", func(bs [][]store.Claim) bool { return len(bs) > 0 })
		require.Empty(t, filter(second.claimedNow(), of(rc)), "live leases are not taken over")
	})
}

// TestTakenOverClaimIsNotStarted: claims whose lease ran out while they
// waited and which another worker then claimed are not started (their
// claim_seq is no longer the delivery's), and giving them back leaves the
// other worker's claim alone.
func TestTakenOverClaimIsNotStarted(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		release := make(chan struct{})
		rc, run, wait := oneOnTheWire(t, e, release, delivery.Config{}, delivery.SenderConfig{})

		// The other worker's claim, in one statement: with the lease first
		// ended and then claimed, this dispatcher could claim some of them
		// itself in between.
		e.takeOver(time.Hour, ids(wait)...)
		close(release)
		run.givenBack(delivery.BackGate, wait, rc)
		run.results("given back with the old claim_seq", len(wait), released(wait))
		run.flush(true)
		for _, c := range wait {
			r, ok := e.row(c.DeliveryID)
			require.True(t, ok)
			require.Equal(t, row{Status: store.StatusPending, Due: true, Leased: true, ClaimSeq: c.ClaimSeq + 1}, r,
				"still the other worker's")
		}
		require.Equal(t, 1, len(rc.events()))
	})
}

// TestExpiredLeaseIsTakenOver: a worker that claimed deliveries and died
// leaves them leased; once the lease has run out (moved in SQL) another
// dispatcher delivers them, and the dead worker's late result, written with
// its old claim_seq, changes nothing.
func TestExpiredLeaseIsTakenOver(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		rc := e.receiver()
		events := e.publish(owner.TenantID, "order.created", 5)
		claims, err := e.store.Claim(ctx, store.ClaimRequest{Limit: 10, Lease: time.Hour}) // the worker that dies
		require.NoError(t, err)
		require.Equal(t, 5, len(claims))
		again, err := e.store.Claim(ctx, store.ClaimRequest{Limit: 10, Lease: time.Hour})
		require.NoError(t, err)
		require.Empty(t, again, "leased deliveries are not claimed twice")

		e.setLeases(-time.Second, ids(claims)...)
		run := e.run(delivery.Config{}, delivery.SenderConfig{})
		rc.take(5)
		require.Equal(t, sorted(events), sorted(rc.events()))
		run.results("taken over and delivered", 5, resultOf(rc, store.StatusDelivered))

		_, err = e.store.Record(ctx, []store.Result{{DeliveryID: claims[0].DeliveryID, ClaimSeq: claims[0].ClaimSeq,
			WebhookID: rc.hook.ID, Status: store.StatusFailed, Attempted: true, AttemptedAt: time.Now(), Error: "stale"}}, time.Hour)
		require.NoError(t, err)
		ds := e.deliveries(rc)
		sort.Slice(ds, func(i, j int) bool { return ds[i].ID < ds[j].ID })
		for _, d := range ds {
			require.Equal(t, store.StatusDelivered, d.Status, "the late result is ignored")
			require.Equal(t, 1, d.Attempts)
		}
	})
}
