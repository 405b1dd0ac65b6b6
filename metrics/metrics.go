// Package metrics holds hookferry's Prometheus metrics. A nil *Metrics is valid
// and records nothing, so tests need not care.
package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the service's instruments.
type Metrics struct {
	eventsPublished prometheus.Counter
	deliveries      *prometheus.CounterVec
	attemptSeconds  prometheus.Histogram
	inFlight        prometheus.Gauge
	heldBack        prometheus.Gauge
	pruned          *prometheus.CounterVec
}

// New registers the metrics with reg. queueDepth, when set, is asked for the
// number of waiting deliveries at every scrape.
func New(reg prometheus.Registerer, queueDepth func(context.Context) (int64, error)) *Metrics {
	m := &Metrics{
		eventsPublished: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookferry_events_published_total", Help: "Events accepted by POST /v1/events.",
		}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookferry_delivery_attempts_total",
			Help: "Delivery attempts by outcome: delivered, rejected (non-2xx), unreachable, failed (out of retries), released.",
		}, []string{"outcome"}),
		attemptSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hookferry_delivery_attempt_duration_seconds",
			Help:    "Duration of one delivery attempt, from request to response.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hookferry_deliveries_in_flight", Help: "Deliveries being sent by this instance now.",
		}),
		heldBack: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hookferry_webhooks_held_back",
			Help: "Webhooks this instance holds back: their attempts hang, time out or fail, so they get the held-back workers only.",
		}),
		pruned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookferry_pruned_rows_total", Help: "Rows removed by retention, by table: deliveries, attempts, events.",
		}, []string{"table"}),
	}
	reg.MustRegister(m.eventsPublished, m.deliveries, m.attemptSeconds, m.inFlight, m.heldBack, m.pruned)
	if queueDepth != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hookferry_queue_depth", Help: "Deliveries waiting, paused webhooks' included (all instances).",
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, err := queueDepth(ctx)
			if err != nil {
				return -1
			}
			return float64(n)
		}))
	}
	return m
}

// EventPublished counts an accepted event.
func (m *Metrics) EventPublished() {
	if m != nil {
		m.eventsPublished.Inc()
	}
}

// Attempt records one attempt's outcome and duration.
func (m *Metrics) Attempt(outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.deliveries.WithLabelValues(outcome).Inc()
	if d > 0 {
		m.attemptSeconds.Observe(d.Seconds())
	}
}

// InFlight adds delta to the deliveries being sent.
func (m *Metrics) InFlight(delta int) {
	if m != nil {
		m.inFlight.Add(float64(delta))
	}
}

// HeldBack sets the number of webhooks held back.
func (m *Metrics) HeldBack(n int) {
	if m != nil {
		m.heldBack.Set(float64(n))
	}
}

// Pruned counts rows removed by retention from table.
func (m *Metrics) Pruned(table string, n int64) {
	if m != nil && n > 0 {
		m.pruned.WithLabelValues(table).Add(float64(n))
	}
}
