package delivery

import "github.com/hookferry/hookferry/store"

// testHooks let tests see what the engine decided, where it decided it, so
// that they wait for the event itself instead of polling the database or
// sleeping (river's testSignals). Only export_test.go sets them; in
// production the pointer is nil and every call is a nil check.
type testHooks struct {
	claimed   func([]store.Claim)                // a claim's result reached the loop (maybe empty)
	started   func(store.Claim)                  // the scheduler started an attempt (before the gate)
	givenBack func(why string, cs []store.Claim) // given back without an attempt, and why
	overtime  func(store.Claim)                  // a main-lane attempt moved to the held-back lane
	ended     func(store.Claim)                  // the loop took an attempt's end into account
	gated     func(c store.Claim, passed bool)   // the gate answered; runs before the fence, may block
	recorded  func([]store.Result, error)        // a batch was written (or given up on)
}

// Why a claim is given back without an attempt.
const (
	backForgotten = "forgotten" // its webhook was paused, deleted or erased while it waited
	backFenced    = "fenced"    // the fence: its webhook was forgotten after it was claimed
	backGate      = "gate"      // the database said no (store.Startable)
	backExpired   = "expired"   // it waited until its lease was too short to start
	backStopping  = "stopping"  // the dispatcher is stopping
	backFull      = "full"      // its webhook's queue is full (its limit went down)
)

func (d *Dispatcher) hookClaimed(cs []store.Claim) {
	if d.hooks != nil && d.hooks.claimed != nil {
		d.hooks.claimed(cs)
	}
}

func (d *Dispatcher) hookStarted(c store.Claim) {
	if d.hooks != nil && d.hooks.started != nil {
		d.hooks.started(c)
	}
}

func (d *Dispatcher) hookGivenBack(why string, as []*attempt) {
	if d.hooks != nil && d.hooks.givenBack != nil && len(as) > 0 {
		cs := make([]store.Claim, len(as))
		for i, a := range as {
			cs[i] = a.Claim
		}
		d.hooks.givenBack(why, cs)
	}
}

func (d *Dispatcher) hookOvertime(c store.Claim) {
	if d.hooks != nil && d.hooks.overtime != nil {
		d.hooks.overtime(c)
	}
}

func (d *Dispatcher) hookEnded(c store.Claim) {
	if d.hooks != nil && d.hooks.ended != nil {
		d.hooks.ended(c)
	}
}

func (d *Dispatcher) hookGated(c store.Claim, passed bool) {
	if d.hooks != nil && d.hooks.gated != nil {
		d.hooks.gated(c, passed)
	}
}

func (d *Dispatcher) hookRecorded(rs []store.Result, err error) {
	if d.hooks != nil && d.hooks.recorded != nil {
		d.hooks.recorded(rs, err)
	}
}

// flush is a test's message to the loop: done is closed once every message
// sent before it has been handled and the loop has started what it could;
// with idle, only once no claim is wanted or under way (but a poll) and no
// wake-up waits.
type flush struct {
	done chan struct{}
	idle bool
}
