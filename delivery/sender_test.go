package delivery

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"
)

// received is one request as a receiver saw it, with the reference verifier's verdict.
type received struct {
	header    http.Header
	body      []byte
	proto     int
	verifyErr error
}

// receiver is an HTTPS webhook endpoint that verifies every request with the
// Standard Webhooks reference library, then answers with respond.
type receiver struct {
	srv      *httptest.Server
	secret   string
	newConns atomic.Int64

	mu   sync.Mutex
	reqs []received
}

type receiverOption func(*httptest.Server)

func withHTTP2(s *httptest.Server) { s.EnableHTTP2 = true }

func newReceiver(t testing.TB, respond http.HandlerFunc, opts ...receiverOption) *receiver {
	t.Helper()
	rcv := &receiver{secret: newSecret(t)}
	verifier, err := standardwebhooks.NewWebhook(rcv.secret)
	require.NoError(t, err)
	rcv.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err == nil {
			err = verifier.Verify(body, r.Header)
		}
		rcv.mu.Lock()
		rcv.reqs = append(rcv.reqs, received{header: r.Header.Clone(), body: body, proto: r.ProtoMajor, verifyErr: err})
		rcv.mu.Unlock()
		respond(w, r)
	}))
	rcv.srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			rcv.newConns.Add(1)
		}
	}
	for _, opt := range opts {
		opt(rcv.srv)
	}
	rcv.srv.StartTLS()
	t.Cleanup(rcv.srv.Close)
	return rcv
}

func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// hang answers only once the client goes away or the test ends.
func hang(t testing.TB) http.HandlerFunc {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // runs before the server's Close
	return func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			// The client gave up: abort rather than let an implicit 200 out.
			panic(http.ErrAbortHandler)
		case <-release:
		}
	}
}

func (rcv *receiver) received() []received {
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	return append([]received(nil), rcv.reqs...)
}

// requireVerified checks that the receiver got exactly n requests, each
// carrying m.Body and accepted by the reference verifier.
func (rcv *receiver) requireVerified(t testing.TB, n int, m Message) []received {
	t.Helper()
	reqs := rcv.received()
	require.Len(t, reqs, n)
	for _, r := range reqs {
		require.NoError(t, r.verifyErr)
		require.Equal(t, m.Body, r.body)
		require.Equal(t, m.EventID, r.header.Get("webhook-id"))
	}
	return reqs
}

func (rcv *receiver) message(id string) Message {
	return Message{
		URL:     rcv.srv.URL + "/hooks/in",
		Keys:    []string{rcv.secret},
		EventID: id,
		Body:    []byte(`{"id":"` + id + `","type":"order.created","timestamp":"2025-01-02T03:04:05Z","data":{"n":1}}`),
	}
}

func (rcv *receiver) pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(rcv.srv.Certificate())
	return pool
}

// newSender trusts rcv's certificate and allows private targets unless cfg
// says otherwise through the returned config.
func newSender(t testing.TB, rcv *receiver, cfg SenderConfig) *Sender {
	t.Helper()
	if cfg.RootCAs == nil {
		cfg.RootCAs = rcv.pool()
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "hookferry/test"
	}
	s, err := NewSender(cfg)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func TestSendDelivered(t *testing.T) {
	t.Parallel()
	for _, code := range []int{http.StatusOK, http.StatusAccepted, http.StatusNoContent} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			t.Parallel()
			rcv := newReceiver(t, status(code))
			s := newSender(t, rcv, SenderConfig{AllowPrivate: true})
			m := rcv.message("evt_delivered")

			out := s.Send(context.Background(), m)
			require.Equal(t, Outcome{Kind: Delivered, StatusCode: code, Duration: out.Duration}, out)
			require.Positive(t, out.Duration)
			r := rcv.requireVerified(t, 1, m)[0]
			require.Equal(t, "application/json", r.header.Get("Content-Type"))
			require.Equal(t, "hookferry/test", r.header.Get("User-Agent"))
			require.Equal(t, 1, r.proto)
		})
	}
}

