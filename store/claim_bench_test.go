package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/hookferry/hookferry/webhook"
)

// claimBench publishes due events to one webhook on every backend, then runs
// step b.N times.
func claimBench(b *testing.B, due int, step func(b *testing.B, st *store.Store, i int)) {
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			st, err := store.Open(ctx, be.URL(b), store.Options{Keys: storetest.Keys()})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			register(b, st, webhook.Owner{TenantID: "acme", UserID: "alice"}, "https://example.com/h")
			for left := due; left > 0; {
				events := make([]store.Event, min(left, store.MaxBatch))
				for i := range events {
					events[i] = store.Event{TenantID: "acme", Type: "order.created", Data: json.RawMessage(`{}`)}
				}
				if _, err := st.PublishBatch(ctx, events); err != nil {
					b.Fatal(err)
				}
				left -= len(events)
			}
			if be.Name == "postgres" { // as autovacuum soon does; nothing analyzes a SQLite file
				if err := st.GormDB().Exec("ANALYZE deliveries").Error; err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				step(b, st, i)
			}
		})
	}
}

// claimThen claims up to limit and records each claim as result says.
func claimThen(b *testing.B, st *store.Store, limit int, result func(store.Claim) store.Result) {
	cs, err := st.Claim(ctx, store.ClaimRequest{Limit: limit, PerWebhook: 16, Lease: time.Minute})
	if err != nil || len(cs) == 0 {
		b.Fatal(err, len(cs))
	}
	rs := make([]store.Result, len(cs))
	for j, c := range cs {
		rs[j] = result(c)
	}
	if _, err := st.Record(ctx, rs, 0); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkClaimAndRelease claims up to a limit that changes every time, as
// the dispatcher's room does, from 100 due deliveries of one webhook, and
// gives the claims back. Profile it to see what a claim costs:
//
//	go test ./store -run - -bench Claim -cpuprofile cpu.out
func BenchmarkClaimAndRelease(b *testing.B) {
	claimBench(b, 100, func(b *testing.B, st *store.Store, i int) {
		claimThen(b, st, 13+i%4, func(c store.Claim) store.Result {
			return store.Result{DeliveryID: c.DeliveryID, ClaimSeq: c.ClaimSeq, WebhookID: c.WebhookID, Status: store.StatusPending, SchedulePos: c.SchedulePos}
		})
	})
}

// BenchmarkClaimBacklog drains a backlog of 20,000 deliveries of one webhook
// a claim at a time (16, the webhook's share), each delivered.
func BenchmarkClaimBacklog(b *testing.B) {
	claimBench(b, 20000, func(b *testing.B, st *store.Store, _ int) {
		claimThen(b, st, 64, func(c store.Claim) store.Result {
			return store.Result{DeliveryID: c.DeliveryID, ClaimSeq: c.ClaimSeq, WebhookID: c.WebhookID, Status: store.StatusDelivered,
				Attempted: true, AttemptedAt: time.Now(), StatusCode: 204}
		})
	})
}

// BenchmarkClaimPastExcludedBacklog claims another webhook's few due
// deliveries while the webhook with a backlog of 20,000 is skipped (its share
// is taken), and gives them back.
func BenchmarkClaimPastExcludedBacklog(b *testing.B) {
	var other string
	claimBench(b, 20000, func(b *testing.B, st *store.Store, i int) {
		if i == 0 {
			other = register(b, st, webhook.Owner{TenantID: "acme", UserID: "bob"}, "https://example.com/other", "order.updated").ID
			events := make([]store.Event, 10)
			for i := range events {
				events[i] = store.Event{TenantID: "acme", Type: "order.updated", Data: json.RawMessage(`{}`)}
			}
			if _, err := st.PublishBatch(ctx, events); err != nil {
				b.Fatal(err)
			}
		}
		cs, err := st.Claim(ctx, store.ClaimRequest{Limit: 16, PerWebhook: 16, Lease: time.Minute,
			ExcludeUsers: []webhook.Owner{{TenantID: "acme", UserID: "alice"}}})
		if err != nil || len(cs) != 10 || cs[0].WebhookID != other {
			b.Fatal(err, len(cs))
		}
		rs := make([]store.Result, len(cs))
		for j, c := range cs {
			rs[j] = store.Result{DeliveryID: c.DeliveryID, ClaimSeq: c.ClaimSeq, WebhookID: c.WebhookID, Status: store.StatusPending, SchedulePos: c.SchedulePos}
		}
		if _, err := st.Record(ctx, rs, 0); err != nil {
			b.Fatal(err)
		}
	})
}
