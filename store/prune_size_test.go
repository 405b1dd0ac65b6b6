package store_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/hookferry/hookferry/webhook"
	"github.com/stretchr/testify/require"
)

// BenchmarkPrune100k measures a prune of 100,000 delivered deliveries (with
// their attempts and 10,000 events) and the database's size before and after:
// go test -run '^$' -bench Prune100k -benchtime 1x ./store/
func BenchmarkPrune100k(b *testing.B) {
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(t *testing.B) {
			url := be.URL(t)
			clk := &clock{t: time.Now().UTC().Add(-60 * 24 * time.Hour)}
			st, err := store.Open(ctx, url, store.Options{Keys: storetest.Keys(), Now: clk.Now})
			require.NoError(t, err)
			defer st.Close()
			owner := webhook.Owner{TenantID: "acme", UserID: "alice"}
			for i := range 10 {
				register(t, st, owner, fmt.Sprintf("https://example.com/%d", i))
			}
			data := json.RawMessage(`{"order":{"id":"ord_123456789","total":4200,"currency":"EUR","lines":[{"sku":"abc","qty":2}]}}`)
			for i := range 10000 {
				_, err := st.Publish(ctx, store.Event{TenantID: "acme", Type: "order.created", Data: data})
				require.NoError(t, err)
				if i%100 == 99 {
					for finish(t, st, store.StatusDelivered, clk.t) > 0 {
					}
				}
			}
			size := func() string {
				if be.Name == "sqlite" {
					fi, err := os.Stat(strings.TrimPrefix(url, "sqlite:"))
					require.NoError(t, err)
					return fmt.Sprintf("%.1f MB", float64(fi.Size())/1e6)
				}
				var n int64
				require.NoError(t, rawDB(t, url).QueryRow(`SELECT SUM(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
					WHERE n.nspname = current_schema() AND c.relkind = 'r'`).Scan(&n))
				return fmt.Sprintf("%.1f MB", float64(n)/1e6)
			}
			before := size()
			clk.t = time.Now().UTC()
			t.ResetTimer()
			c, err := st.Prune(ctx, 30*24*time.Hour)
			t.StopTimer()
			require.NoError(t, err)
			if be.Name == "sqlite" {
				var free int
				require.NoError(t, rawDB(t, url).QueryRow("PRAGMA freelist_count").Scan(&free))
				t.Logf("free pages after prune: %d", free)
			}
			if be.Name == "postgres" {
				_, err := rawDB(t, url).Exec("VACUUM deliveries, attempts, events")
				require.NoError(t, err)
			}
			t.Logf("%s: before %s, pruned %+v, after %s", be.Name, before, c, size())
		})
	}
}