func TestSendRejected(t *testing.T) {
	t.Parallel()
	for code, wantErr := range map[int]string{
		http.StatusInternalServerError: "500 Internal Server Error",
		http.StatusGone:                "410 Gone",
		http.StatusBadRequest:          "400 Bad Request",
		http.StatusTooManyRequests:     "429 Too Many Requests",
	} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			t.Parallel()
			rcv := newReceiver(t, status(code))
			s := newSender(t, rcv, SenderConfig{AllowPrivate: true})
			m := rcv.message("evt_rejected")

			out := s.Send(context.Background(), m)
			require.Equal(t, Rejected, out.Kind)
			require.Equal(t, code, out.StatusCode)
			require.Equal(t, wantErr, out.Error)
			rcv.requireVerified(t, 1, m)
		})
	}
}

func TestSendRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			t.Parallel()
			target := newReceiver(t, status(http.StatusOK))
			rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.srv.URL+"/elsewhere", code)
			})
			pool := rcv.pool()
			pool.AddCert(target.srv.Certificate()) // the target would be reachable
			s := newSender(t, rcv, SenderConfig{AllowPrivate: true, RootCAs: pool})
			m := rcv.message("evt_redirect")

			out := s.Send(context.Background(), m)
			require.Equal(t, Rejected, out.Kind)
			require.Equal(t, code, out.StatusCode)
			require.Equal(t, fmt.Sprintf("%d %s (redirects are not followed)", code, http.StatusText(code)), out.Error)
			rcv.requireVerified(t, 1, m)
			require.Empty(t, target.received())
			require.Zero(t, target.newConns.Load())
		})
	}
}

func TestSendConnectionRefused(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, status(http.StatusOK))
	s := newSender(t, rcv, SenderConfig{AllowPrivate: true})
	rcv.srv.Close()

	out := s.Send(context.Background(), rcv.message("evt_refused"))
	require.Equal(t, Unreachable, out.Kind)
	require.Zero(t, out.StatusCode)
	require.Equal(t, "connection refused", out.Error)
	require.False(t, out.Refused, "refused by the receiver, not by our address policy")
}

func TestSendTimeout(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, hang(t))
	s := newSender(t, rcv, SenderConfig{AllowPrivate: true, Timeout: time.Second})
	m := rcv.message("evt_timeout")

	out := s.Send(context.Background(), m)
	require.Equal(t, Unreachable, out.Kind)
	require.Zero(t, out.StatusCode)
	require.Equal(t, "timeout after 1s", out.Error)
	rcv.requireVerified(t, 1, m)
}

// A receiver that accepts connections and never speaks TLS: the handshake
// ends with the attempt, connection closed.
func TestSendTimeoutInHandshake(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	sl := newSilentListener(t)
	s, err := NewSender(SenderConfig{AllowPrivate: true, Timeout: timeout})
	require.NoError(t, err)
	t.Cleanup(s.Close)

	out := s.Send(context.Background(), Message{URL: "https://" + sl.addr + "/", Keys: []string{newSecret(t)}, EventID: "evt_1"})
	require.Equal(t, Unreachable, out.Kind)
	require.Equal(t, "timeout after 300ms", out.Error)
	require.False(t, out.Refused)
	_, open := sl.settle(timeout) // one more timeout: the handshake is long over
	require.Zero(t, open, "the handshake outlived its attempt")
}

