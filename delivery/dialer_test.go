package delivery

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRefusePrivate(t *testing.T) {
	t.Parallel()
	refused := map[string]string{
		"10.0.0.5:443":             "refused: 10.0.0.5 is not a public address",
		"127.0.0.1:8443":           "refused: 127.0.0.1 is not a public address",
		"[::1]:443":                "refused: ::1 is not a public address",
		"169.254.169.254:80":       "refused: 169.254.169.254 is not a public address", // cloud metadata
		"192.168.1.1:443":          "refused: 192.168.1.1 is not a public address",
		"172.16.0.1:443":           "refused: 172.16.0.1 is not a public address",
		"100.64.0.1:443":           "refused: 100.64.0.1 is not a public address", // CGNAT
		"0.0.0.0:443":              "refused: 0.0.0.0 is not a public address",
		"[::]:443":                 "refused: :: is not a public address",
		"224.0.0.1:443":            "refused: 224.0.0.1 is not a public address",
		"[fe80::1%eth0]:443":       "refused: fe80::1 is not a public address",
		"[fd00::1]:443":            "refused: fd00::1 is not a public address",
		"[::ffff:10.0.0.1]:443":    "refused: 10.0.0.1 is not a public address", // IPv4-mapped
		"[::ffff:127.0.0.1]:443":   "refused: 127.0.0.1 is not a public address",
		"not-an-address:443":       `refused: cannot parse address "not-an-address:443": not a public address`,
		"1.1.1.1":                  `refused: cannot parse address "1.1.1.1": not a public address`,
		"[2606:4700::1111%x]:bad!": `refused: cannot parse address "[2606:4700::1111%x]:bad!": not a public address`,
	}
	for addr, want := range refused {
		err := refusePrivate("tcp", addr, nil)
		require.ErrorIs(t, err, ErrPrivateAddress, addr)
		require.EqualError(t, err, want, addr)
	}
	for _, addr := range []string{"1.1.1.1:443", "93.184.215.14:443", "[2606:4700::1111]:443", "[::ffff:8.8.8.8]:443"} {
		require.NoError(t, refusePrivate("tcp", addr, nil), addr)
	}
}

// A name that resolves to loopback is refused after resolution, before any
// connection is made.
func TestDialerRefusesResolvedLoopback(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	port := ln.Addr().(*net.TCPAddr).Port

	for _, host := range []string{"localhost", "127.0.0.1"} {
		_, err := NewDialer(false).DialContext(context.Background(), "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		require.ErrorIs(t, err, ErrPrivateAddress, host)
		require.ErrorContains(t, err, "refused: 127.0.0.1 is not a public address")
	}

	// The first connection the listener sees is the allowed one: the refused
	// dials never connected.
	conn, err := NewDialer(true).DialContext(context.Background(), "tcp", net.JoinHostPort("localhost", strconv.Itoa(port)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	accepted, err := ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { _ = accepted.Close() })
	require.Equal(t, conn.LocalAddr().String(), accepted.RemoteAddr().String())
}

// await receives from ch; the deadline only turns a hang into a failure.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("never happened: %s", what)
		panic("unreachable")
	}
}

// silentListener accepts TCP connections and never answers, so a TLS
// handshake to it hangs. It reports each connection it accepted, and each
// one the client closed.
type silentListener struct {
	addr     string
	accepted chan struct{}
	closed   chan struct{}
}

func newSilentListener(t *testing.T) *silentListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	sl := &silentListener{addr: ln.Addr().String(), accepted: make(chan struct{}, 1024), closed: make(chan struct{}, 1024)}
	var (
		mu    sync.Mutex
		conns []net.Conn
		ended bool
	)
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		ended = true
		for _, c := range conns {
			_ = c.Close()
		}
	})
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			sl.accepted <- struct{}{}
			mu.Lock()
			if ended {
				_ = conn.Close()
			}
			conns = append(conns, conn)
			mu.Unlock()
			go func() {
				_, _ = io.Copy(io.Discard, conn) // the ClientHello, then EOF when the client hangs up
				sl.closed <- struct{}{}
			}()
		}
	}()
	return sl
}

