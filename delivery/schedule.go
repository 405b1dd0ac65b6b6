package delivery

import (
	"time"

	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/webhook"
)

// The scheduler decides which claimed delivery is attempted next. It is plain
// data, owned by the dispatcher's loop: no locks, no clocks, no I/O.
//
// The policy, so that no tenant, user or webhook can slow the others:
//   - Two lanes of workers. The main lane (Workers) is for webhooks that answer
//     in time. A webhook whose attempt hangs past SlowAfter, times out or
//     cannot be reached is held back: its attempts go to the held-back lane
//     (HeldBackWorkers) until one succeeds within SlowAfter. An attempt of the
//     main lane that runs past SlowAfter moves to the held-back lane then,
//     giving its main worker back at once.
//   - Within a lane, the next attempt goes to the tenant with the fewest
//     attempts in flight in that lane, then its user with the fewest, then its
//     webhook with the fewest, then the one that waited longest. A tenant
//     holds at most PerTenant main workers, a user at most PerUser, and of the
//     held-back workers as much in proportion.
//   - Each webhook has a concurrency limit between 1 and PerWebhook: it starts
//     at 4, grows by one with every success, halves when the receiver answers
//     with an error, and drops to 1 when an attempt times out or cannot
//     connect. An ordered webhook's limit is always 1.
type scheduler struct {
	cfg     scheduleConfig
	hooks   map[string]*hookState
	tenants map[string]*share
	users   map[[2]string]*share
	ready   map[*hookState]struct{} // hooks with claims waiting
	busy    [2]int                  // attempts in flight per lane
	queued  int                     // claims waiting, all hooks
	starts  uint64                  // attempts started, for round-robin order
}

type scheduleConfig struct {
	Workers, HeldBackWorkers int
	PerTenant, PerUser       int
	PerWebhook               int
}

// A lane is a pool of workers.
type lane int

const (
	mainLane lane = iota
	heldBackLane
)

// hookState is what the scheduler knows of one webhook.
type hookState struct {
	id, tenant, user string
	ordered          bool
	queue            []*attempt
	inFlight         int // in both lanes
	limit            int
	heldBack         bool
	lastStart        uint64
	idleSince        time.Time // when it last had nothing queued or in flight
}

// share is what one tenant or user has in flight per lane, and holds (waiting
// or in flight).
type share struct {
	busy [2]int
	held int
}

// attempt is a claim on its way: waiting in its hook's queue, then in flight.
type attempt struct {
	store.Claim
	hook *hookState
	lane lane
	// startBy is the latest moment (this process's clock) at which the lease
	// still outlasts an attempt; later it is given back instead.
	startBy time.Time
	epoch   uint64 // the fence's epoch when it was claimed
	running bool   // started and not finished
}

const initialLimit = 4

func newScheduler(cfg scheduleConfig) *scheduler {
	return &scheduler{
		cfg:     cfg,
		hooks:   map[string]*hookState{},
		tenants: map[string]*share{},
		users:   map[[2]string]*share{},
		ready:   map[*hookState]struct{}{},
	}
}

// add queues a claim; false when the webhook's queue is full (give it back).
func (s *scheduler) add(a *attempt) bool {
	h := s.hooks[a.WebhookID]
	if h == nil {
		h = &hookState{id: a.WebhookID, tenant: a.TenantID, user: a.UserID, limit: s.newLimit()}
		s.hooks[a.WebhookID] = h
	}
	h.ordered = a.Ordered
	if h.ordered {
		h.limit = 1
	}
	if len(h.queue) >= h.target() {
		return false
	}
	a.hook = h
	h.queue = append(h.queue, a)
	s.ready[h] = struct{}{}
	s.queued++
	s.tenant(h).held++
	s.user(h).held++
	return true
}

func (s *scheduler) newLimit() int { return min(initialLimit, s.cfg.PerWebhook) }

// target is how many claims a webhook may have waiting: four rounds of its
// limit while it answers in time (so its queue does not run dry between two
// claims), one while it is held back.
func (h *hookState) target() int {
	if h.heldBack || h.ordered {
		return h.limit
	}
	return 4 * h.limit
}

// room is how many more claims of webhookID may wait here.
func (s *scheduler) room(webhookID string) int {
	if h := s.hooks[webhookID]; h != nil {
		return max(h.target()-len(h.queue), 0)
	}
	return 4 * s.newLimit()
}

// next takes the attempt to start now, if any lane has a worker free for a
// webhook that may start one; the attempt is then in flight.
func (s *scheduler) next() *attempt {
	if a := s.pick(mainLane); a != nil {
		return a
	}
	return s.pick(heldBackLane)
}

