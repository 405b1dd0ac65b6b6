package delivery

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hookferry/hookferry/metrics"
	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/webhook"
)

// DefaultRetrySchedule is the delay before each retry after the first attempt,
// which goes out at once: 8 attempts over about 28 hours.
var DefaultRetrySchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// Config tunes a Dispatcher; zero values take the defaults.
type Config struct {
	Workers         int           // attempts in flight in the main lane; default 64
	HeldBackWorkers int           // attempts in flight for held-back webhooks; default Workers/4
	PerTenant       int           // main-lane attempts one tenant may have in flight; default Workers/2
	PerUser         int           // main-lane attempts one user may have in flight; default Workers/4
	PerWebhook      int           // the most attempts in flight to one webhook; default 16
	SlowAfter       time.Duration // an attempt longer than this holds its webhook back; default 1s
	BatchSize       int           // deliveries per claim; default 256
	Lease           time.Duration // how long a claim is ours; default 60s

	RetrySchedule  []time.Duration // nil means DefaultRetrySchedule
	AutoPauseAfter time.Duration   // failures without success for this long pause a webhook; default 24h
	PollInterval   time.Duration   // look for due work this often even without a wake-up; default 1s
	ShutdownGrace  time.Duration   // in-flight attempts may finish this long after stop; default 10s
	Now            func() time.Time
	// Jitter spreads a retry delay; nil means ±20% at random.
	Jitter  func(time.Duration) time.Duration
	Logger  *slog.Logger
	Metrics *metrics.Metrics
}

// Dispatcher claims due deliveries from the store, sends them and records the
// outcomes. Any number of dispatchers, in any number of processes, can share
// one database.
//
// One goroutine, the loop (Run), owns the dispatcher's state: the scheduler,
// the count of claims held, when to claim next. Everything else sends it
// messages on inbox: the claim it asked for, an attempt that finished or ran
// past SlowAfter, outcomes recorded. Store signals only poke wake (new work,
// or a webhook forgotten by the fence). Attempts run in goroutines of their
// own; outcomes go to the recorder, which writes them in batches.
type Dispatcher struct {
	store  *store.Store
	sender *Sender
	cfg    Config
	log    *slog.Logger
	gate   *gate
	fence  *fence
	hooks  *testHooks // nil but in tests

	inbox    chan any      // claimed, finished, overtime, recorded
	wake     chan struct{} // cap 1: new deliveries, or webhooks forgotten
	results  chan recording
	loopDone chan struct{} // the loop has returned: nobody reads inbox
}