// settle watches the listener for window and returns how many connections
// it accepted since it started, and how many of them the client has not
// closed by the window's end.
func (sl *silentListener) settle(window time.Duration) (accepted, open int) {
	end := time.NewTimer(window)
	defer end.Stop()
	for {
		select {
		case <-sl.accepted:
			accepted++
			open++
		case <-sl.closed:
			open--
		case <-end.C:
			return accepted, open
		}
	}
}

// Dials and TLS handshakes run in the transport's background, detached from
// the request: each must still end with the attempt that asked for it, or a
// host that accepts and never answers keeps MaxConnsPerHost connections open
// (and every later attempt to it queued) long after the attempts gave up.
func TestSendDialEndsWithAttempt(t *testing.T) {
	t.Parallel()
	const timeout = 500 * time.Millisecond
	sl := newSilentListener(t)
	// No s.Close before the checks: CloseIdleConnections also cancels dials no
	// attempt is waiting for, which would hide the bug.
	s, err := NewSender(SenderConfig{AllowPrivate: true, Timeout: timeout, MaxConnsPerHost: 2})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	secret := newSecret(t)

	outs := make([]Outcome, 8) // more attempts than MaxConnsPerHost: some queue for a dial
	var wg sync.WaitGroup
	for i := range outs {
		m := Message{URL: "https://" + sl.addr + "/", Keys: []string{secret}, EventID: "evt_" + strconv.Itoa(i)}
		wg.Go(func() { outs[i] = s.Send(context.Background(), m) })
	}
	wg.Wait()
	for _, out := range outs {
		require.Equal(t, Unreachable, out.Kind)
		require.Equal(t, "timeout after "+timeout.String(), out.Error)
	}

	// Every attempt has ended, so has every dial: within one more timeout the
	// client has closed every connection it made.
	accepted, open := sl.settle(timeout)
	t.Logf("%d attempts, MaxConnsPerHost 2: %d connections accepted, %d still open a timeout after the attempts returned",
		len(outs), accepted, open)
	require.Positive(t, accepted)
	require.Zero(t, open, "connections left open a timeout after their attempts ended")
}

// When the only connection to a host frees its slot, the transport skips the
// dials queued for attempts that have since ended and dials for the next live
// one: nothing is dialled on behalf of an attempt that gave up.
func TestSendQueuedDialsOfEndedAttemptsAbandoned(t *testing.T) {
	t.Parallel()
	arrived, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int64
	rcv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) == 1 {
			close(arrived)
			<-release
			w.Header().Set("Connection", "close") // closing A's connection frees the host's one slot
		}
		w.WriteHeader(http.StatusNoContent)
	})
	releaseA := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseA) // before the receiver's Close
	s := newSender(t, rcv, SenderConfig{AllowPrivate: true, MaxConnsPerHost: 1, Timeout: time.Minute})
	m := rcv.message("evt_queued")

	// A holds the host's one connection.
	outA := make(chan Outcome, 1)
	go func() { outA <- s.Send(context.Background(), m) }()
	await(t, arrived, "A reached the receiver")

	// B and C queue for a dial, then their callers give up.
	var dialsForEnded atomic.Int64
	for _, name := range []string{"B", "C"} {
		queued := make(chan struct{})
		ctx, cancel := context.WithCancel(context.Background())
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			GetConn:      func(string) { close(queued) }, // queueForDial follows before Send can return
			ConnectStart: func(string, string) { dialsForEnded.Add(1) },
		})
		out := make(chan Outcome, 1)
		go func() { out <- s.Send(ctx, m) }()
		await(t, queued, name+" asked for a connection")
		cancel()
		require.Equal(t, Cancelled, await(t, out, name+"'s outcome").Kind, name)
	}

	releaseA()
	require.Equal(t, Delivered, await(t, outA, "A's outcome").Kind)

	// D gets the slot: had B been dialled for, D would have waited behind it
	// (one slot) or ridden its connection, so B's dial would be seen by now.
	require.Equal(t, Delivered, s.Send(context.Background(), m).Kind)
	require.Zero(t, dialsForEnded.Load(), "a dial was made for an attempt that had ended")
	require.EqualValues(t, 2, rcv.newConns.Load(), "A's connection and D's")
}