func TestSendCancelled(t *testing.T) {
	t.Parallel()
	t.Run("while waiting for the receiver", func(t *testing.T) {
		t.Parallel()
		arrived := make(chan struct{})
		hung := hang(t)
		rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
			close(arrived)
			hung(w, r)
		})
		s := newSender(t, rcv, SenderConfig{AllowPrivate: true, Timeout: time.Minute})
		m := rcv.message("evt_cancelled")
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-arrived
			cancel()
		}()

		out := s.Send(ctx, m)
		require.Equal(t, Cancelled, out.Kind)
		require.Equal(t, "cancelled", out.Error)
		rcv.requireVerified(t, 1, m)
	})
	t.Run("before the attempt", func(t *testing.T) {
		t.Parallel()
		rcv := newReceiver(t, status(http.StatusOK))
		s := newSender(t, rcv, SenderConfig{AllowPrivate: true})
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(errors.New("shutting down"))

		out := s.Send(ctx, rcv.message("evt_cancelled"))
		require.Equal(t, Cancelled, out.Kind)
		require.Equal(t, "cancelled: shutting down", out.Error)
		require.Empty(t, rcv.received())
	})
	// The attempt's deadline is the Sender's; the caller's ending, for any
	// reason, is the caller's business.
	t.Run("caller deadline", func(t *testing.T) {
		t.Parallel()
		rcv := newReceiver(t, hang(t))
		s := newSender(t, rcv, SenderConfig{AllowPrivate: true, Timeout: time.Minute})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		t.Cleanup(cancel)

		out := s.Send(ctx, rcv.message("evt_cancelled"))
		require.Equal(t, Cancelled, out.Kind)
	})
}

// deadlineOnly is a context whose deadline has passed but whose Done has not
// yet fired, as a context is for a moment after its deadline.
type deadlineOnly struct {
	context.Context
	deadline time.Time
}

func (c deadlineOnly) Deadline() (time.Time, bool) { return c.deadline, true }

// The error of a dial bound by the attempt's deadline can arrive before the
// attempt's context has fired: it is still the attempt's timeout, or the
// caller's end when the caller's deadline was the sooner.
func TestSendFailureAtDeadline(t *testing.T) {
	t.Parallel()
	s, err := NewSender(SenderConfig{Timeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	live := context.Background()
	passed := time.Now().Add(-time.Millisecond)
	dialErr := &net.OpError{Op: "dial", Net: "tcp", Err: context.DeadlineExceeded}

	out := s.failure(live, live, passed, dialErr)
	require.Equal(t, Outcome{Kind: Unreachable, Error: "timeout after 1s"}, out)

	out = s.failure(deadlineOnly{live, passed}, live, time.Now().Add(time.Hour), dialErr)
	require.Equal(t, Cancelled, out.Kind)

	out = s.failure(live, live, time.Now().Add(time.Hour), dialErr)
	require.Equal(t, Unreachable, out.Kind)
	require.Equal(t, "timeout: dial tcp: context deadline exceeded", out.Error)

	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &privateAddressError{addr: "10.0.0.1"}}
	out = s.failure(live, live, time.Now().Add(time.Hour), refused)
	require.Equal(t, Outcome{Kind: Unreachable, Error: "refused: 10.0.0.1 is not a public address", Refused: true}, out)
	require.False(t, s.failure(live, live, time.Now().Add(time.Hour), errors.New("other")).Refused)
}

func TestSendRefusesPrivateAddress(t *testing.T) {
	t.Parallel()
	for _, host := range []string{"127.0.0.1", "localhost"} {
		t.Run(host, func(t *testing.T) {
			t.Parallel()
			rcv := newReceiver(t, status(http.StatusOK))
			s := newSender(t, rcv, SenderConfig{AllowPrivate: false})
			m := rcv.message("evt_private")
			m.URL = strings.Replace(m.URL, "127.0.0.1", host, 1)

			out := s.Send(context.Background(), m)
			require.Equal(t, Unreachable, out.Kind)
			require.Equal(t, "refused: 127.0.0.1 is not a public address", out.Error)
			require.True(t, out.Refused)
			require.Empty(t, rcv.received())
			require.Zero(t, rcv.newConns.Load(), "no TCP connection reached the receiver")
		})
	}
}

func TestSendTLSUntrusted(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, status(http.StatusOK))
	s := newSender(t, rcv, SenderConfig{AllowPrivate: true, RootCAs: x509.NewCertPool()})

	out := s.Send(context.Background(), rcv.message("evt_tls"))
	require.Equal(t, Unreachable, out.Kind)
	require.Equal(t, "tls: certificate signed by unknown authority", out.Error)
	require.Empty(t, rcv.received())
}

