package delivery_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hookferry/hookferry/delivery"
	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/webhook"
	"github.com/stretchr/testify/require"
)

// senderParsesRetryAfter says whether this build's sender fills
// Outcome.RetryAfter (the sender's own tests cover how it parses).
func senderParsesRetryAfter(t *testing.T) bool {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	sender, err := delivery.NewSender(delivery.SenderConfig{RootCAs: roots(), AllowPrivate: true})
	require.NoError(t, err)
	defer sender.Close()
	w, err := webhook.New(owner, srv.URL, srv.URL, []string{"probe"}, webhook.SigningSymmetric, time.Now(), nil)
	require.NoError(t, err)
	out := sender.Send(ctx, delivery.Message{URL: srv.URL, Keys: []string{w.Secret}, EventID: "evt_probe", Body: []byte(`{}`)})
	require.Equal(t, http.StatusTooManyRequests, out.StatusCode)
	return out.RetryAfter == 2*time.Minute
}

// TestRetryAfterPostponesTheRetry: a 429 with Retry-After in seconds and a
// 503 with an HTTP date put the next attempt where the receiver asked, not
// at the schedule's next delay (1 ms), capped at the schedule's longest.
// The dispatcher's part alone is TestResultHonoursRetryAfter.
func TestRetryAfterPostponesTheRetry(t *testing.T) {
	t.Parallel()
	if !senderParsesRetryAfter(t) {
		t.Skip("needs a sender that fills Outcome.RetryAfter (the sender branch); TestResultHonoursRetryAfter covers the dispatcher's part")
	}
	eachBackend(t, func(t *testing.T, e *env) {
		seconds := e.receiver(status(http.StatusTooManyRequests), withHeader("Retry-After", "3600"))
		at := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
		date := e.receiver(status(http.StatusServiceUnavailable), withHeader("Retry-After", at.Format(http.TimeFormat)), types("payment.failed"))
		far := e.receiver(status(http.StatusTooManyRequests), withHeader("Retry-After", "864000"), types("invoice.paid")) // ten days
		before := time.Now()
		e.publish(owner.TenantID, "order.created", 1)
		e.publish(owner.TenantID, "payment.failed", 1)
		e.publish(owner.TenantID, "invoice.paid", 1)
		run := e.run(delivery.Config{RetrySchedule: []time.Duration{time.Millisecond, 3 * time.Hour}}, delivery.SenderConfig{})
		run.results("the three refusals recorded", 3, func(r store.Result) bool { return r.Attempted })
		after := time.Now()

		next := func(rc *receiver) time.Time {
			ds := e.deliveries(rc)
			require.Equal(t, 1, len(ds))
			require.NotNil(t, ds[0].NextAttemptAt)
			return *ds[0].NextAttemptAt
		}
		require.WithinRange(t, next(seconds), before.Add(time.Hour), after.Add(time.Hour))
		require.WithinRange(t, next(date), at.Add(-time.Second), at.Add(time.Second))
		require.WithinRange(t, next(far), before.Add(3*time.Hour), after.Add(3*time.Hour), "capped at the schedule's longest delay")
		run.flush(true)
		for _, rc := range []*receiver{seconds, date, far} {
			require.Equal(t, 1, len(rc.events()), "the retry is not due")
		}
	})
}
