package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/hookferry/hookferry/webhook"
	"github.com/stretchr/testify/require"
)

// TestCrashLosesNothing publishes 2,000 events to three webhooks, kills the
// server with SIGKILL half-way, starts it again on the same database and
// checks that every acknowledged event reached every receiver at least once.
func TestCrashLosesNothing(t *testing.T) {
	t.Parallel()
	for _, be := range []struct {
		name string
		db   func(testing.TB) string
	}{{"sqlite", storetest.SQLiteURL}, {"postgres", storetest.PostgresDatabase}} {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			db := be.db(t)
			r := newReceivers(t)
			manage, publish := tokens(t, db)
			first := startServer(t, deliveryEnv(db, r)...)
			for i := range 3 {
				r.register(client(t, first.url(), manage), fmt.Sprintf("/hook/%d", i))
			}

			var current atomic.Pointer[child]
			current.Store(first)
			baseURL := func() string { return current.Load().url() }
			p := &publisher{t: t, token: publish, acked: map[int]string{}}
			const total = 2000
			next := atomic.Int64{}
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for {
						seq := int(next.Add(1))
						if seq > total {
							return
						}
						p.publish(baseURL, seq)
					}
				})
			}
			for p.count() < total/2 {
				sleepBriefly()
			}
			first.kill()
			second := startServer(t, deliveryEnv(db, r)...)
			current.Store(second)
			wg.Wait()

			dups := r.waitDelivered(p.events(), second.log)
			t.Logf("%s: %d events x 3 webhooks delivered after a SIGKILL half-way; %d duplicate deliveries", be.name, total, dups)
			second.terminate()
		})
	}
}

// TestTwoInstancesShareTheWork runs two delivering instances on one PostgreSQL
// database: every event is delivered, and none twice.
func TestTwoInstancesShareTheWork(t *testing.T) {
	t.Parallel()
	db := storetest.PostgresDatabase(t)
	r := newReceivers(t)
	manage, publish := tokens(t, db)
	a := startServer(t, deliveryEnv(db, r)...)
	b := startServer(t, deliveryEnv(db, r)...)
	for i := range 2 {
		r.register(client(t, a.url(), manage), fmt.Sprintf("/hook/%d", i))
	}
	p := &publisher{t: t, token: publish, acked: map[int]string{}}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for seq := w; seq < 2000; seq += 8 {
				target := a
				if seq%2 == 1 {
					target = b
				}
				p.publish(target.url, seq)
			}
		})
	}
	wg.Wait()
	dups := r.waitDelivered(p.events(), func() string { return a.log() + b.log() })
	if dups != 0 {
		t.Fatalf("%d deliveries were sent twice without any crash", dups)
	}
	a.terminate()
	b.terminate()
}

// TestSurvivesDatabaseConnectionsKilled terminates every connection of the
// server's database while it publishes and delivers: it recovers on its own.
func TestSurvivesDatabaseConnectionsKilled(t *testing.T) {
	t.Parallel()
	db := storetest.PostgresDatabase(t)
	r := newReceivers(t)
	manage, publish := tokens(t, db)
	s := startServer(t, deliveryEnv(db, r)...)
	r.register(client(t, s.url(), manage), "/hook/0")

	p := &publisher{t: t, token: publish, acked: map[int]string{}}
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 4 {
		wg.Go(func() {
			for {
				seq := int(next.Add(1))
				if seq > 600 {
					return
				}
				p.publish(s.url, seq)
			}
		})
	}
	for round := range 3 {
		for p.count() < 150*(round+1) {
			sleepBriefly()
		}
		terminateConnections(t, db)
	}
	wg.Wait()
	r.waitDelivered(p.events(), s.log)
	s.terminate()
}

// TestSIGTERMFinishesInFlightDeliveries stops a server while attempts are in
// flight: they finish and are recorded; what had not started is released for
// the next instance, not charged.
func TestSIGTERMFinishesInFlightDeliveries(t *testing.T) {
	t.Parallel()
	db := storetest.SQLiteURL(t)
	r := newReceivers(t)
	r.delay = 300 * time.Millisecond
	manage, publish := tokens(t, db)
	s := startServer(t, deliveryEnv(db, r, "HOOKFERRY_DELIVERY_PER_WEBHOOK=2", "HOOKFERRY_SHUTDOWN_TIMEOUT=20s")...)
	r.register(client(t, s.url(), manage), "/hook/0")
	p := &publisher{t: t, token: publish, acked: map[int]string{}}
	for seq := range 6 {
		p.publish(s.url, seq)
	}
	for r.started.Load() < 2 {
		sleepBriefly()
	}
	s.terminate()

	st, err := store.Open(context.Background(), db, store.Options{Keys: storetest.Keys()})
	require.NoError(t, err)
	defer st.Close()
	owner := webhook.Owner{TenantID: "acme", UserID: "alice"}
	hooks, err := st.ListWebhooks(context.Background(), owner)
	require.NoError(t, err)
	page, err := st.ListDeliveries(context.Background(), owner, hooks[0].ID, "", "", 100)
	require.NoError(t, err)
	delivered := 0
	for _, d := range page.Items {
		switch d.Status {
		case store.StatusDelivered:
			delivered++
			require.Equal(t, 1, d.Attempts)
		case store.StatusPending:
			require.Zero(t, d.Attempts, "released, not charged")
		default:
			t.Fatalf("delivery %s is %s", d.ID, d.Status)
		}
	}
	require.EqualValues(t, r.started.Load(), delivered, "every attempt that started finished and was recorded")
	claims, err := st.Claim(context.Background(), store.ClaimRequest{Limit: 100, Lease: time.Minute})
	require.NoError(t, err)
	require.Len(t, claims, 6-delivered, "nothing is left leased")
}