func TestSendInternal(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, status(http.StatusOK))
	s := newSender(t, rcv, SenderConfig{AllowPrivate: true})

	m := rcv.message("evt_internal")
	m.Keys = []string{"whsec_!!secret-material!!"}
	out := s.Send(context.Background(), m)
	require.Equal(t, Internal, out.Kind)
	require.Contains(t, out.Error, "bad signing secret")
	require.NotContains(t, out.Error, "secret-material")

	for _, url := range []string{"://no-scheme", "ftp://example.com/", "https://exa mple.com/"} {
		m := rcv.message("evt_internal")
		m.URL = url
		out := s.Send(context.Background(), m)
		require.Equal(t, Internal, out.Kind, url)
		require.Contains(t, out.Error, "bad request", url)
	}
	require.Empty(t, rcv.received())
}

// countingTransport counts the response body bytes the Sender reads.
type countingTransport struct {
	http.RoundTripper
	read *atomic.Int64
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.RoundTripper.RoundTrip(r)
	if err == nil {
		resp.Body = countingBody{resp.Body, c.read}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	read *atomic.Int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func TestSendHugeResponseNotReadWhole(t *testing.T) {
	t.Parallel()
	const size = 10 << 20
	chunk := []byte(strings.Repeat("x", 32<<10))
	rcv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		for written := 0; written < size; written += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return // the sender hung up
			}
		}
	})
	s := newSender(t, rcv, SenderConfig{AllowPrivate: true})
	var read atomic.Int64
	s.client.Transport = countingTransport{s.client.Transport, &read}

	m := rcv.message("evt_huge")
	out := s.Send(context.Background(), m)
	require.Equal(t, Delivered, out.Kind)
	require.Equal(t, http.StatusOK, out.StatusCode)
	require.LessOrEqual(t, read.Load(), int64(maxResponseDrain))
	rcv.requireVerified(t, 1, m)
}

func TestSendReusesConnections(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string][]receiverOption{"http1": nil, "http2": {withHTTP2}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rcv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
				_, _ = io.WriteString(w, `{"ok":true}`) // a small body, drained for reuse
			}, opts...)
			s := newSender(t, rcv, SenderConfig{AllowPrivate: true})
			m := rcv.message("evt_reuse")
			for range 50 {
				require.Equal(t, Delivered, s.Send(context.Background(), m).Kind)
			}
			reqs := rcv.requireVerified(t, 50, m)
			require.LessOrEqual(t, rcv.newConns.Load(), int64(2))
			t.Logf("%s: 50 sends, %d TCP connections", name, rcv.newConns.Load())
			if name == "http2" {
				require.Equal(t, 2, reqs[0].proto)
			} else {
				require.Equal(t, 1, reqs[0].proto)
			}
		})
	}
}

func TestSendConcurrent(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, status(http.StatusNoContent))
	s := newSender(t, rcv, SenderConfig{AllowPrivate: true, MaxConnsPerHost: 4})
	m := rcv.message("evt_concurrent")
	var wg sync.WaitGroup
	kinds := make([]OutcomeKind, 64)
	for i := range kinds {
		wg.Go(func() { kinds[i] = s.Send(context.Background(), m).Kind })
	}
	wg.Wait()
	for _, k := range kinds {
		require.Equal(t, Delivered, k)
	}
	rcv.requireVerified(t, len(kinds), m)
	require.LessOrEqual(t, rcv.newConns.Load(), int64(4), "MaxConnsPerHost bounds connections")
}

