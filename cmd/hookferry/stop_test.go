package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"syscall"
	"testing"
	"time"

	hookferry "github.com/hookferry/hookferry/clients/go"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/stretchr/testify/require"
)

// freezer is a TCP proxy to a database that can stop forwarding: the
// connections stay open and every query hangs, as when the database's host
// stops answering.
type freezer struct {
	ln     net.Listener
	target string
	frozen chan struct{}
	held   chan struct{} // bytes held since the freeze, one per read
	closed chan struct{}
	once   sync.Once
}

func newFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := &freezer{ln: ln, target: target, frozen: make(chan struct{}), held: make(chan struct{}, 1000), closed: make(chan struct{})}
	t.Cleanup(func() { close(f.closed); _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.forward(c)
		}
	}()
	return f
}

func (f *freezer) forward(c net.Conn) {
	defer c.Close()
	select {
	case <-f.frozen: // a connection made while frozen never reaches the database
		<-f.closed
		return
	default:
	}
	up, err := net.Dial("tcp", f.target)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { f.copy(up, c); done <- struct{}{} }()
	go func() { f.copy(c, up); done <- struct{}{} }()
	select {
	case <-done:
	case <-f.closed:
	}
}

func (f *freezer) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			select {
			case <-f.frozen:
				f.held <- struct{}{}
				<-f.closed // hold the bytes: the other side waits for an answer
				return
			default:
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (f *freezer) freeze() { f.once.Do(func() { close(f.frozen) }) }

// TestStopIsBoundedWhenTheDatabaseHangs: SIGTERM while the database does not
// answer (and attempts are in flight, and a publish waits on the database)
// ends the process within the shutdown timeout plus 5 seconds; what could
// not be recorded stays pending in the database, to be delivered again.
func TestStopIsBoundedWhenTheDatabaseHangs(t *testing.T) {
	t.Parallel()
	db := storetest.PostgresDatabase(t)
	u, err := url.Parse(db)
	require.NoError(t, err)
	proxy := newFreezer(t, u.Host)
	viaProxy := *u
	viaProxy.Host = proxy.ln.Addr().String()
	manage, publish := tokens(t, db)

	arrived := make(chan struct{}, 100)
	hold := make(chan struct{})
	hanging := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		arrived <- struct{}{}
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hanging.Close)
	t.Cleanup(func() { close(hold) })
	r := newReceivers(t)
	r.srv.Close()
	r.srv = hanging
	r.caFile = writeCA(t, hanging)

	const grace = time.Second
	s := startServer(t, deliveryEnv(viaProxy.String(), r, "HOOKFERRY_SHUTDOWN_TIMEOUT="+grace.String(),
		"HOOKFERRY_DELIVERY_TIMEOUT=30s", "HOOKFERRY_DELIVERY_LEASE=2m")...)
	r.register(client(t, s.url(), manage), "/hang")
	pub := client(t, s.url(), publish)
	for range 3 {
		res, err := pub.PublishEventWithResponse(context.Background(), hookferry.PublishEventJSONRequestBody{Type: "order.created", Data: json.RawMessage(`{}`)})
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, res.StatusCode(), "%s", res.Body)
	}
	<-arrived // an attempt is on the wire

	proxy.freeze()
	go func() { // a publish that waits on the frozen database
		_, _ = pub.PublishEventWithResponse(context.Background(), hookferry.PublishEventJSONRequestBody{Type: "order.created", Data: json.RawMessage(`{}`)})
	}()
	<-proxy.held // the publish's statement, most likely: delivery is idle meanwhile
	start := time.Now()
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	<-s.exit
	took := time.Since(start)
	require.Less(t, took, grace+5*time.Second, "stop took %s; logs:\n%s", took, s.log())

	// Nothing was lost: the three events wait, pending, for another instance.
	conn, err := sql.Open("pgx", db)
	require.NoError(t, err)
	defer conn.Close()
	var pending int64
	require.NoError(t, conn.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM deliveries WHERE status = 'PENDING'").Scan(&pending))
	require.EqualValues(t, 3, pending, "logs:\n%s", s.log())
}

// TestOrderedAcrossTwoInstances: two instances on one PostgreSQL database
// deliver an ordered webhook's events one at a time in publish order, a
// failing one holding the later ones back until it is delivered.
func TestOrderedAcrossTwoInstances(t *testing.T) {
	t.Parallel()
	db := storetest.PostgresDatabase(t)
	manage, publish := tokens(t, db)
	var (
		mu       sync.Mutex
		inFlight int
		most     int
		arrivals []string // event ids, in arrival order, answered 2xx
		tries    = map[string]int{}
		done     = make(chan struct{})
		total    = 30
	)
	recv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		id := r.Header.Get("webhook-id")
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		tries[id]++
		fail := len(arrivals) == 3 && tries[id] < 3 // the fourth event fails twice
		mu.Unlock()
		status := http.StatusNoContent
		if fail {
			status = http.StatusServiceUnavailable
		}
		mu.Lock()
		inFlight--
		if !fail {
			arrivals = append(arrivals, id)
			if len(arrivals) == total {
				close(done)
			}
		}
		mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(recv.Close)
	r := &receivers{t: t, srv: recv, caFile: writeCA(t, recv), secrets: map[string]string{}, got: map[string]map[string]int{}}
	a := startServer(t, deliveryEnv(db, r)...)
	b := startServer(t, deliveryEnv(db, r)...)
	res, err := client(t, a.url(), manage).RegisterWebhookWithResponse(context.Background(), hookferry.RegisterWebhookJSONRequestBody{
		Url: recv.URL + "/ordered", Subscription: hookferry.Subscription{EventTypes: []string{"order.created"}}, Ordered: ptr(true),
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode(), "%s", res.Body)
	require.True(t, res.JSON201.Ordered)

	var published []string
	for i := range total {
		via := a
		if i%2 == 1 {
			via = b
		}
		res, err := client(t, via.url(), publish).PublishEventWithResponse(context.Background(), hookferry.PublishEventJSONRequestBody{
			Type: "order.created", Data: json.RawMessage(`{}`)})
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, res.StatusCode(), "%s", res.Body)
		published = append(published, res.JSON202.Id)
	}
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%d of %d delivered; logs:\n%s\n%s", len(arrivals), total, a.log(), b.log())
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, published, arrivals, "publish order")
	require.Equal(t, 1, most, "never two in flight")
	require.Equal(t, 3, tries[published[3]], "the fourth failed twice, then was delivered")
}
