package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	hookferry "github.com/hookferry/hookferry/clients/go"
)

// pauseType is what the pause phase's webhooks subscribe to.
const pauseType = "order.cancelled"

// PauseResult is what the pause phase found: attempts that started after a
// pause's or a delete's 200, per receiver.
type PauseResult struct {
	Webhooks         int        `json:"webhooks"`
	EventsPerWebhook int        `json:"events_per_webhook"`
	Runs             []PauseRun `json:"receivers"`
}

// PauseRun is the pause phase on one receiver.
type PauseRun struct {
	Receiver      string `json:"receiver"` // slow or hanging
	Behaviour     string `json:"behaviour"`
	Counted       string `json:"counted"` // what an arrival is
	Deliveries    int    `json:"deliveries"`
	PublishErrors int    `json:"publish_errors"`
	// BusyAtFirstOp is, when the first pause was sent, the requests being
	// held (slow) or the connections accepted so far (hanging).
	BusyAtFirstOp     int       `json:"busy_at_first_op"`
	InFlightAtFirstOp []float64 `json:"deliveries_in_flight_at_first_op"` // of each instance
	SettleMS          float64   `json:"settle_ms"`                        // waited after the last 200
	Pause             PauseOp   `json:"pause"`
	Delete            PauseOp   `json:"delete"`
}

// PauseOp is what followed one kind of operation on its half of the webhooks.
type PauseOp struct {
	Webhooks    int     `json:"webhooks"`
	Errors      int     `json:"errors"`  // calls that did not answer 200
	CallMS      Latency `json:"call_ms"` // request sent -> 200 received
	Before      int     `json:"arrivals_before_200"`
	After       int     `json:"arrivals_after_200"` // must be 0
	WebhooksHit int     `json:"webhooks_hit_after_200"`
	MaxLagMS    float64 `json:"max_lag_ms"` // the latest arrival after its 200, after it
	Held        *Held   `json:"held,omitempty"`
}

// Held is the state of the paused webhooks once the phase settled.
type Held struct {
	StillPaused int `json:"still_paused"`
	// Intact counts the webhooks still PAUSED whose deliveries are all
	// PENDING (pending = buffered_events = events - delivered, none FAILED)
	// but those answered 200 for a request that arrived before the pause's
	// 200, and whose attempts are no more than the arrivals before it.
	Intact        int   `json:"intact"`
	BufferedAt200 int64 `json:"buffered_at_200"` // the pause responses' buffered_events, summed
	BufferedEnd   int64 `json:"buffered_end"`    // GET /v1/webhooks/{id}, summed
	Pending       int   `json:"pending"`
	Delivered     int   `json:"delivered"`
	Failed        int   `json:"failed"`
	Attempts      int   `json:"attempts"`            // the deliveries' attempts, summed
	Answered      int   `json:"answered_before_200"` // distinct events answered 200 for a request that arrived before the 200
}

// failures lists what the phase must not have seen.
func (p *PauseResult) failures() []error {
	var errs []error
	for _, r := range p.Runs {
		for _, op := range []struct {
			name string
			op   PauseOp
		}{{"pause", r.Pause}, {"delete", r.Delete}} {
			if op.op.After > 0 {
				errs = append(errs, fmt.Errorf("pause (%s receiver): %d arrivals at %d webhooks after their %s's 200, the latest %.0f ms after it",
					r.Receiver, op.op.After, op.op.WebhooksHit, op.name, op.op.MaxLagMS))
			}
			if op.op.Errors > 0 {
				errs = append(errs, fmt.Errorf("pause (%s receiver): %d %s calls failed", r.Receiver, op.op.Errors, op.name))
			}
		}
		if h := r.Pause.Held; h != nil && h.Intact < r.Pause.Webhooks {
			errs = append(errs, fmt.Errorf("pause (%s receiver): %d of %d paused webhooks lost or sent held deliveries", r.Receiver, r.Pause.Webhooks-h.Intact, r.Pause.Webhooks))
		}
	}
	return errs
}