func TestSendIDStableTimestampFromNow(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, status(http.StatusInternalServerError))
	base := time.Now().Truncate(time.Second)
	var now atomic.Pointer[time.Time]
	first, second := base.Add(-time.Minute), base.Add(time.Minute)
	now.Store(&first)
	s := newSender(t, rcv, SenderConfig{AllowPrivate: true, Now: func() time.Time { return *now.Load() }})
	m := rcv.message("evt_retried")

	require.Equal(t, Rejected, s.Send(context.Background(), m).Kind)
	now.Store(&second)
	require.Equal(t, Rejected, s.Send(context.Background(), m).Kind)

	reqs := rcv.requireVerified(t, 2, m)
	require.Equal(t, "evt_retried", reqs[0].header.Get("webhook-id"))
	require.Equal(t, "evt_retried", reqs[1].header.Get("webhook-id"))
	require.Equal(t, strconv.FormatInt(first.Unix(), 10), reqs[0].header.Get("webhook-timestamp"))
	require.Equal(t, strconv.FormatInt(second.Unix(), 10), reqs[1].header.Get("webhook-timestamp"))
	require.NotEqual(t, reqs[0].header.Get("webhook-signature"), reqs[1].header.Get("webhook-signature"))
}

func TestLoadCAFile(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, status(http.StatusOK))
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, data, 0o600))
		return path
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rcv.srv.Certificate().Raw})

	pool, err := LoadCAFile(write("ca.pem", certPEM))
	require.NoError(t, err)
	s := newSender(t, rcv, SenderConfig{AllowPrivate: true, RootCAs: pool})
	m := rcv.message("evt_ca")
	require.Equal(t, Delivered, s.Send(context.Background(), m).Kind)
	rcv.requireVerified(t, 1, m)

	_, err = LoadCAFile(write("empty.pem", nil))
	require.ErrorContains(t, err, "no PEM certificate found")
	_, err = LoadCAFile(write("key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("x")})))
	require.ErrorContains(t, err, "no PEM certificate found")
	_, err = LoadCAFile(write("bad.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")})))
	require.ErrorContains(t, err, "certificate 1")
	_, err = LoadCAFile(filepath.Join(dir, "missing.pem"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestNewSenderConfig(t *testing.T) {
	t.Parallel()
	_, err := NewSender(SenderConfig{Timeout: -time.Second})
	require.Error(t, err)
	_, err = NewSender(SenderConfig{MaxConnsPerHost: -1})
	require.Error(t, err)

	s, err := NewSender(SenderConfig{})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	require.Equal(t, DefaultTimeout, s.timeout)
	require.Equal(t, "hookferry", s.userAgent)
	require.Equal(t, DefaultMaxConnsPerHost, s.transport.MaxConnsPerHost)
	require.Nil(t, s.transport.Proxy)

	require.NotEqual(t, Delivered, Outcome{}.Kind, "the zero Outcome is not a delivery")
	require.Equal(t, "unreachable", Unreachable.String())
}

func BenchmarkSend(b *testing.B) {
	for _, proto := range []struct {
		name string
		opts []receiverOption
	}{{"http1", nil}, {"http2", []receiverOption{withHTTP2}}} {
		rcv := &receiver{secret: newSecret(b)}
		srv := httptest.NewUnstartedServer(status(http.StatusNoContent))
		for _, opt := range proto.opts {
			opt(srv)
		}
		srv.StartTLS()
		b.Cleanup(srv.Close)
		rcv.srv = srv
		s := newSender(b, rcv, SenderConfig{AllowPrivate: true})
		m := rcv.message("evt_01jq3v7x8m9n0p1q2r3s4t5v6w")

		b.Run(proto.name+"/sequential", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if out := s.Send(context.Background(), m); out.Kind != Delivered {
					b.Fatal(out)
				}
			}
		})
		b.Run(proto.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if out := s.Send(context.Background(), m); out.Kind != Delivered {
						b.Error(out)
						return
					}
				}
			})
		})
	}
}