// New builds a dispatcher; Run starts it.
func New(st *store.Store, sender *Sender, cfg Config) *Dispatcher {
	if cfg.Workers <= 0 {
		cfg.Workers = 64
	}
	if cfg.HeldBackWorkers <= 0 {
		cfg.HeldBackWorkers = max(cfg.Workers/4, 1)
	}
	if cfg.PerTenant <= 0 {
		cfg.PerTenant = max(cfg.Workers/2, 1)
	}
	if cfg.PerUser <= 0 {
		cfg.PerUser = max(cfg.Workers/4, 1)
	}
	if cfg.PerWebhook <= 0 {
		cfg.PerWebhook = 16
	}
	if cfg.SlowAfter <= 0 {
		cfg.SlowAfter = time.Second
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 256
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 60 * time.Second
	}
	if cfg.Lease <= 2*leaseMargin(sender) {
		// A lease must outlast an attempt, or every claim would be given back.
		cfg.Lease = 4 * leaseMargin(sender)
	}
	if cfg.RetrySchedule == nil {
		cfg.RetrySchedule = DefaultRetrySchedule
	}
	if cfg.AutoPauseAfter <= 0 {
		cfg.AutoPauseAfter = 24 * time.Hour
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Jitter == nil {
		cfg.Jitter = func(d time.Duration) time.Duration {
			return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher{
		store: st, sender: sender, cfg: cfg, log: cfg.Logger,
		gate:     &gate{store: st, within: leaseMargin(sender), log: cfg.Logger},
		fence:    newFence(),
		inbox:    make(chan any, 4*cfg.Workers),
		wake:     make(chan struct{}, 1),
		results:  make(chan recording, 4*cfg.Workers),
		loopDone: make(chan struct{}),
	}
	st.OnSignal(func(s store.Signal) {
		switch s.Channel {
		case store.DeliveriesChannel:
		case store.WebhooksChannel:
			// Paused, deleted or erased: from here on no claim of it made
			// before starts in this process.
			d.fence.forget(s.Payload, cfg.Now())
		default:
			return
		}
		d.poke()
	})
	return d
}

// recordAfterGrace is how long outcomes may still be recorded after the
// shutdown grace.
const recordAfterGrace = 3 * time.Second

// leaseMargin is how long a lease must still last for an attempt to start:
// the attempt's timeout and a second for recording its outcome.
func leaseMargin(s *Sender) time.Duration { return s.Timeout() + time.Second }

func (d *Dispatcher) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// tell sends m to the loop, unless the loop has returned.
func (d *Dispatcher) tell(m any) {
	select {
	case d.inbox <- m:
	case <-d.loopDone:
	}
}

// The loop's messages.
type (
	claimed struct {
		claims []store.Claim
		req    store.ClaimRequest
		at     time.Time // when the claim was asked for
		epoch  uint64
		err    error
	}
	finished struct {
		a   *attempt
		out Outcome
		ran bool // an HTTP attempt was made
	}
	overtime struct{ a *attempt }
	recorded struct {
		n         int
		nextRetry time.Time // the earliest retry among them; zero for none
		ordered   bool      // some were of ordered webhooks, whose next may now be claimed
	}
)

// Run delivers until ctx ends, then stops claiming, gives back the claims not
// started, lets attempts in flight finish for ShutdownGrace (cancelling the
// rest), and records the outcomes it can within recordAfterGrace more: what
// cannot be recorded (the database is down) is left to lease expiry. It
// returns within ShutdownGrace plus about 3 seconds of ctx ending.
func (d *Dispatcher) Run(ctx context.Context) error {
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSends()
	recordCtx, stopRecording := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRecording()
	recorderDone := make(chan struct{})
	go func() {
		defer close(recorderDone)
		d.record(recordCtx)
	}()

	l := &loop{d: d, sched: newScheduler(scheduleConfig{
		Workers: d.cfg.Workers, HeldBackWorkers: d.cfg.HeldBackWorkers,
		PerTenant: d.cfg.PerTenant, PerUser: d.cfg.PerUser, PerWebhook: d.cfg.PerWebhook,
	}), sendCtx: sendCtx, wantClaim: true}
	// Recording ends at the latest recordAfterGrace after the grace: a recorder
	// stuck on the database then gives up at once, so that nothing waiting
	// to hand it an outcome (attempts, releases) keeps the stop waiting.
	stopLater := context.AfterFunc(ctx, func() { time.AfterFunc(d.cfg.ShutdownGrace+recordAfterGrace, stopRecording) })
	defer stopLater()
	l.run(ctx, cancelSends)
	close(d.loopDone)
	// Every attempt has ended and told the loop; the releases are on their way.
	l.releases.Wait()
	close(d.results)
	<-recorderDone
	return nil
}

// loop is the dispatcher's state, touched by the loop goroutine alone.
type loop struct {
	d        *Dispatcher
	sched    *scheduler
	sendCtx  context.Context
	releases sync.WaitGroup // releases waiting for room in results

	held       int       // claimed and not yet recorded
	running    int       // attempt goroutines, gate included
	claiming   bool      // a claim is under way
	claimAsked bool      // it was wanted, not a poll
	pollDue    bool      // the tick asks for a claim
	wantClaim  bool      // claim as soon as there is room
	nextTick   time.Time // the next poll and upkeep
	claimAfter time.Time // after a failed claim, not before this
	backoff    time.Duration
	nextRetry  time.Time // the earliest retry this dispatcher scheduled
	// excludedHooks, excludedTenants and excludedUsers were left out of the
	// last claim.
	excludedHooks, excludedTenants map[string]bool
	// cappedHooks got all the room they had in the last claim: they may
	// have more due.
	cappedHooks   map[string]bool
	excludedUsers map[webhook.Owner]bool
	fenceSeen     uint64 // forgotten webhooks up to this epoch are dropped
	stopping      bool
	heldBackNow   int
	flushes       []flush // tests waiting for the loop
}

func (l *loop) run(ctx context.Context, cancelSends context.CancelFunc) {
	d := l.d
	timer := time.NewTimer(0)
	defer timer.Stop()
	var grace <-chan time.Time
	done := ctx.Done()
	defer l.flushed(true)
	for {
		l.startReady()
		l.maybeClaim(ctx)
		l.flushed(false)
		if l.stopping && l.running == 0 && !l.claiming {
			return
		}
		timer.Reset(l.sleep())
		select {
		case m := <-d.inbox:
			l.handle(m)
		case <-d.wake:
			l.dropForgotten()
			l.wantClaim = true
		case <-timer.C:
			l.tick()
		case <-done:
			done = nil
			l.stopping = true
			l.release(backStopping, l.sched.dropAll(d.cfg.Now())...)
			g := time.NewTimer(d.cfg.ShutdownGrace)
			defer g.Stop()
			grace = g.C
		case <-grace:
			grace = nil
			cancelSends() // hard stop: the attempts end as Cancelled and are given back
		}
	}
}

func (l *loop) handle(m any) {
	d := l.d
	now := d.cfg.Now()
	switch m := m.(type) {
	case claimed:
		l.claiming = false
		if m.err != nil {
			if !l.stopping {
				d.log.Warn("delivery: claim failed", "error", m.err, "retry_in", l.backoff)
				l.claimAfter = now.Add(l.backoff)
				l.backoff = min(2*l.backoff, 5*time.Second)
				l.wantClaim = true
			}
			return
		}
		l.backoff = 100 * time.Millisecond
		l.held += len(m.claims)
		for _, c := range m.claims {
			a := &attempt{Claim: c, startBy: m.at.Add(d.cfg.Lease - leaseMargin(d.sender)), epoch: m.epoch}
			if l.stopping {
				l.release(backStopping, a)
				continue
			}
			if !d.fence.allows(c.WebhookID, m.epoch) {
				l.release(backFenced, a)
				continue
			}
			if !l.sched.add(a) {
				l.release(backFull, a)
				continue
			}
		}
		l.cappedHooks = capped(m.req, m.claims)
		if len(m.claims) == m.req.Limit {
			l.wantClaim = true // there may be more
		}
		d.hookClaimed(m.claims)
	case finished:
		l.running--
		if m.a.running {
			l.release(backFull, l.sched.finished(m.a, l.verdict(m.out, m.ran), now)...)
			if l.excludedHooks[m.a.WebhookID] || l.cappedHooks[m.a.WebhookID] ||
				(l.excludedTenants[m.a.TenantID] || l.excludedUsers[webhook.Owner{TenantID: m.a.TenantID, UserID: m.a.UserID}]) &&
					l.sched.claimableAgain(m.a.TenantID, m.a.UserID, l.maxTenantHeld()) {
				l.wantClaim = true // claimable again
			}
		}
		d.hookEnded(m.a.Claim)
	case overtime:
		if m.a.running && m.a.lane == mainLane {
			l.release(backFull, l.sched.overtime(m.a, now)...)
			d.hookOvertime(m.a.Claim)
		}
	case recorded:
		full := l.room() <= 0
		l.held -= m.n
		if !m.nextRetry.IsZero() && (l.nextRetry.IsZero() || m.nextRetry.Before(l.nextRetry)) {
			l.nextRetry = m.nextRetry
		}
		if (full && l.room() > 0) || m.ordered {
			l.wantClaim = true
		}
	case flush:
		l.flushes = append(l.flushes, m)
	}
}

// flushed answers the tests whose flush is done; all of them when the loop
// returns.
func (l *loop) flushed(all bool) {
	n := 0
	for _, f := range l.flushes {
		if all || !f.idle || (!(l.claiming && l.claimAsked) && !l.wantClaim && len(l.d.wake) == 0) {
			close(f.done)
			continue
		}
		l.flushes[n] = f
		n++
	}
	l.flushes = l.flushes[:n]
}

// verdict classifies an outcome for the scheduler.
func (l *loop) verdict(out Outcome, ran bool) verdict {
	if !ran {
		return noVerdict
	}
	slow := out.Duration >= l.d.cfg.SlowAfter
	switch out.Kind {
	case Delivered:
		if slow {
			return slowSuccess
		}
		return fastSuccess
	case Rejected:
		if slow {
			return hung
		}
		return refused
	case Unreachable:
		return hung
	}
	return noVerdict
}

// startReady starts every attempt the scheduler lets start now.
func (l *loop) startReady() {
	if l.stopping {
		return
	}
	for {
		a := l.sched.next()
		if a == nil {
			return
		}
		l.running++
		l.d.hookStarted(a.Claim)
		go l.d.attempt(l.sendCtx, a)
	}
}

func (l *loop) room() int { return 4*l.d.cfg.Workers - l.held }

// maxTenantHeld is the most claims one tenant may hold: half the room, so
// that the others always find room.
func (l *loop) maxTenantHeld() int { return 2 * l.d.cfg.Workers }

// maybeClaim asks for a claim when one is wanted and there is room.
func (l *loop) maybeClaim(ctx context.Context) {
	d := l.d
	now := d.cfg.Now()
	if !l.nextRetry.IsZero() && !l.nextRetry.After(now) {
		l.nextRetry, l.wantClaim = time.Time{}, true
	}
	if !(l.wantClaim || l.pollDue) || l.stopping || l.claiming || l.room() <= 0 || now.Before(l.claimAfter) {
		return
	}
	l.claimAsked = l.wantClaim
	hooks, tenants, users, room, tenantRoom := l.sched.excluded(l.maxTenantHeld())
	l.excludedHooks, l.excludedTenants, l.excludedUsers = set(hooks), set(tenants), set(users)
	req := store.ClaimRequest{Limit: min(l.room(), d.cfg.BatchSize, tenantRoom), Lease: d.cfg.Lease,
		PerWebhook: l.sched.room(""), WebhookRoom: room, ExcludeWebhooks: hooks, ExcludeTenants: tenants, ExcludeUsers: users}
	l.claiming, l.wantClaim, l.pollDue = true, false, false
	epoch := d.fence.now()
	go func() {
		claims, err := d.store.Claim(ctx, req)
		d.tell(claimed{claims: claims, req: req, at: now, epoch: epoch, err: err})
	}()
}

// capped are the webhooks of which a claim took all it allowed.
func capped(req store.ClaimRequest, claims []store.Claim) map[string]bool {
	got := map[string]int{}
	for _, c := range claims {
		got[c.WebhookID]++
	}
	out := map[string]bool{}
	for id, n := range got {
		room, ok := req.WebhookRoom[id]
		if !ok {
			room = req.PerWebhook
		}
		if n >= room {
			out[id] = true
		}
	}
	return out
}

// sleep is how long the loop may wait for a message: until the next tick,
// retry or end of a claim back-off.
func (l *loop) sleep() time.Duration {
	now := l.d.cfg.Now()
	next := l.nextTick
	if !l.nextRetry.IsZero() && l.nextRetry.Before(next) {
		next = l.nextRetry
	}
	if l.wantClaim && l.claimAfter.After(now) && l.claimAfter.Before(next) {
		next = l.claimAfter
	}
	return max(next.Sub(now), time.Millisecond)
}

// tick, every PollInterval, looks for due work (other instances' retries,
// expired leases), gives back the claims that waited too long, forgets idle
// webhooks and old fence entries, and updates the held-back gauge.
func (l *loop) tick() {
	d := l.d
	now := d.cfg.Now()
	if now.Before(l.nextTick) {
		return // woken for a retry or the end of a back-off
	}
	l.nextTick = now.Add(d.cfg.PollInterval)
	l.pollDue = true
	l.release(backExpired, l.sched.expired(now)...)
	l.sched.evict(now.Add(-10 * time.Minute))
	d.fence.prune(now.Add(-2 * d.cfg.Lease))
	if n := l.sched.heldBackCount(); n != l.heldBackNow {
		l.heldBackNow = n
		d.cfg.Metrics.HeldBack(n)
	}
}

// dropForgotten gives back the waiting claims of webhooks forgotten since the
// last look: paused, deleted or erased.
func (l *loop) dropForgotten() {
	ids, epoch := l.d.fence.since(l.fenceSeen)
	l.fenceSeen = epoch
	now := l.d.cfg.Now()
	for _, id := range ids {
		l.release(backForgotten, l.sched.drop(id, now)...)
	}
}

// release gives claims back to the buffer, charging nothing and keeping
// their due time; why is for the tests.
func (l *loop) release(why string, as ...*attempt) {
	l.d.hookGivenBack(why, as)
	for _, a := range as {
		r := recordingOf(a.Claim, release(a.Claim, time.Time{}))
		select {
		case l.d.results <- r:
		default:
			l.releases.Add(1)
			go func() {
				defer l.releases.Done()
				l.d.results <- r
			}()
		}
	}
}

// attempt passes the gate, sends, and hands the outcome to the recorder.
func (d *Dispatcher) attempt(ctx context.Context, a *attempt) {
	c := a.Claim
	passed := d.gate.allow(ctx, store.ClaimRef{DeliveryID: c.DeliveryID, ClaimSeq: c.ClaimSeq})
	d.hookGated(c, passed)
	why := backGate
	if passed {
		why = backFenced
		passed = d.fence.allows(c.WebhookID, a.epoch)
	}
	if !passed {
		d.hookGivenBack(why, []*attempt{a})
		d.cfg.Metrics.Attempt("released", 0)
		d.results <- recordingOf(c, release(c, time.Time{}))
		d.tell(finished{a: a})
		return
	}
	slow := time.AfterFunc(d.cfg.SlowAfter, func() { d.tell(overtime{a}) })
	d.cfg.Metrics.InFlight(1)
	// The keys that sign are those valid now: a previous key past its expiry
	// signs nothing, even for a claim made before.
	keys := webhook.SigningKeys(c.Secret, c.PreviousKeys, d.cfg.Now())
	out := d.sender.Send(ctx, Message{URL: c.URL, Keys: keys, EventID: c.EventID, Body: c.Payload})
	d.cfg.Metrics.InFlight(-1)
	slow.Stop()
	r := d.result(c, out)
	if r.Gone {
		// Nothing more for it, from this moment: not the claims waiting, not
		// those a claim may still bring before the pause is recorded.
		d.fence.hold(c.WebhookID, d.cfg.Now())
		d.poke()
	}
	d.results <- recordingOf(c, r)
	d.tell(finished{a: a, out: out, ran: out.Kind != Cancelled && out.Kind != Internal})
}

func set[K comparable](ids []K) map[K]bool {
	m := make(map[K]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}
