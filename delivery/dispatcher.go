package delivery

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hookferry/hookferry/metrics"
	"github.com/hookferry/hookferry/store"
)

// DefaultRetrySchedule is the delay before each retry after the first attempt,
// which goes out at once: 8 attempts over about 28 hours.
var DefaultRetrySchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// Config tunes a Dispatcher; zero values take the defaults.
type Config struct {
	Workers        int             // attempts in flight in total; default 64
	PerWebhook     int             // attempts in flight per webhook; default 16
	BatchSize      int             // deliveries per claim; default 256
	Lease          time.Duration   // how long a claim is ours; default 60s
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
type Dispatcher struct {
	store  *store.Store
	sender *Sender
	cfg    Config
	log    *slog.Logger

	wake      chan struct{}
	unstarved chan struct{} // a webhook drained below its bound while starved
	results   chan store.Result
	slots     chan struct{} // the global bound on attempts in flight

	mu       sync.Mutex
	hooks    map[string]*hookQueue
	held     int       // claimed and not yet recorded
	nextWake time.Time // the earliest retry this dispatcher scheduled
	stopped  bool      // results is closed
	// starved is set when the last claim found nothing but work of the
	// webhooks it excluded: claiming again is pointless until one of them
	// drains or new work arrives, and each empty claim still scans the queue.
	starved bool
	sends   sync.WaitGroup // attempts, and releases on their way to results
}

// hookQueue is what this dispatcher holds for one webhook: at most PerWebhook
// attempts in flight and a backlog of claims waiting their turn.
type hookQueue struct {
	inFlight int
	backlog  []held
	// gen counts the times the webhook was forgotten (paused, deleted,
	// erased): an attempt of an older generation does not start.
	gen int
}

// held is a claim, the moment its lease ends and its webhook's generation.
type held struct {
	store.Claim
	leaseEnd time.Time
	gen      int
}

// New builds a dispatcher; Run starts it.
func New(st *store.Store, sender *Sender, cfg Config) *Dispatcher {
	if cfg.Workers <= 0 {
		cfg.Workers = 64
	}
	if cfg.PerWebhook <= 0 {
		cfg.PerWebhook = 16
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 256
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 60 * time.Second
	}
	if cfg.Lease <= sender.Timeout() {
		// A lease must outlast an attempt, or every claim would be given back.
		cfg.Lease = 4 * sender.Timeout()
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
		wake:      make(chan struct{}, 1),
		unstarved: make(chan struct{}, 1),
		results:   make(chan store.Result, 4*cfg.Workers),
		slots:     make(chan struct{}, cfg.Workers),
		hooks:     map[string]*hookQueue{},
	}
	st.OnSignal(func(s store.Signal) {
		switch s.Channel {
		case store.DeliveriesChannel:
			d.poke()
		case store.WebhooksChannel:
			d.forget(s.Payload)
		case store.RevisionsChannel:
			d.revalidate()
		}
	})
	return d
}

// Run delivers until ctx ends, then stops claiming, releases the claims it has
// not started, lets attempts in flight finish for ShutdownGrace (cancelling and
// releasing the rest), and records every outcome before it returns.
func (d *Dispatcher) Run(ctx context.Context) error {
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSends()
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		d.record()
	}()

	d.claimLoop(ctx, sendCtx)

	// Soft stop: nothing new starts; what waits is released.
	d.mu.Lock()
	for id := range d.hooks {
		d.releaseBacklogLocked(id)
	}
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { d.sends.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d.cfg.ShutdownGrace):
		cancelSends() // hard stop: the attempts end as Cancelled and are released
		<-done
	}
	d.mu.Lock()
	d.stopped = true
	d.mu.Unlock()
	close(d.results)
	<-recorded
	return nil
}

func (d *Dispatcher) claimLoop(ctx, sendCtx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		d.mu.Lock()
		room := d.holdLimit() - d.held
		exclude := d.saturatedLocked()
		d.mu.Unlock()
		full := false
		if room > 0 {
			n := min(room, d.cfg.BatchSize)
			claims, err := d.store.Claim(ctx, store.ClaimRequest{Limit: n, Lease: d.cfg.Lease, ExcludeWebhooks: exclude})
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				d.log.Warn("delivery: claim failed", "error", err, "retry_in", backoff)
				sleep(ctx, backoff)
				backoff = min(2*backoff, 5*time.Second)
				continue
			}
			backoff = 100 * time.Millisecond
			d.mu.Lock()
			d.starved = len(claims) == 0 && len(exclude) > 0
			starved := d.starved
			d.mu.Unlock()
			d.dispatch(sendCtx, claims)
			full = len(claims) == n
			if starved {
				// New work wakes us, but at most this often while starved;
				// a webhook draining below its bound ends the pause at once.
				t := time.NewTimer(starvedClaimInterval)
				select {
				case <-ctx.Done():
				case <-t.C:
				case <-d.unstarved:
				}
				t.Stop()
			}
		}
		if full {
			continue
		}
		d.wait(ctx)
	}
}

// starvedClaimInterval spaces the claims of a dispatcher whose only due work
// belongs to webhooks that already have a full backlog here.
const starvedClaimInterval = 20 * time.Millisecond

