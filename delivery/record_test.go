package delivery

import (
	"log/slog"
	"testing"
	"time"

	"github.com/hookferry/hookferry/store"
	"github.com/stretchr/testify/require"
)

// recordingDispatcher is a dispatcher that can only turn outcomes into
// results: no store, no jitter, a fixed clock.
func recordingDispatcher(now time.Time, schedule ...time.Duration) *Dispatcher {
	return &Dispatcher{log: slog.New(slog.DiscardHandler), fence: newFence(), cfg: Config{
		RetrySchedule: schedule, Now: func() time.Time { return now },
		Jitter: func(d time.Duration) time.Duration { return d },
	}}
}

func TestResultHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	d := recordingDispatcher(now, 5*time.Second, 5*time.Minute, 10*time.Hour)
	claim := store.Claim{DeliveryID: 7, ClaimSeq: 3, WebhookID: "wh_1"}
	for _, tc := range []struct {
		name       string
		status     int
		retryAfter time.Duration
		pos        int
		want       time.Duration // after now
	}{
		{"429 asks for an hour", 429, time.Hour, 0, time.Hour},
		{"503 asks for a month: capped at the longest delay of the schedule", 503, 30 * 24 * time.Hour, 0, 10 * time.Hour},
		{"shorter than the schedule: the schedule's", 429, time.Second, 1, 5 * time.Minute},
		{"no Retry-After", 503, 0, 0, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := claim
			c.SchedulePos = tc.pos
			r := d.result(c, Outcome{Kind: Rejected, StatusCode: tc.status, RetryAfter: tc.retryAfter, Error: "busy"})
			require.Equal(t, store.StatusPending, r.Status)
			require.True(t, r.Attempted)
			require.Equal(t, now.Add(tc.want), r.NextAttemptAt)
			require.Equal(t, tc.pos+1, r.SchedulePos)
		})
	}
	t.Run("out of retries, whatever it asks", func(t *testing.T) {
		c := claim
		c.SchedulePos = 3
		r := d.result(c, Outcome{Kind: Rejected, StatusCode: 429, RetryAfter: time.Hour})
		require.Equal(t, store.StatusFailed, r.Status)
		require.True(t, r.NextAttemptAt.IsZero())
	})
}

func TestResultGoneHoldsTheDelivery(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	d := recordingDispatcher(now, time.Second)
	r := d.result(store.Claim{DeliveryID: 7, ClaimSeq: 3, WebhookID: "wh_1", SchedulePos: 0},
		Outcome{Kind: Rejected, StatusCode: 410, Error: "410 Gone"})
	require.Equal(t, store.Result{DeliveryID: 7, ClaimSeq: 3, WebhookID: "wh_1", Status: store.StatusPending, Gone: true,
		Attempted: true, AttemptedAt: now, StatusCode: 410, Error: "410 Gone"}, r,
		"pending with no new due time (its webhook is paused), its retries untouched")
}

func TestResultCancelledIsGivenBack(t *testing.T) {
	t.Parallel()
	d := recordingDispatcher(time.Now(), time.Second)
	r := d.result(store.Claim{DeliveryID: 7, ClaimSeq: 3, WebhookID: "wh_1", SchedulePos: 1}, Outcome{Kind: Cancelled})
	require.Equal(t, store.Result{DeliveryID: 7, ClaimSeq: 3, WebhookID: "wh_1", Status: store.StatusPending, SchedulePos: 1}, r,
		"not attempted: nothing charged, its due time kept")
}