func (s *scheduler) pick(l lane) *attempt {
	if s.busy[l] >= s.lanes(l) {
		return nil
	}
	var best *hookState
	var bestT, bestU *share
	for h := range s.ready {
		if h.heldBack != (l == heldBackLane) || h.inFlight >= h.limit {
			continue
		}
		t, u := s.tenant(h), s.user(h)
		if t.busy[l] >= s.share(l, s.cfg.PerTenant) || u.busy[l] >= s.share(l, s.cfg.PerUser) {
			continue
		}
		if best == nil || before(t, u, h, bestT, bestU, best, l) {
			best, bestT, bestU = h, t, u
		}
	}
	if best == nil {
		return nil
	}
	a := best.queue[0]
	best.queue[0] = nil
	best.queue = best.queue[1:]
	s.queued--
	if len(best.queue) == 0 {
		delete(s.ready, best)
	}
	s.starts++
	best.lastStart = s.starts
	best.inFlight++
	a.lane, a.running = l, true
	s.busy[l]++
	bestT.busy[l]++
	bestU.busy[l]++
	return a
}

// before orders candidates: fewest in flight for the tenant, then the user,
// then the webhook, then the longest since its last start.
func before(t, u *share, h *hookState, bt, bu *share, b *hookState, l lane) bool {
	switch {
	case t.busy[l] != bt.busy[l]:
		return t.busy[l] < bt.busy[l]
	case u.busy[l] != bu.busy[l]:
		return u.busy[l] < bu.busy[l]
	case h.inFlight != b.inFlight:
		return h.inFlight < b.inFlight
	}
	return h.lastStart < b.lastStart
}

func (s *scheduler) lanes(l lane) int {
	if l == mainLane {
		return s.cfg.Workers
	}
	return s.cfg.HeldBackWorkers
}

// share is what a tenant or user with main-lane share n may hold in lane l:
// n of the main lane; of the held-back lane as much in proportion.
func (s *scheduler) share(l lane, n int) int {
	if l == mainLane {
		return n
	}
	return max(n*s.cfg.HeldBackWorkers/s.cfg.Workers, 1)
}

// overtime moves a main-lane attempt that has run past SlowAfter to the
// held-back lane and holds its webhook back, at a limit of 1; it returns the
// claims that no longer fit the webhook's queue, to be given back.
func (s *scheduler) overtime(a *attempt, now time.Time) []*attempt {
	if !a.running || a.lane != mainLane {
		return nil
	}
	s.move(a, heldBackLane)
	h := a.hook
	h.heldBack, h.limit = true, 1
	return s.trim(h, now)
}

// trim takes the claims beyond h's target out of its queue, newest first.
func (s *scheduler) trim(h *hookState, now time.Time) []*attempt {
	if extra := len(h.queue) - h.target(); extra > 0 {
		return s.cut(h, len(h.queue)-extra, len(h.queue), now)
	}
	return nil
}

func (s *scheduler) move(a *attempt, to lane) {
	t, u := s.tenant(a.hook), s.user(a.hook)
	s.busy[a.lane]--
	t.busy[a.lane]--
	u.busy[a.lane]--
	a.lane = to
	s.busy[to]++
	t.busy[to]++
	u.busy[to]++
}

// verdict is what an attempt's outcome says about its webhook.
type verdict int

const (
	noVerdict verdict = iota // not attempted (given back, cancelled)
	fastSuccess
	slowSuccess
	refused // the receiver answered with an error
	hung    // timed out or could not be reached
)

// finished ends an attempt in flight and adjusts its webhook's limit; it
// returns the claims that no longer fit the webhook's queue, to be given back.
func (s *scheduler) finished(a *attempt, v verdict, now time.Time) []*attempt {
	if !a.running {
		return nil
	}
	a.running = false
	h := a.hook
	t, u := s.tenant(h), s.user(h)
	s.busy[a.lane]--
	t.busy[a.lane]--
	u.busy[a.lane]--
	t.held--
	u.held--
	h.inFlight--
	switch v {
	case fastSuccess:
		h.heldBack = false
		h.limit++
	case slowSuccess:
		h.heldBack = true
		h.limit++
	case refused:
		h.limit /= 2
	case hung:
		h.heldBack = true
		h.limit = 1
	}
	h.limit = max(1, min(h.limit, s.cfg.PerWebhook))
	if h.ordered {
		h.limit = 1
	}
	if out := s.trim(h, now); out != nil {
		return out
	}
	s.settle(h, now)
	return nil
}

// drop takes every claim waiting for webhookID out of the queues and returns
// them, to be given back; attempts in flight go on.
func (s *scheduler) drop(webhookID string, now time.Time) []*attempt {
	h := s.hooks[webhookID]
	if h == nil {
		return nil
	}
	return s.take(h, len(h.queue), now)
}

// dropAll empties every queue (at shutdown).
func (s *scheduler) dropAll(now time.Time) []*attempt {
	var out []*attempt
	for h := range s.ready {
		out = append(out, s.take(h, len(h.queue), now)...)
	}
	return out
}