// wait blocks until a wake-up, the next retry this dispatcher scheduled, or the
// poll interval (for other instances' retries and expired leases).
func (d *Dispatcher) wait(ctx context.Context) {
	delay := d.cfg.PollInterval
	d.mu.Lock()
	if !d.nextWake.IsZero() {
		if until := d.nextWake.Sub(d.cfg.Now()); until < delay {
			delay = max(until, 0)
		}
	}
	d.mu.Unlock()
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-d.wake:
	case <-t.C:
		d.mu.Lock()
		if !d.nextWake.IsZero() && !d.nextWake.After(d.cfg.Now()) {
			d.nextWake = time.Time{}
		}
		d.mu.Unlock()
	}
}

func (d *Dispatcher) unstarve() {
	select {
	case d.unstarved <- struct{}{}:
	default:
	}
	d.poke()
}

func (d *Dispatcher) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *Dispatcher) dispatch(sendCtx context.Context, claims []store.Claim) {
	leaseEnd := d.cfg.Now().Add(d.cfg.Lease)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.held += len(claims)
	for _, claim := range claims {
		q := d.hooks[claim.WebhookID]
		if q == nil {
			q = &hookQueue{}
			d.hooks[claim.WebhookID] = q
		}
		c := held{Claim: claim, leaseEnd: leaseEnd, gen: q.gen}
		if q.inFlight < d.cfg.PerWebhook {
			q.inFlight++
			d.startLocked(sendCtx, c)
		} else {
			q.backlog = append(q.backlog, c)
		}
	}
}

// holdLimit bounds the claims held at once (in flight, waiting their turn, or
// waiting to be recorded). Claiming well ahead of the attempts keeps a busy
// webhook's queue from running dry between claims; the lease check before each
// attempt keeps what waits too long from being sent late.
func (d *Dispatcher) holdLimit() int { return 8 * d.cfg.Workers }

// saturatedLocked lists the webhooks whose backlog is full: claiming more for
// them would only hold leases that wait.
func (d *Dispatcher) saturatedLocked() []string {
	var ids []string
	for id, q := range d.hooks {
		if len(q.backlog) >= d.cfg.PerWebhook {
			ids = append(ids, id)
		}
	}
	return ids
}

func (d *Dispatcher) startLocked(sendCtx context.Context, c held) {
	d.sends.Add(1)
	go func() {
		defer d.sends.Done()
		d.slots <- struct{}{}
		// An attempt that could outlive its lease might race the worker that
		// takes the delivery over, and one whose webhook was paused, deleted
		// or erased (here or by another process) must not start: give it back.
		if d.cfg.Now().Add(d.sender.Timeout()).After(c.leaseEnd) || !d.current(sendCtx, c) {
			<-d.slots
			d.results <- release(c.Claim, time.Time{})
			d.finished(sendCtx, c.WebhookID)
			return
		}
		d.cfg.Metrics.InFlight(1)
		out := d.sender.Send(sendCtx, Message{URL: c.URL, Secret: c.Secret, EventID: c.EventID, Body: c.Payload})
		d.cfg.Metrics.InFlight(-1)
		<-d.slots
		d.results <- d.result(c.Claim, out)
		d.finished(sendCtx, c.WebhookID)
	}()
}

// finished frees the webhook's slot and starts its next claim, if any.
func (d *Dispatcher) finished(sendCtx context.Context, webhookID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	q := d.hooks[webhookID]
	if q == nil {
		return
	}
	q.inFlight--
	if len(q.backlog) > 0 && sendCtx.Err() == nil {
		next := q.backlog[0]
		q.backlog = q.backlog[1:]
		q.inFlight++
		d.startLocked(sendCtx, next)
		if d.starved && len(q.backlog) < d.cfg.PerWebhook {
			d.starved = false // this webhook is claimable again
			d.unstarve()
		}
		return
	}
	if q.inFlight == 0 && len(q.backlog) == 0 {
		delete(d.hooks, webhookID)
	}
}

// forget drops what waits for a webhook that was paused or deleted: its
// attempts in flight finish, nothing new starts.
func (d *Dispatcher) forget(webhookID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if q := d.hooks[webhookID]; q != nil {
		q.gen++
	}
	d.releaseBacklogLocked(webhookID)
}

