package delivery

import (
	"testing"
	"time"

	"github.com/hookferry/hookferry/store"
)

// Why a claim was given back without an attempt (GivenBack.Why).
const (
	BackForgotten = backForgotten
	BackFenced    = backFenced
	BackGate      = backGate
	BackExpired   = backExpired
	BackStopping  = backStopping
)

// LeaseMargin is how long a lease must still last for an attempt to start.
func LeaseMargin(s *Sender) time.Duration { return leaseMargin(s) }

// Signals is what a dispatcher under test reports, each on its channel, in
// the order it happened. The channels are buffered; a test that lets one
// fill up fails.
type Signals struct {
	Claimed   chan []store.Claim // a claim's result reached the loop, maybe empty
	Started   chan store.Claim   // the scheduler started an attempt (the gate comes next)
	GivenBack chan GivenBack     // claims given back without an attempt
	Overtime  chan store.Claim   // a main-lane attempt moved to the held-back lane
	Ended     chan store.Claim   // the loop took an attempt's end into account
	Recorded  chan Recorded      // a batch of outcomes was written, or given up on
}

// GivenBack is claims given back without an attempt, and why (Back…).
type GivenBack struct {
	Why    string
	Claims []store.Claim
}

// Recorded is a batch the recorder wrote; Err when it gave up on it.
type Recorded struct {
	Results []store.Result
	Err     error
}

const signalBuffer = 1 << 14

// Observe makes d report on the returned channels; call it before Run.
func Observe(t testing.TB, d *Dispatcher) *Signals {
	s := &Signals{
		Claimed:   make(chan []store.Claim, signalBuffer),
		Started:   make(chan store.Claim, signalBuffer),
		GivenBack: make(chan GivenBack, signalBuffer),
		Overtime:  make(chan store.Claim, signalBuffer),
		Ended:     make(chan store.Claim, signalBuffer),
		Recorded:  make(chan Recorded, signalBuffer),
	}
	h := d.hooks
	if h == nil {
		h = &testHooks{}
		d.hooks = h
	}
	h.claimed = func(cs []store.Claim) { send(t, "Claimed", s.Claimed, cs) }
	h.started = func(c store.Claim) { send(t, "Started", s.Started, c) }
	h.givenBack = func(why string, cs []store.Claim) { send(t, "GivenBack", s.GivenBack, GivenBack{why, cs}) }
	h.overtime = func(c store.Claim) { send(t, "Overtime", s.Overtime, c) }
	h.ended = func(c store.Claim) { send(t, "Ended", s.Ended, c) }
	h.recorded = func(rs []store.Result, err error) {
		send(t, "Recorded", s.Recorded, Recorded{append([]store.Result(nil), rs...), err})
	}
	return s
}

func send[T any](t testing.TB, name string, ch chan T, v T) {
	select {
	case ch <- v:
	default:
		t.Errorf("test signal %s: channel full (%d): the test does not read it", name, cap(ch))
	}
}

// OnGate makes every attempt call f once the gate has answered, before the
// fence; f may block, holding that attempt there. Call it before Run.
func OnGate(d *Dispatcher, f func(c store.Claim, passed bool)) {
	if d.hooks == nil {
		d.hooks = &testHooks{}
	}
	d.hooks.gated = f
}

// Flush returns once d's loop has handled every message sent to it before
// the call and has started every attempt it could start after them. With
// idle, it also waits until no claim is under way or wanted.
func Flush(t testing.TB, d *Dispatcher, idle bool) {
	t.Helper()
	f := flush{done: make(chan struct{}), idle: idle}
	d.tell(f)
	select {
	case <-f.done:
	case <-d.loopDone:
	case <-time.After(20 * time.Second):
		t.Fatalf("the dispatcher's loop did not answer a flush within 20s")
	}
}
