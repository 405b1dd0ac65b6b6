package delivery

import (
	"context"
	"time"

	"github.com/hookferry/hookferry/store"
)

// result turns an attempt's outcome into the delivery's next state, and logs
// the attempt: one debug line each, a warning when the target was refused as
// a private address.
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
	var outcome string
	switch {
	case out.Kind == Delivered:
		r.Status, outcome = store.StatusDelivered, "delivered"
	case out.StatusCode == 410:
		// Gone: the webhook is paused and this delivery waits with the rest,
		// its retries untouched.
		r.Status, r.Gone, outcome = store.StatusPending, true, "gone"
	case c.SchedulePos < len(d.cfg.RetrySchedule):
		r.Status, outcome = store.StatusPending, outcomeLabel(out.Kind)
		r.NextAttemptAt = now.Add(d.retryDelay(c.SchedulePos, out.RetryAfter))
		r.SchedulePos = c.SchedulePos + 1
	default:
		r.Status, outcome = store.StatusFailed, "failed"
	}
	d.cfg.Metrics.Attempt(outcome, out.Duration)
	attrs := []any{"webhook", c.WebhookID, "delivery", c.DeliveryID, "event", c.EventID, "attempt", c.Attempts + 1,
		"outcome", outcome, "duration_ms", float64(out.Duration.Microseconds()) / 1000}
	if out.StatusCode != 0 {
		attrs = append(attrs, "status_code", out.StatusCode)
	}
	if out.Error != "" {
		attrs = append(attrs, "error", out.Error)
	}
	if !r.NextAttemptAt.IsZero() {
		attrs = append(attrs, "retry_at", r.NextAttemptAt)
	}
	if out.Refused {
		d.log.Warn("delivery: target refused: not a public address", attrs...)
	} else {
		d.log.Debug("delivery: attempt", attrs...)
	}
	return r
}

// retryDelay is the wait before retry pos+1: the schedule's, jittered, or
// what the receiver asked for in Retry-After if longer, up to the schedule's
// longest delay.
func (d *Dispatcher) retryDelay(pos int, retryAfter time.Duration) time.Duration {
	delay := d.cfg.Jitter(d.cfg.RetrySchedule[pos])
	if retryAfter > delay {
		longest := d.cfg.RetrySchedule[0]
		for _, s := range d.cfg.RetrySchedule {
			longest = max(longest, s)
		}
		delay = min(retryAfter, longest)
	}
	return delay
}

func outcomeLabel(k OutcomeKind) string {
	if k == Rejected {
		return "rejected"
	}
	return "unreachable"
}

// recording is an outcome on its way to the recorder.
type recording struct {
	store.Result
	// ordered: the webhook delivers in order, so its next delivery becomes
	// claimable when this is recorded.
	ordered bool
}

func recordingOf(c store.Claim, r store.Result) recording {
	return recording{Result: r, ordered: c.Ordered}
}

// release gives a claim back without charging an attempt; a zero next keeps
// its due time.
func release(c store.Claim, next time.Time) store.Result {
	return store.Result{DeliveryID: c.DeliveryID, ClaimSeq: c.ClaimSeq, WebhookID: c.WebhookID,
		Status: store.StatusPending, NextAttemptAt: next, SchedulePos: c.SchedulePos}
}

// Recording outcomes: a batch that cannot be written is tried again after a
// back-off, at most maxRecordTries times; its leases stay ours meanwhile, and
// if they expire first another worker delivers again (at least once).
const (
	maxRecordBatch = 512
	maxRecordTries = 8
	recordTimeout  = 10 * time.Second
)

// record writes outcomes in batches until results closes, or until ctx ends
// (then what is left is only counted: its leases will expire).
func (d *Dispatcher) record(ctx context.Context) {
	for r := range d.results {
		batch, ordered := []store.Result{r.Result}, r.ordered
	drain:
		for len(batch) < maxRecordBatch {
			select {
			case r, ok := <-d.results:
				if !ok {
					break drain
				}
				batch, ordered = append(batch, r.Result), ordered || r.ordered
			default:
				break drain
			}
		}
		err := d.write(ctx, batch)
		for _, r := range batch {
			if r.Gone {
				d.fence.unhold(r.WebhookID) // paused now, unless the write failed
			}
		}
		d.hookRecorded(batch, err)
		var next time.Time
		for _, r := range batch {
			if r.Status == store.StatusPending && !r.NextAttemptAt.IsZero() && (next.IsZero() || r.NextAttemptAt.Before(next)) {
				next = r.NextAttemptAt
			}
		}
		d.tell(recorded{n: len(batch), nextRetry: next, ordered: ordered})
	}
}

// write records batch, trying again after failures; it returns the last
// error when it gives up.
func (d *Dispatcher) write(ctx context.Context, batch []store.Result) error {
	backoff := 50 * time.Millisecond
	for try := 1; ; try++ {
		wctx, cancel := context.WithTimeout(ctx, recordTimeout)
		paused, err := d.store.Record(wctx, batch, d.cfg.AutoPauseAfter)
		cancel()
		if err == nil {
			for _, p := range paused {
				d.log.Warn("delivery: webhook paused", "webhook", p.WebhookID, "reason", p.Reason)
			}
			return nil
		}
		if try == maxRecordTries || ctx.Err() != nil {
			d.log.Error("delivery: recording outcomes failed; their leases will expire and they will be sent again",
				"error", err, "deliveries", len(batch), "tries", try)
			return err
		}
		d.log.Warn("delivery: recording outcomes failed; retrying", "error", err, "retry_in", backoff)
		sleep(ctx, backoff)
		backoff = min(2*backoff, 5*time.Second)
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