// current reports whether c may still be attempted: the revocations and
// erasures of other processes are seen first (store.Sync), then c's webhook
// must not have been forgotten since c was claimed.
func (d *Dispatcher) current(ctx context.Context, c held) bool {
	if err := d.store.Sync(ctx); err != nil {
		d.log.Warn("delivery: cannot check for erasures; attempt given back", "error", err)
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	q := d.hooks[c.WebhookID]
	return q != nil && q.gen == c.gen
}

// revalidate forgets the webhooks held here that another process paused,
// deleted or erased.
func (d *Dispatcher) revalidate() {
	d.mu.Lock()
	ids := make([]string, 0, len(d.hooks))
	for id := range d.hooks {
		ids = append(ids, id)
	}
	d.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	active, err := d.store.ActiveWebhooks(ctx, ids)
	if err != nil {
		d.log.Warn("delivery: cannot check the webhooks held", "error", err)
		return
	}
	for _, id := range ids {
		if !active[id] {
			d.forget(id)
		}
	}
}

func (d *Dispatcher) releaseBacklogLocked(webhookID string) {
	q := d.hooks[webhookID]
	if q == nil || d.stopped {
		return
	}
	backlog := q.backlog
	q.backlog = nil
	if q.inFlight == 0 {
		delete(d.hooks, webhookID)
	}
	if len(backlog) == 0 {
		return
	}
	d.sends.Add(1)
	go func() {
		defer d.sends.Done()
		for _, c := range backlog {
			d.results <- release(c.Claim, time.Time{})
		}
	}()
}

// result turns an attempt's outcome into the delivery's next state.
func (d *Dispatcher) result(c store.Claim, out Outcome) store.Result {
	now := d.cfg.Now()
	switch out.Kind {
	case Cancelled:
		d.cfg.Metrics.Attempt("released", 0)
		return release(c, time.Time{})
	case Internal:
		d.log.Error("delivery: cannot send", "delivery", c.DeliveryID, "webhook", c.WebhookID, "error", out.Error)
		d.cfg.Metrics.Attempt("released", 0)
		return release(c, now.Add(30*time.Second))
	}
	r := store.Result{
		DeliveryID: c.DeliveryID, ClaimSeq: c.ClaimSeq, WebhookID: c.WebhookID,
		Attempted: true, AttemptedAt: now, StatusCode: out.StatusCode, Error: out.Error, Duration: out.Duration,
		SchedulePos: c.SchedulePos,
	}
	attrs := []any{"delivery", c.DeliveryID, "webhook", c.WebhookID, "event", c.EventID, "attempt", c.Attempts + 1,
		"status_code", out.StatusCode, "duration_ms", float64(out.Duration.Microseconds()) / 1000}
	switch {
	case out.Kind == Delivered:
		r.Status = store.StatusDelivered
		d.cfg.Metrics.Attempt("delivered", out.Duration)
		d.log.Debug("delivery: delivered", attrs...)
	case c.SchedulePos < len(d.cfg.RetrySchedule):
		r.Status = store.StatusPending
		r.NextAttemptAt = now.Add(d.cfg.Jitter(d.cfg.RetrySchedule[c.SchedulePos]))
		r.SchedulePos = c.SchedulePos + 1
		d.cfg.Metrics.Attempt(outcomeLabel(out.Kind), out.Duration)
		d.log.Info("delivery: attempt failed; retry scheduled", append(attrs, "error", out.Error, "retry_at", r.NextAttemptAt)...)
	default:
		r.Status = store.StatusFailed
		d.cfg.Metrics.Attempt("failed", out.Duration)
		d.log.Warn("delivery: last attempt failed; delivery FAILED", append(attrs, "error", out.Error)...)
	}
	return r
}

func outcomeLabel(k OutcomeKind) string {
	if k == Rejected {
		return "rejected"
	}
	return "unreachable"
}

// release gives a claim back without charging an attempt; a zero next keeps
// its due time.
func release(c store.Claim, next time.Time) store.Result {
	return store.Result{DeliveryID: c.DeliveryID, ClaimSeq: c.ClaimSeq, WebhookID: c.WebhookID,
		Status: store.StatusPending, NextAttemptAt: next, SchedulePos: c.SchedulePos}
}

// record writes outcomes in batches until the results channel closes. A batch
// that cannot be written is retried; its leases stay ours meanwhile, and if
// they expire first another worker delivers again (at least once).
func (d *Dispatcher) record() {
	const maxBatch = 512
	for r := range d.results {
		batch := []store.Result{r}
	drain:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-d.results:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		d.write(batch)
	}
}

func (d *Dispatcher) write(batch []store.Result) {
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		paused, err := d.store.Record(ctx, batch, d.cfg.AutoPauseAfter)
		cancel()
		if err == nil {
			for _, p := range paused {
				d.log.Warn("delivery: webhook paused", "webhook", p.WebhookID, "reason", p.Reason)
			}
			break
		}
		if attempt >= 20 || errors.Is(err, context.Canceled) {
			d.log.Error("delivery: recording outcomes failed; their leases will expire and they will be sent again", "error", err, "deliveries", len(batch))
			break
		}
		d.log.Warn("delivery: recording outcomes failed; retrying", "error", err, "retry_in", backoff)
		time.Sleep(backoff)
		backoff = min(2*backoff, 2*time.Second)
	}
	d.mu.Lock()
	d.held -= len(batch)
	for _, r := range batch {
		if r.Status == store.StatusPending && !r.NextAttemptAt.IsZero() && (d.nextWake.IsZero() || r.NextAttemptAt.Before(d.nextWake)) {
			d.nextWake = r.NextAttemptAt
		}
	}
	if d.starved && len(d.saturatedLocked()) < len(d.hooks) {
		d.starved = false // a webhook drained below its bound while we claimed
		d.unstarve()
	}
	starved := d.starved
	d.mu.Unlock()
	if !starved { // room to claim into; while starved, more room changes nothing
		d.poke()
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