func pauseReceivers(list string) ([]string, error) {
	var out []string
	for _, r := range strings.Split(list, ",") {
		switch r = strings.TrimSpace(r); r {
		case "slow", "hanging":
			out = append(out, r)
		default:
			return nil, fmt.Errorf("--pause-receivers: unknown receiver %q (slow, hanging)", r)
		}
	}
	return out, nil
}

func (b *bench) pause(ctx context.Context, receivers []string) (*PauseResult, error) {
	res := &PauseResult{Webhooks: b.o.PauseWebhooks, EventsPerWebhook: b.o.PauseEvents}
	var errs []error
	for _, kind := range receivers {
		if ctx.Err() != nil {
			break
		}
		r, err := b.pauseOn(ctx, kind)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s receiver: %w", kind, err))
			continue
		}
		res.Runs = append(res.Runs, r)
	}
	return res, errors.Join(errs...)
}

// pauseTarget is where the webhooks of one pause run point, and what arrived there.
type pauseTarget interface {
	url(i int) string
	// arrivals splits webhook i's arrivals at t (since the epoch).
	arrivals(i int, t time.Duration) (before, after int, lastLag time.Duration)
	// busy is the requests held now (slow) or connections accepted so far (hanging).
	busy() int
	// answered is how many distinct events webhook i was answered 200 for,
	// by a request that arrived at or before t.
	answered(i int, t time.Duration) int
	close()
}

type slowTarget struct{ r *SlowReceiver }

func (s slowTarget) url(i int) string { return fmt.Sprintf("%s/pause/%d", s.r.URL, i) }
func (s slowTarget) arrivals(i int, t time.Duration) (int, int, time.Duration) {
	return s.r.arrivals(fmt.Sprintf("/pause/%d", i), t)
}
func (s slowTarget) busy() int { return s.r.held() }
func (s slowTarget) answered(i int, t time.Duration) int {
	return s.r.answered(fmt.Sprintf("/pause/%d", i), t)
}
func (s slowTarget) close() { s.r.close() }

type hangTarget struct{ h *HangingReceiver }

func (h hangTarget) url(i int) string { return fmt.Sprintf("%s/pause/%d", h.h.url(i), i) }
func (h hangTarget) arrivals(i int, t time.Duration) (int, int, time.Duration) {
	return h.h.accepted(i, t)
}
func (h hangTarget) busy() int                       { n, _ := h.h.acceptedSince(0); return n }
func (h hangTarget) answered(int, time.Duration) int { return 0 }
func (h hangTarget) close()                          { h.h.close() }

