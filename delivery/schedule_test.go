package delivery

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/webhook"
	"github.com/stretchr/testify/require"
)

// The scheduler is plain data: these tests drive it by hand.

type schedTest struct {
	t       *testing.T
	s       *scheduler
	next    int64
	started []*attempt // every attempt started
}

func newSchedTest(t *testing.T, cfg scheduleConfig) *schedTest {
	return &schedTest{t: t, s: newScheduler(cfg)}
}

// queue adds n claims of webhook hook (tenant/user), startBy an hour away.
func (st *schedTest) queue(tenant, user, hook string, n int) []*attempt {
	return st.queueOrdered(tenant, user, hook, n, false)
}

func (st *schedTest) queueOrdered(tenant, user, hook string, n int, ordered bool) []*attempt {
	var out []*attempt
	for range n {
		st.next++
		a := &attempt{Claim: store.Claim{DeliveryID: st.next, WebhookID: hook, TenantID: tenant, UserID: user, Ordered: ordered},
			startBy: time.Unix(3600, 0)}
		require.True(st.t, st.s.add(a), "%s has room for claim %d", hook, st.next)
		out = append(out, a)
	}
	return out
}

// start takes every attempt the scheduler lets start now.
func (st *schedTest) start() []*attempt {
	var out []*attempt
	for a := st.s.next(); a != nil; a = st.s.next() {
		out = append(out, a)
	}
	st.started = append(st.started, out...)
	return out
}

func (st *schedTest) startOne() *attempt {
	st.t.Helper()
	a := st.s.next()
	require.NotNil(st.t, a, "an attempt can start")
	st.started = append(st.started, a)
	return a
}

// inFlight returns an attempt of hook in flight, starting what can start.
func (st *schedTest) inFlight(hook string) *attempt {
	st.t.Helper()
	st.start()
	for _, a := range st.started {
		if a.running && a.WebhookID == hook {
			return a
		}
	}
	st.t.Fatalf("nothing of %s in flight", hook)
	return nil
}

func (st *schedTest) limit(hook string) int { return st.s.hooks[hook].limit }

func countBy(as []*attempt, key func(*attempt) string) map[string]int {
	m := map[string]int{}
	for _, a := range as {
		m[key(a)]++
	}
	return m
}

func byTenant(a *attempt) string { return a.TenantID }
func byUser(a *attempt) string   { return a.TenantID + "/" + a.UserID }
func byHook(a *attempt) string   { return a.WebhookID }
func byLane(a *attempt) string   { return fmt.Sprint(a.lane) }

var wide = scheduleConfig{Workers: 6, HeldBackWorkers: 2, PerTenant: 6, PerUser: 6, PerWebhook: 16}

func TestPickFavoursTheTenantWithFewerInFlight(t *testing.T) {
	t.Parallel()
	st := newSchedTest(t, wide)
	st.queue("a", "u", "a1", 4)
	st.queue("a", "u", "a2", 4)
	st.queue("b", "u", "b1", 4)
	st.queue("b", "u", "b2", 4)
	started := st.start()
	require.Equal(t, map[string]int{"a": 3, "b": 3}, countBy(started, byTenant), "taking turns")

	// b's attempt ends: b has fewer in flight, so b goes next.
	for _, a := range started {
		if a.TenantID == "b" {
			st.s.finished(a, fastSuccess, time.Time{})
			break
		}
	}
	require.Equal(t, "b", st.startOne().TenantID)
	require.Nil(t, st.s.next(), "the lane is full")
}

func TestPickFavoursTheUserThenTheWebhookWithFewerInFlight(t *testing.T) {
	t.Parallel()
	st := newSchedTest(t, scheduleConfig{Workers: 4, HeldBackWorkers: 1, PerTenant: 4, PerUser: 4, PerWebhook: 16})
	st.queue("a", "u1", "h1", 4)
	st.queue("a", "u1", "h2", 4)
	st.queue("a", "u2", "h3", 4)
	started := st.start()
	require.Equal(t, map[string]int{"a/u1": 2, "a/u2": 2}, countBy(started, byUser))
	require.Equal(t, map[string]int{"h1": 1, "h2": 1, "h3": 2}, countBy(started, byHook))
}

func TestPickRespectsTheShares(t *testing.T) {
	t.Parallel()
	st := newSchedTest(t, scheduleConfig{Workers: 8, HeldBackWorkers: 4, PerTenant: 3, PerUser: 2, PerWebhook: 16})
	st.queue("a", "u1", "x", 5)
	st.queue("a", "u1", "y", 5)
	require.Equal(t, 2, len(st.start()), "PerUser")
	st.queue("a", "u2", "z", 5)
	require.Equal(t, 1, len(st.start()), "PerTenant: the tenant's third")
	require.Nil(t, st.s.next())
	st.queue("b", "u1", "w", 5)
	st.queue("b", "u2", "v", 5)
	require.Equal(t, map[string]int{"b": 3}, countBy(st.start(), byTenant), "another tenant has its own share")

	// The held-back lane: half the tenant's share (PerTenant/2 = 1).
	st2 := newSchedTest(t, scheduleConfig{Workers: 8, HeldBackWorkers: 4, PerTenant: 3, PerUser: 8, PerWebhook: 16})
	for _, h := range []string{"p", "q"} {
		first := st2.queue("c", "u", h, 3)[0]
		require.Equal(t, first, st2.startOne())
		st2.s.finished(first, hung, time.Time{}) // held back from now on
	}
	got := st2.start()
	require.Equal(t, map[string]int{"1": 1}, countBy(got, byLane), "one held-back worker for the tenant")
}

