package delivery

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/hookferry/hookferry/store"
)

// The gate is the last thing an attempt passes before its request is made:
// the database must still say that the claim is ours, its delivery pending,
// its webhook active, and its lease long enough for the attempt, on the
// database's clock (store.Startable). So a pause, delete or erasure committed
// anywhere (this instance, another, the CLI) before the check stops the
// attempt. Attempts arriving together share one query: one round is under way
// at a time and the next takes everyone who arrived meanwhile.
type gate struct {
	store  *store.Store
	within time.Duration // the lease must outlast now by this much
	log    *slog.Logger

	mu      sync.Mutex
	waiting []gateRequest
	running bool
}

type gateRequest struct {
	ref   store.ClaimRef
	reply chan bool // buffered: a round never waits for the one who asked
}

// allow reports whether the claim may be attempted; false when the database
// cannot be asked, or ctx ends first.
func (g *gate) allow(ctx context.Context, ref store.ClaimRef) bool {
	req := gateRequest{ref: ref, reply: make(chan bool, 1)}
	g.mu.Lock()
	g.waiting = append(g.waiting, req)
	if !g.running {
		g.running = true
		go g.rounds()
	}
	g.mu.Unlock()
	select {
	case ok := <-req.reply:
		return ok
	case <-ctx.Done():
		return false
	}
}

func (g *gate) rounds() {
	for {
		g.mu.Lock()
		batch := g.waiting
		g.waiting = nil
		if len(batch) == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		refs := make([]store.ClaimRef, len(batch))
		for i, r := range batch {
			refs[i] = r.ref
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ok, err := g.store.Startable(ctx, refs, g.within)
		cancel()
		if err != nil {
			g.log.Warn("delivery: cannot check claims before their attempts; given back", "error", err, "claims", len(batch))
		}
		for _, r := range batch {
			r.reply <- err == nil && ok[r.ref.DeliveryID]
		}
	}
}

// The fence makes a pause, delete or erasure in this process take effect at
// once, before the store's signal returns (and so before the API answers):
// a claim made before its webhook was forgotten here does not start, even if
// the gate's query ran a moment before the change committed. A webhook that
// answered 410 Gone is held: none of its claims starts, whenever made, until
// the outcome that pauses it has been recorded.
type fence struct {
	mu        sync.Mutex
	epoch     uint64
	forgotten map[string]forgetting
	held      map[string]int // 410s not yet recorded, per webhook
}

type forgetting struct {
	epoch uint64
	at    time.Time
}

func newFence() *fence { return &fence{forgotten: map[string]forgetting{}, held: map[string]int{}} }

// now is the epoch to give a claim made from now on.
func (f *fence) now() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.epoch
}

// forget marks webhookID's claims made so far as not to start.
func (f *fence) forget(webhookID string, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.epoch++
	f.forgotten[webhookID] = forgetting{epoch: f.epoch, at: at}
}

// hold forgets webhookID's claims and stops every later one too, until unhold.
func (f *fence) hold(webhookID string, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.epoch++
	f.forgotten[webhookID] = forgetting{epoch: f.epoch, at: at}
	f.held[webhookID]++
}

// unhold ends one hold of webhookID.
func (f *fence) unhold(webhookID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held[webhookID]--; f.held[webhookID] <= 0 {
		delete(f.held, webhookID)
	}
}

// allows reports whether a claim of webhookID made at epoch may start.
func (f *fence) allows(webhookID string, epoch uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held[webhookID] > 0 {
		return false
	}
	g, ok := f.forgotten[webhookID]
	return !ok || g.epoch <= epoch
}

// since returns the webhooks forgotten after epoch, and the current epoch.
func (f *fence) since(epoch uint64) ([]string, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for id, g := range f.forgotten {
		if g.epoch > epoch {
			ids = append(ids, id)
		}
	}
	return ids, f.epoch
}

// prune drops what was forgotten before cutoff: every claim made before then
// has had its lease end.
func (f *fence) prune(cutoff time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, g := range f.forgotten {
		if g.at.Before(cutoff) {
			delete(f.forgotten, id)
		}
	}
}