// A dial takes the sooner of its attempt's deadline and timeout from its own
// start; the deadline reaches it through the detached context the transport
// dials with.
func TestAttemptDialerBound(t *testing.T) {
	t.Parallel()
	d := &attemptDialer{dialer: NewDialer(true), timeout: time.Hour}
	detached := func(deadline time.Time) context.Context {
		return context.WithoutCancel(withAttemptDeadline(context.Background(), deadline)) // as http.Transport does
	}

	soon := time.Now().Add(time.Minute)
	ctx, cancel := d.bound(detached(soon))
	t.Cleanup(cancel)
	got, ok := ctx.Deadline()
	require.True(t, ok)
	require.Equal(t, soon, got, "the attempt's deadline")

	for name, ctx := range map[string]context.Context{
		"no attempt deadline":    context.Background(),
		"attempt deadline later": detached(time.Now().Add(2 * time.Hour)),
	} {
		before := time.Now()
		ctx, cancel := d.bound(ctx)
		t.Cleanup(cancel)
		got, ok := ctx.Deadline()
		require.True(t, ok, name)
		require.False(t, got.Before(before.Add(time.Hour)), name)
		require.False(t, got.After(time.Now().Add(time.Hour)), name)
	}
}

// A dial for an attempt whose deadline has passed connects to nothing.
func TestAttemptDialerExpired(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	d := &attemptDialer{dialer: NewDialer(true), tls: &tls.Config{MinVersion: tls.VersionTLS12}, timeout: time.Minute}
	expired := withAttemptDeadline(context.Background(), time.Now().Add(-time.Second))

	_, err = d.DialContext(expired, "tcp", ln.Addr().String())
	require.ErrorIs(t, err, context.DeadlineExceeded)
	_, err = d.DialTLSContext(expired, "tcp", ln.Addr().String())
	require.ErrorIs(t, err, context.DeadlineExceeded)

	// The first connection the listener sees is this one: the expired dials
	// never connected.
	conn, err := d.DialContext(context.Background(), "tcp", ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	accepted, err := ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { _ = accepted.Close() })
	require.Equal(t, conn.LocalAddr().String(), accepted.RemoteAddr().String())
}

// The dial ends with the attempt, and the attempt ends with the sooner of
// the Sender's timeout and the caller's deadline. A caller that cancels
// outright ends the attempt at once; its dial carries on in the transport's
// background until the attempt's deadline.
func TestSendDialEndsWithCallerDeadline(t *testing.T) {
	t.Parallel()
	t.Run("deadline", func(t *testing.T) {
		t.Parallel()
		const deadline = 300 * time.Millisecond
		sl := newSilentListener(t)
		s, err := NewSender(SenderConfig{AllowPrivate: true, Timeout: time.Minute})
		require.NoError(t, err)
		t.Cleanup(s.Close)
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		t.Cleanup(cancel)

		out := s.Send(ctx, Message{URL: "https://" + sl.addr + "/", Keys: []string{newSecret(t)}, EventID: "evt_1"})
		require.Equal(t, Cancelled, out.Kind)
		accepted, open := sl.settle(deadline) // far short of the Sender's minute
		require.Equal(t, 1, accepted)
		require.Zero(t, open, "the handshake outlived its attempt")
	})
	t.Run("cancel", func(t *testing.T) {
		t.Parallel()
		const timeout = time.Second
		sl := newSilentListener(t)
		s, err := NewSender(SenderConfig{AllowPrivate: true, Timeout: timeout})
		require.NoError(t, err)
		t.Cleanup(s.Close)
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			ConnectDone: func(string, string, error) { cancel() }, // the handshake is next
		})

		start := time.Now()
		out := s.Send(ctx, Message{URL: "https://" + sl.addr + "/", Keys: []string{newSecret(t)}, EventID: "evt_1"})
		require.Equal(t, Cancelled, out.Kind)
		if len(sl.closed) > 0 { // a peek: settle counts it below
			t.Log("the dial ended with the cancelled request")
		} else {
			t.Log("the dial outlived the cancelled request") // http.Transport's choice
		}
		// Up to one timeout past the attempt's deadline.
		accepted, open := sl.settle(time.Until(start.Add(2 * timeout)))
		require.Equal(t, 1, accepted)
		require.Zero(t, open, "the handshake outlived its attempt's deadline")
	})
}
