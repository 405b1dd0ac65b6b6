package store_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/hookferry/hookferry/webhook"
	"github.com/stretchr/testify/require"
)

// poison makes the database refuse any event of type "poison", as a
// constraint the API cannot break would: what the writer does when a
// transaction fails.
func poison(t *testing.T, be storetest.Backend, st *store.Store) {
	t.Helper()
	db := st.GormDB()
	if be.Name == "postgres" {
		require.NoError(t, db.Exec(`CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN IF NEW.type = 'poison' THEN RAISE EXCEPTION 'poison'; END IF; RETURN NEW; END $$`).Error)
		require.NoError(t, db.Exec(`CREATE TRIGGER poison BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION poison()`).Error)
		return
	}
	require.NoError(t, db.Exec(`CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.type = 'poison'
		BEGIN SELECT RAISE(ABORT, 'poison'); END`).Error)
}

// TestPublishBatchAllOrNothing: a batch the database refuses stores none of
// its events, while batches committed with it in one group commit are stored
// whole.
func TestPublishBatchAllOrNothing(t *testing.T) {
	t.Parallel()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			st, err := store.Open(ctx, be.URL(t), store.Options{Keys: storetest.Keys()})
			require.NoError(t, err)
			t.Cleanup(func() { _ = st.Close() })
			w := register(t, st, webhook.Owner{TenantID: "acme", UserID: "alice"}, "https://example.com/h", "order.created", "poison")
			poison(t, be, st)
			ev := func(typ, producer string) store.Event {
				return store.Event{TenantID: "acme", Type: typ, Data: json.RawMessage(`{}`), ProducerID: producer}
			}

			_, err = st.PublishBatch(ctx, []store.Event{ev("order.created", "a"), ev("order.created", ""), ev("poison", "")})
			require.ErrorContains(t, err, "poison")
			got, err := st.PublishBatch(ctx, []store.Event{ev("order.created", "a")})
			require.NoError(t, err)
			require.False(t, got[0].Duplicate, "the refused batch took producer id a")
			require.EqualValues(t, 1, got[0].Deliveries)

			// Many at once, so that the writer groups them: the good ones all
			// commit, whole; the poisoned ones not at all.
			const n = 40
			errs := make([]error, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					batch := []store.Event{ev("order.created", fmt.Sprintf("b%d", i)), ev("order.created", "")}
					if i%4 == 0 {
						batch = append(batch, ev("poison", ""))
					}
					_, errs[i] = st.PublishBatch(ctx, batch)
				})
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if i%4 == 0 {
					require.ErrorContains(t, err, "poison", "batch %d", i)
				} else {
					require.NoError(t, err, "batch %d", i)
				}
			}
			var stored int64
			require.NoError(t, st.GormDB().Table("deliveries").Where("webhook_id = ?", w.ID).Count(&stored).Error)
			require.EqualValues(t, 1+2*(n-n/4), stored, "a, and both events of each good batch")
			found, err := st.PublishBatch(ctx, []store.Event{ev("order.created", "b1"), ev("order.created", "b4")})
			require.NoError(t, err)
			require.True(t, found[0].Duplicate, "a good batch's producer id is taken")
			require.False(t, found[1].Duplicate, "a poisoned batch's producer id is free")
		})
	}
}