// pauseOn runs the pause phase on one receiver: webhooks with a backlog and
// busy workers, half paused and half deleted, then what arrived after.
func (b *bench) pauseOn(ctx context.Context, kind string) (_ PauseRun, err error) {
	o := b.o
	run := PauseRun{Receiver: kind}
	var target pauseTarget
	var settle, warm time.Duration
	switch kind {
	case "slow":
		slow, err := startSlowReceiver(b.id, b.epoch, o.SlowHold)
		if err != nil {
			return run, err
		}
		target, settle, warm = slowTarget{slow}, 2*o.SlowHold+3*time.Second, o.SlowHold
		run.Behaviour = fmt.Sprintf("holds each request %s, then 200", o.SlowHold)
		run.Counted = "requests, at handler start (headers read)"
	default:
		hang, err := startHanging(b.id, b.epoch, o.HangingMode, o.PauseWebhooks)
		if err != nil {
			return run, err
		}
		target, settle, warm = hangTarget{hang}, 2*b.timeout+3*time.Second, time.Second
		run.Behaviour = hang.describe() + ", one port per webhook"
		run.Counted = "TCP connections, at accept"
	}
	defer target.close()

	token, err := b.servers[0].createToken(ctx, "pause", kind, "WEBHOOK_MANAGEMENT", "EVENTS_PUBLISH")
	if err != nil {
		return run, err
	}
	a := b.api.as(token, pauseType, kind)
	urls := make([]string, o.PauseWebhooks)
	for i := range urls {
		urls[i] = target.url(i)
	}
	ids, err := a.register(ctx, urls)
	if err != nil {
		return run, err
	}
	defer func() {
		err = errors.Join(err, a.deleteAll(context.WithoutCancel(ctx), ids))
		target.close() // ends the attempts still held
		b.waitIdle(ctx, 2*b.timeout+5*time.Second)
	}()

	pub := a.publishParallel(ctx, b.epoch, "pause-"+kind, o.PauseEvents, 4, 1)
	run.Deliveries, run.PublishErrors = pub.deliveries, pub.errors
	if pub.firstErr != nil {
		return run, fmt.Errorf("%d publishes failed; the first: %w", pub.errors, pub.firstErr)
	}
	// Wait for the first arrival, then long enough for the workers to fill
	// and the claims to queue up behind them.
	for deadline := time.Now().Add(b.timeout + 5*time.Second); time.Now().Before(deadline) && target.busy() == 0; {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(warm)
	run.BusyAtFirstOp, run.InFlightAtFirstOp = target.busy(), b.inFlight(ctx)
	logf("pause (%s receiver): %d deliveries queued to %d webhooks; %d busy at the receiver, in flight %v; pausing the even ones, deleting the odd ones",
		kind, pub.deliveries, o.PauseWebhooks, run.BusyAtFirstOp, run.InFlightAtFirstOp)

	at200 := make([]time.Duration, len(ids)) // since the epoch; 0: the call failed
	buffered := make([]int64, len(ids))
	var pauseCalls, deleteCalls []time.Duration
	for i, id := range ids {
		sent := time.Now()
		var status int
		var body []byte
		var hook *hookferry.Webhook
		if i%2 == 0 {
			resp, err := a.client.PauseWebhookWithResponse(ctx, id, a.manage)
			if err != nil {
				return run, fmt.Errorf("pause %s: %w", id, err)
			}
			status, body, hook = resp.StatusCode(), resp.Body, resp.JSON200
		} else {
			resp, err := a.client.DeleteWebhookWithResponse(ctx, id, a.manage)
			if err != nil {
				return run, fmt.Errorf("delete %s: %w", id, err)
			}
			status, body, hook = resp.StatusCode(), resp.Body, resp.JSON200
		}
		took := time.Since(sent)
		op := &run.Pause
		if i%2 == 1 {
			op = &run.Delete
		}
		op.Webhooks++
		if status != http.StatusOK || hook == nil {
			op.Errors++
			logf("pause (%s receiver): webhook %d: %d %s", kind, i, status, body)
			continue
		}
		at200[i], buffered[i] = time.Since(b.epoch), hook.BufferedEvents
		if i%2 == 0 {
			pauseCalls = append(pauseCalls, took)
		} else {
			deleteCalls = append(deleteCalls, took)
		}
	}
	run.Pause.CallMS, run.Delete.CallMS = latencyOf(pauseCalls), latencyOf(deleteCalls)
	time.Sleep(settle)
	run.SettleMS = ms(settle)

	run.Pause.Held = &Held{}
	for i, id := range ids {
		if at200[i] == 0 {
			continue
		}
		op := &run.Pause
		if i%2 == 1 {
			op = &run.Delete
		}
		before, after, lag := target.arrivals(i, at200[i])
		op.Before += before
		op.After += after
		if after > 0 {
			op.WebhooksHit++
			op.MaxLagMS = max(op.MaxLagMS, ms(lag))
		}
		if i%2 == 1 {
			continue
		}
		h := run.Pause.Held
		h.BufferedAt200 += buffered[i]
		state, err := a.heldState(ctx, id)
		if err != nil {
			return run, err
		}
		answered := target.answered(i, at200[i])
		h.Answered += answered
		h.BufferedEnd += state.buffered
		h.Pending += state.pending
		h.Delivered += state.delivered
		h.Failed += state.failed
		h.Attempts += state.attempts
		if state.paused {
			h.StillPaused++
		}
		if state.paused && state.failed == 0 && int64(state.pending) == state.buffered &&
			state.pending+state.delivered == o.PauseEvents && state.delivered == answered && state.attempts <= before {
			h.Intact++
		} else {
			logf("pause (%s receiver): paused webhook %d: paused=%t buffered_events %d (%d at the 200), %d pending, %d delivered, %d failed, %d attempts; before the 200 %d arrivals, %d answered 200",
				kind, i, state.paused, state.buffered, buffered[i], state.pending, state.delivered, state.failed, state.attempts, before, answered)
		}
	}
	return run, nil
}

// heldState is a webhook's status and its deliveries by status.
type heldState struct {
	paused                     bool
	buffered                   int64
	pending, delivered, failed int
	attempts                   int // summed over the deliveries
}

func (a *api) heldState(ctx context.Context, id string) (heldState, error) {
	var s heldState
	resp, err := a.client.GetWebhookWithResponse(ctx, id, nil, a.manage)
	if err != nil {
		return s, fmt.Errorf("get %s: %w", id, err)
	}
	if resp.JSON200 == nil {
		return s, fmt.Errorf("get %s: %s %s", id, resp.Status(), resp.Body)
	}
	s.paused, s.buffered = resp.JSON200.Status == hookferry.WebhookStatusPAUSED, resp.JSON200.BufferedEvents
	limit := 100
	params := &hookferry.ListDeliveriesParams{Limit: &limit}
	for {
		resp, err := a.client.ListDeliveriesWithResponse(ctx, id, params, a.manage)
		if err != nil {
			return s, fmt.Errorf("list deliveries of %s: %w", id, err)
		}
		if resp.JSON200 == nil {
			return s, fmt.Errorf("list deliveries of %s: %s %s", id, resp.Status(), resp.Body)
		}
		for _, d := range resp.JSON200.Items {
			s.attempts += d.Attempts
			switch d.Status {
			case hookferry.DeliveryStatusPENDING:
				s.pending++
			case hookferry.DeliveryStatusDELIVERED:
				s.delivered++
			case hookferry.DeliveryStatusFAILED:
				s.failed++
			}
		}
		if resp.JSON200.NextCursor == nil {
			return s, nil
		}
		params.Cursor = resp.JSON200.NextCursor
	}
}

func printPause(p *PauseResult) {
	fmt.Printf("pause: %d webhooks, %d events each; the even ones paused, the odd ones deleted, one after another, through instance A; an arrival after the 200 is one that reached the receiver after the bench had the webhook's 200 (must be 0)\n",
		p.Webhooks, p.EventsPerWebhook)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "receiver\top\twebhooks\tcall p50 ms\tarrived before\tafter 200\twebhooks hit\tlatest lag ms\tstill paused\tintact\tbuffered at 200/end\tpending/delivered/failed\tattempts\t")
	for _, r := range p.Runs {
		for _, x := range []struct {
			name string
			op   PauseOp
		}{{"pause", r.Pause}, {"delete", r.Delete}} {
			op := x.op
			held := "\t\t\t\t\t"
			if h := op.Held; h != nil {
				held = fmt.Sprintf("%d\t%d\t%d/%d\t%d/%d/%d\t%d\t", h.StillPaused, h.Intact, h.BufferedAt200, h.BufferedEnd, h.Pending, h.Delivered, h.Failed, h.Attempts)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.2f\t%d\t%d\t%d\t%.0f\t%s\n", r.Receiver, x.name, op.Webhooks, op.CallMS.P50, op.Before, op.After, op.WebhooksHit, op.MaxLagMS, held)
		}
	}
	_ = tw.Flush()
	for _, r := range p.Runs {
		inFlight := make([]string, len(r.InFlightAtFirstOp))
		for i, v := range r.InFlightAtFirstOp {
			inFlight[i] = fmt.Sprintf("%s=%g", instanceName(i), v)
		}
		fmt.Printf("pause (%s): %s; counted: %s; %d deliveries queued; at the first pause %d busy at the receiver, in flight %s; waited %.1f s after the last 200\n",
			r.Receiver, r.Behaviour, r.Counted, r.Deliveries, r.BusyAtFirstOp, strings.Join(inFlight, " "), r.SettleMS/1000)
	}
}
