package delivery_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/hookferry/hookferry/delivery"
	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/stretchr/testify/require"
)

// TestShutdownReleasesWhatItHolds: at stop, the claims waiting are given
// back at once, the attempts still hanging when the grace period ends are
// cancelled and given back too; none is charged, every lease is released.
func TestShutdownReleasesWhatItHolds(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		rc := e.receiver(hanging())
		e.publish(owner.TenantID, "order.created", 6)
		run := e.run(delivery.Config{PerWebhook: 2, ShutdownGrace: 50 * time.Millisecond}, delivery.SenderConfig{Timeout: time.Minute})
		claims := run.claims(6, of(rc))
		rc.take(2)
		run.flush(false)
		wait := waiting(claims, filter(run.started.now(), of(rc)))
		require.Equal(t, 4, len(wait))
		run.shutdown()

		run.givenBack(delivery.BackStopping, wait)
		for _, d := range e.deliveries(rc) {
			require.Equal(t, store.StatusPending, d.Status)
			require.Zero(t, d.Attempts, "a cancelled attempt is not charged")
		}
		again, err := e.store.Claim(ctx, store.ClaimRequest{Limit: 10, Lease: time.Minute})
		require.NoError(t, err)
		require.Equal(t, 6, len(again), "every lease was released")
	})
}

// TestStopIsBoundedWhenTheDatabaseHangs: PostgreSQL stops answering (a proxy
// between the store and it stops forwarding, connections left open) while
// attempts hang and claims wait; Run still returns within ShutdownGrace and
// five seconds, leaving what it could not record to lease expiry.
func TestStopIsBoundedWhenTheDatabaseHangs(t *testing.T) {
	t.Parallel()
	direct, err := url.Parse(storetest.PostgresURL(t))
	require.NoError(t, err)
	p := newProxy(t, direct.Host)
	proxied := *direct
	proxied.Host = p.addr()
	e := newEnv(t, proxied.String(), nil)
	t.Cleanup(p.close) // before the store closes: its connections hang until then

	rc := e.receiver(hanging())
	e.publish(owner.TenantID, "order.created", 12)
	grace := 200 * time.Millisecond
	run := e.run(delivery.Config{Workers: 8, ShutdownGrace: grace, PollInterval: 10 * time.Millisecond},
		delivery.SenderConfig{Timeout: time.Minute})
	run.claims(12, of(rc))
	rc.take(2) // PerUser 2: two hang, ten wait
	run.flush(false)

	p.cut()
	stopped := time.Now()
	run.stop()
	run.stop = nil
	select {
	case err := <-run.done:
		require.NoError(t, err)
		t.Logf("Run returned %s after stop with the database unreachable", time.Since(stopped).Round(time.Millisecond))
	case <-time.After(grace + 5*time.Second): // this bound is the behaviour under test
		t.Fatalf("Run did not return within ShutdownGrace (%s) + 5s of stop with the database unreachable", grace)
	}
}

// proxy forwards TCP connections to target until cut; then it forwards
// nothing more, in either direction, and accepts new connections without
// forwarding them, keeping all of them open (a database that hangs).
type proxy struct {
	ln     net.Listener
	target string
	cutCh  chan struct{}
	done   chan struct{}

	mu     sync.Mutex
	conns  []net.Conn
	closed bool
	once   sync.Once
	cutter sync.Once
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{ln: ln, target: target, cutCh: make(chan struct{}), done: make(chan struct{})}
	go p.accept()
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) cut() { p.cutter.Do(func() { close(p.cutCh) }) }

func (p *proxy) close() {
	p.once.Do(func() {
		close(p.done)
		_ = p.ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		p.closed = true
		for _, c := range p.conns {
			_ = c.Close()
		}
	})
}

func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns = append(p.conns, c)
	return true
}

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			return
		}
		go p.serve(c)
	}
}

func (p *proxy) serve(client net.Conn) {
	select {
	case <-p.cutCh:
		return // held open, never answered
	default:
	}
	var d net.Dialer
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	server, err := d.DialContext(dctx, "tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	if !p.track(server) {
		return
	}
	go p.pipe(server, client)
	go p.pipe(client, server)
}

func (p *proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			select {
			case <-p.cutCh:
				<-p.done // swallowed; the connection stays open
				return
			default:
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				_ = dst.Close()
			}
			return
		}
	}
}