// expired takes out the waiting claims that can no longer start in time.
func (s *scheduler) expired(now time.Time) []*attempt {
	var out []*attempt
	for h := range s.ready {
		n := 0
		for n < len(h.queue) && !h.queue[n].startBy.After(now) {
			n++
		}
		out = append(out, s.take(h, n, now)...)
	}
	return out
}

// take removes the first n claims of h's queue.
func (s *scheduler) take(h *hookState, n int, now time.Time) []*attempt {
	if n == 0 {
		return nil
	}
	return s.cut(h, 0, n, now)
}

// cut removes h.queue[i:j] and returns it.
func (s *scheduler) cut(h *hookState, i, j int, now time.Time) []*attempt {
	out := append([]*attempt(nil), h.queue[i:j]...)
	h.queue = append(h.queue[:i], h.queue[j:]...)
	s.queued -= j - i
	s.tenant(h).held -= j - i
	s.user(h).held -= j - i
	if len(h.queue) == 0 {
		delete(s.ready, h)
	}
	s.settle(h, now)
	return out
}

// settle notes when a hook went idle and forgets empty shares.
func (s *scheduler) settle(h *hookState, now time.Time) {
	if len(h.queue) == 0 && h.inFlight == 0 {
		h.idleSince = now
	}
	if t := s.tenants[h.tenant]; t != nil && *t == (share{}) {
		delete(s.tenants, h.tenant)
	}
	if u := s.users[[2]string{h.tenant, h.user}]; u != nil && *u == (share{}) {
		delete(s.users, [2]string{h.tenant, h.user})
	}
}

// evict forgets webhooks idle since before cutoff: what was learnt of them
// (limit, held back) is that old.
func (s *scheduler) evict(cutoff time.Time) {
	for id, h := range s.hooks {
		if len(h.queue) == 0 && h.inFlight == 0 && h.idleSince.Before(cutoff) {
			delete(s.hooks, id)
		}
	}
}

// excluded says what a claim should skip and how much it may take:
// webhooks with no room (a full queue; an ordered one with anything here),
// the room of those with less than a new webhook gets, and the tenants that
// hold nearly maxHeld claims and the users that hold nearly half of that
// (more than the bound less a quarter). limit is the most the claim may take:
// no tenant or user it does not skip can then hold more than its bound,
// however the due deliveries fall. So one tenant's or user's backlog never
// fills the dispatcher's memory with claims it cannot start, another user of
// the same tenant is still claimed for, and a tenant or user is claimed for
// again once a quarter of its share has gone.
func (s *scheduler) excluded(maxHeld int) (hooks, tenants []string, users []webhook.Owner, room map[string]int, limit int) {
	room = map[string]int{}
	for id, h := range s.hooks {
		n := s.room(id)
		if h.ordered && (h.inFlight > 0 || len(h.queue) > 0) {
			n = 0
		}
		switch {
		case n == 0:
			hooks = append(hooks, id)
		case n < 4*s.newLimit():
			room[id] = n
		}
	}
	limit = maxHeld
	for id, t := range s.tenants {
		if full(t, maxHeld) {
			tenants = append(tenants, id)
		} else {
			limit = min(limit, maxHeld-t.held)
		}
	}
	for k, u := range s.users {
		if full(u, maxHeld/2) {
			users = append(users, webhook.Owner{TenantID: k[0], UserID: k[1]})
		} else {
			limit = min(limit, maxHeld/2-u.held)
		}
	}
	return hooks, tenants, users, room, max(limit, 1)
}

// full says whether a tenant or user holds too much of its bound to be
// claimed for.
func full(sh *share, bound int) bool {
	return sh.held > bound-max(bound/4, 1)
}

// claimableAgain says whether the tenant and user of a webhook, perhaps left
// out of a claim for holding too much, may be claimed for again.
func (s *scheduler) claimableAgain(tenantID, userID string, maxHeld int) bool {
	t, u := s.tenants[tenantID], s.users[[2]string{tenantID, userID}]
	return (t == nil || !full(t, maxHeld)) && (u == nil || !full(u, maxHeld/2))
}

// heldBackCount is the number of webhooks held back.
func (s *scheduler) heldBackCount() int {
	n := 0
	for _, h := range s.hooks {
		if h.heldBack {
			n++
		}
	}
	return n
}

func (s *scheduler) tenant(h *hookState) *share {
	t := s.tenants[h.tenant]
	if t == nil {
		t = &share{}
		s.tenants[h.tenant] = t
	}
	return t
}

func (s *scheduler) user(h *hookState) *share {
	k := [2]string{h.tenant, h.user}
	u := s.users[k]
	if u == nil {
		u = &share{}
		s.users[k] = u
	}
	return u
}
