package main

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// The history phase's other tenant, whose webhooks the bulk rows belong to.
const (
	historyTenant = "history"
	historyPrefix = "evt_hist"
)

// HistorySetup is what the history phase put in the database before it
// measured: events, each with one DELIVERED delivery (delivered at the first
// attempt: no attempt row), of
// another tenant's webhooks, written in bulk SQL.
type HistorySetup struct {
	Events   int     `json:"events"`
	Webhooks int     `json:"webhooks"`
	AgeMin   float64 `json:"age_min"` // how long ago they were delivered (retention counts from there)
	InsertS  float64 `json:"insert_s"`
	AnalyzeS float64 `json:"analyze_s"`
	Analyzed string  `json:"analyzed"` // what was run after the inserts
	// DBBytes is the growth of the database by the bulk rows, per event.
	DBBytes *BytesPerEvent `json:"db_bytes,omitempty"`
}

// historyAge is how long before now the history rows were delivered: well
// inside the server's default retention (720h), so no prune takes them
// during the phase.
const historyAge = 30 * time.Minute

// historySetup registers --history-webhooks webhooks of another tenant
// through the API, then inserts --history events with their DELIVERED
// deliveries and attempts in bulk SQL, and analyzes.
func (b *bench) historySetup(ctx context.Context) (*HistorySetup, error) {
	o := b.o
	res := &HistorySetup{Events: o.History, Webhooks: o.HistoryWebhooks, AgeMin: historyAge.Minutes()}
	token, err := b.servers[0].createToken(ctx, historyTenant, historyTenant, "WEBHOOK_MANAGEMENT")
	if err != nil {
		return nil, err
	}
	a := b.api.as(token, eventType)
	urls := make([]string, o.HistoryWebhooks)
	for i := range urls {
		urls[i] = fmt.Sprintf("%s/history/%d", b.recv.URL, i)
	}
	hooks, err := a.register(ctx, urls)
	if err != nil {
		return nil, err
	}
	before := b.dbc.sizeOrLog(ctx)
	at := time.Now().Add(-historyAge).UTC().Truncate(time.Microsecond)
	logf("history: inserting %d events, each with a DELIVERED delivery (of %d webhooks of tenant %s), in bulk SQL, %d per transaction",
		o.History, o.HistoryWebhooks, historyTenant, bulkChunk)
	start := time.Now()
	d := b.dbc
	err = d.bulkEvents(ctx, historyPrefix, historyTenant, "history-bulk", o.History, at, func() int64 { return 0 },
		func(ctx context.Context, tx *sql.Tx, lo, hi int) error {
			// As Record leaves a delivery answered 204 on its first attempt
			// (its row is the log of that attempt: no attempt row).
			if err := d.insertDeliveries(ctx, tx, historyPrefix, hooks, lo, hi,
				[]string{"status", "attempts", "schedule_pos", "next_attempt_at", "leased_until", "claim_seq", "last_status_code", "last_error", "created_at", "delivered_at", "finished_at"},
				[]string{"'DELIVERED'", "1", "0", "NULL", "NULL", "1", "204", "''", d.typed(3, "timestamptz"), d.typed(3, "timestamptz"), d.typed(3, "timestamptz")},
				at); err != nil {
				return fmt.Errorf("deliveries: %w", err)
			}
			if hi%(5*bulkChunk) == 0 {
				logf("history: %d inserted, %.0f/s", hi, float64(hi)/time.Since(start).Seconds())
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	res.InsertS = round2(time.Since(start).Seconds())
	start = time.Now()
	if !o.Analyze {
		res.Analyzed = "nothing (--analyze=false)"
	} else if res.Analyzed, err = d.analyze(ctx); err != nil {
		return nil, err
	}
	res.AnalyzeS = round2(time.Since(start).Seconds())
	res.DBBytes = perDelivered(before, d.sizeOrLog(ctx), o.History, o.DB)
	logf("history: inserted in %.1f s (%.0f events/s); %s in %.1f s", res.InsertS, float64(o.History)/res.InsertS, res.Analyzed, res.AnalyzeS)
	return res, nil
}

// throughputLike runs the throughput phase's measurement under another name,
// with the database's growth per delivered delivery.
func (b *bench) throughputLike(ctx context.Context, name string, perf string) *PhaseResult {
	o := b.o
	logf("%s: %d events to %d webhook(s) from %d publishers", name, o.Events, o.Webhooks, o.Publishers)
	var rec *perfRecord
	if perf != "" {
		var err error
		if rec, err = startPerf(b.servers[0].pid(), perf); err != nil {
			logf("%v; going on without a profile", err)
		}
	}
	before := b.dbc.sizeOrLog(ctx)
	r := measure(ctx, b.recv, b.cpuScope(), b.epoch, name, o.Events*o.Webhooks, o.Wait, func() publishResult {
		return b.api.publishParallel(ctx, b.epoch, name, o.Events, o.Publishers, o.Batch)
	})
	rec.stop()
	r.Publishers = o.Publishers
	r.DBBytes = perDelivered(before, b.dbc.sizeOrLog(ctx), r.Delivered, o.DB)
	return r
}

// cpuScope is what the phases' CPU meters count beside the bench.
func (b *bench) cpuScope() cpuScope {
	s := cpuScope{pids: b.pids()}
	if b.dbc != nil && b.dbc.kind == "postgres" {
		s.database = b.dbc.name
	}
	return s
}
