package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/hookferry/hookferry/webhook"
)

// BenchmarkClaimAndRelease claims up to a limit that changes every time, as
// the dispatcher's room does, from 100 due deliveries of one webhook, and
// gives the claims back. Profile it to see what a claim costs:
//
//	go test ./store -run - -bench ClaimAndRelease -cpuprofile cpu.out
func BenchmarkClaimAndRelease(b *testing.B) {
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			st, err := store.Open(ctx, be.URL(b), store.Options{Keys: storetest.Keys()})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			owner := webhook.Owner{TenantID: "acme", UserID: "alice"}
			w, err := webhook.New(owner, "https://example.com/h", "https://example.com/h", []string{"order.created"}, webhook.SigningSymmetric, time.Now(), nil)
			if err != nil {
				b.Fatal(err)
			}
			if err := st.RegisterWebhook(ctx, w, 25); err != nil {
				b.Fatal(err)
			}
			events := make([]store.Event, 100)
			for i := range events {
				events[i] = store.Event{TenantID: "acme", Type: "order.created", Data: json.RawMessage(`{}`)}
			}
			if _, err := st.PublishBatch(ctx, events); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				cs, err := st.Claim(ctx, store.ClaimRequest{Limit: 13 + i%4, PerWebhook: 16, Lease: time.Minute})
				if err != nil || len(cs) == 0 {
					b.Fatal(err, len(cs))
				}
				rs := make([]store.Result, len(cs))
				for j, c := range cs {
					rs[j] = store.Result{DeliveryID: c.DeliveryID, ClaimSeq: c.ClaimSeq, WebhookID: c.WebhookID, Status: store.StatusPending, SchedulePos: c.SchedulePos}
				}
				if _, err := st.Record(ctx, rs, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