func TestHeldBackLaneIsSeparate(t *testing.T) {
	t.Parallel()
	st := newSchedTest(t, scheduleConfig{Workers: 2, HeldBackWorkers: 1, PerTenant: 8, PerUser: 8, PerWebhook: 16})
	first := st.queue("a", "u", "slow", 1)[0]
	require.Equal(t, first, st.startOne())
	st.s.finished(first, hung, time.Time{})
	st.queue("a", "u", "slow", 1) // held back: one waiting at a time
	st.queue("b", "u", "fast", 3)

	started := st.start()
	require.Equal(t, map[string]int{"slow": 1, "fast": 2}, countBy(started, byHook))
	for _, a := range started {
		require.Equal(t, a.WebhookID == "slow", a.lane == heldBackLane, "held-back webhooks run in the held-back lane, the others in the main lane")
	}
	require.Nil(t, st.s.next(), "both lanes full")

	// A main worker frees: it goes to the fast webhook, not to the slow one.
	for _, a := range started {
		if a.WebhookID == "fast" {
			st.s.finished(a, fastSuccess, time.Time{})
			break
		}
	}
	require.Equal(t, "fast", st.startOne().WebhookID)
	st.queue("b", "u", "fast", 1)
	st.queue("a", "u", "slow", 1)
	// The held-back worker frees while the main lane is full: it goes to the
	// slow webhook; the fast one's new claim waits for the main lane.
	for _, a := range started {
		if a.WebhookID == "slow" {
			st.s.finished(a, hung, time.Time{})
		}
	}
	require.Equal(t, "slow", st.startOne().WebhookID)
	require.Nil(t, st.s.next())
}

func TestOvertimeFreesAMainWorker(t *testing.T) {
	t.Parallel()
	st := newSchedTest(t, scheduleConfig{Workers: 1, HeldBackWorkers: 1, PerTenant: 8, PerUser: 8, PerWebhook: 16})
	x := st.queue("a", "u", "x", 2)
	require.Equal(t, x[0], st.startOne())
	y := st.queue("b", "u", "y", 1)
	require.Nil(t, st.s.next(), "the main lane is full")

	st.s.overtime(x[0], time.Time{})
	require.Equal(t, heldBackLane, x[0].lane)
	require.True(t, st.s.hooks["x"].heldBack)
	require.Equal(t, y[0], st.startOne(), "the main worker is free for another webhook")
	require.Nil(t, st.s.next(), "x waits for the held-back lane, which its first attempt fills")

	st.s.overtime(x[0], time.Time{}) // once only
	require.Equal(t, [2]int{1, 1}, st.s.busy)
	st.s.finished(x[0], hung, time.Time{})
	require.Equal(t, x[1], st.startOne())
	require.Equal(t, heldBackLane, x[1].lane)
}

func TestWebhookLimitGrowsAndShrinks(t *testing.T) {
	t.Parallel()
	st := newSchedTest(t, scheduleConfig{Workers: 64, HeldBackWorkers: 16, PerTenant: 64, PerUser: 64, PerWebhook: 6})
	st.queue("a", "u", "h", 4*initialLimit) // as many as may wait
	require.Equal(t, initialLimit, st.limit("h"))
	require.Equal(t, initialLimit, len(st.start()), "as many in flight as the limit")

	end := func(v verdict) {
		t.Helper()
		st.s.finished(st.inFlight("h"), v, time.Time{})
	}
	for _, want := range []int{5, 6, 6} {
		end(fastSuccess)
		require.Equal(t, want, st.limit("h"), "grows by one, up to PerWebhook")
	}
	end(refused)
	require.Equal(t, 3, st.limit("h"), "halves when refused")
	end(refused)
	end(refused)
	require.Equal(t, 1, st.limit("h"), "never below one")
	end(fastSuccess)
	end(fastSuccess)
	require.Equal(t, 3, st.limit("h"))
	end(hung)
	require.Equal(t, 1, st.limit("h"), "one after a timeout")
	require.True(t, st.s.hooks["h"].heldBack)
	end(slowSuccess)
	require.Equal(t, 2, st.limit("h"))
	require.True(t, st.s.hooks["h"].heldBack, "still slow")
	end(fastSuccess)
	require.False(t, st.s.hooks["h"].heldBack, "fast again")
}

func TestOrderedWebhookHasOneInFlight(t *testing.T) {
	t.Parallel()
	st := newSchedTest(t, wide)
	as := st.queueOrdered("a", "u", "o", 1, true)
	require.Equal(t, 1, st.limit("o"))
	require.False(t, st.s.add(&attempt{Claim: store.Claim{DeliveryID: 99, WebhookID: "o", TenantID: "a", UserID: "u", Ordered: true}}),
		"one waiting at a time")
	require.Equal(t, []*attempt{as[0]}, st.start())
	as = append(as, st.queueOrdered("a", "u", "o", 1, true)...)
	require.Nil(t, st.s.next(), "one in flight at a time")
	st.s.finished(as[0], fastSuccess, time.Time{})
	require.Equal(t, 1, st.limit("o"), "successes do not grow it")
	require.Equal(t, []*attempt{as[1]}, st.start(), "in order")
}

func TestExcluded(t *testing.T) {
	t.Parallel()
	st := newSchedTest(t, scheduleConfig{Workers: 64, HeldBackWorkers: 16, PerTenant: 64, PerUser: 64, PerWebhook: 16})
	st.queue("a", "u", "full", 4*initialLimit) // four rounds of its limit waiting
	st.queue("a", "u", "room", 4*initialLimit-1)
	st.queueOrdered("b", "u", "ordered-waiting", 1, true)
	flying := st.queueOrdered("b", "u", "ordered-in-flight", 1, true)[0]
	hooks, tenants, users, room, _ := st.s.excluded(1000)
	slices.Sort(hooks)
	require.Equal(t, []string{"full", "ordered-in-flight", "ordered-waiting"}, hooks)
	require.Empty(t, tenants)
	require.Empty(t, users)
	require.Equal(t, map[string]int{"room": 1}, room, "the room of a webhook with less than a new one's")
	require.Equal(t, 4*initialLimit, st.s.room("new"), "a webhook not seen yet")

	// Start the ordered one in flight: excluded while in flight, queue empty.
	for a := st.s.next(); a != nil; a = st.s.next() {
		if a == flying {
			break
		}
	}
	hooks, _, _, _, _ = st.s.excluded(1000)
	require.Contains(t, hooks, "ordered-in-flight")

	// A tenant holding more than maxHeld less a quarter is left out, and a
	// user holding more than half of that less a quarter; the limit is what
	// the others may still take.
	st2 := newSchedTest(t, wide)
	st2.queue("a", "u", "a1", 3)
	st2.queue("c", "u", "c1", 13)
	st2.queue("d", "hostile", "d1", 7)
	st2.queue("d", "victim", "d2", 1)
	_, tenants, users, _, limit := st2.s.excluded(16)
	require.Equal(t, []string{"c"}, tenants)
	slices.SortFunc(users, func(x, y webhook.Owner) int { return strings.Compare(x.TenantID, y.TenantID) })
	require.Equal(t, []webhook.Owner{{TenantID: "c", UserID: "u"}, {TenantID: "d", UserID: "hostile"}}, users)
	require.Equal(t, 8-3, limit, "no included tenant or user may then hold more than its bound")
	require.False(t, st2.s.claimableAgain("c", "u", 16))
	require.False(t, st2.s.claimableAgain("d", "hostile", 16))
	require.True(t, st2.s.claimableAgain("d", "victim", 16), "another user of the tenant is claimed for")
	require.True(t, st2.s.claimableAgain("a", "u", 16))
	require.True(t, st2.s.claimableAgain("nobody", "x", 16))
}

func TestDropExpiredAndDropAll(t *testing.T) {
	t.Parallel()
	st := newSchedTest(t, wide)
	x := st.queue("a", "u", "x", 3)
	require.Equal(t, x[0], st.startOne())
	st.queue("a", "u", "y", 2)
	dropped := st.s.drop("x", time.Time{})
	require.Equal(t, x[1:], dropped, "its waiting claims, in order")
	require.True(t, x[0].running, "in flight goes on")
	require.Equal(t, 2, st.s.queued, "y's are left")
	require.Equal(t, 3, st.s.tenants["a"].held, "one in flight and y's two")

	st2 := newSchedTest(t, wide)
	as := st2.queue("a", "u", "z", 3)
	as[0].startBy, as[1].startBy = time.Unix(10, 0), time.Unix(20, 0)
	require.Equal(t, []*attempt{as[0]}, st2.s.expired(time.Unix(10, 0)), "given back at startBy")
	require.Equal(t, []*attempt{as[1]}, st2.s.expired(time.Unix(30, 0)))
	require.Equal(t, []*attempt{as[2]}, st2.s.dropAll(time.Time{}))
	require.Zero(t, st2.s.queued)
	require.Empty(t, st2.s.tenants, "no claims held, no share kept")
}

func TestHeldBackWebhookGivesBackWhatNoLongerFits(t *testing.T) {
	t.Parallel()
	st := newSchedTest(t, wide)
	x := st.queue("a", "u", "x", 4*initialLimit)
	first := st.startOne()
	require.Equal(t, x[0], first)
	back := st.s.overtime(first, time.Time{})
	require.Equal(t, 1, st.limit("x"), "a slow attempt drops the limit to one")
	require.Len(t, st.s.hooks["x"].queue, 1, "one waits while held back")
	require.Equal(t, x[2:], back, "the newest go back")
	require.Equal(t, 2, st.s.tenants["a"].held, "one in flight, one waiting: what went back is no longer held")
}
