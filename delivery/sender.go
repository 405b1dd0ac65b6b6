package delivery

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// DefaultTimeout bounds one attempt, connection to last response byte read.
	DefaultTimeout = 15 * time.Second
	// DefaultMaxConnsPerHost bounds connections to one receiver.
	DefaultMaxConnsPerHost = 64

	// maxResponseDrain is how much of a response body is read (and discarded)
	// so the connection can be reused; a longer body costs its connection.
	maxResponseDrain = 64 << 10
	// maxResponseHeaderBytes bounds what a receiver can make us buffer.
	maxResponseHeaderBytes = 64 << 10
)

// SenderConfig configures a Sender; zero fields take their defaults.
type SenderConfig struct {
	Timeout         time.Duration    // one attempt; default DefaultTimeout
	AllowPrivate    bool             // allow loopback, private, link-local … targets
	RootCAs         *x509.CertPool   // nil: system roots; see LoadCAFile
	UserAgent       string           // "hookferry/<version>"; default "hookferry"
	MaxConnsPerHost int              // default DefaultMaxConnsPerHost
	Now             func() time.Time // signature timestamps; the reference for a Retry-After date
}

// Message is one request to make: the body is sent as is and signed with each
// of Keys (newest first; see Sign); EventID is the webhook-id header, stable
// across attempts.
type Message struct {
	URL     string
	Keys    []string
	EventID string
	Body    []byte
}

// OutcomeKind says what an attempt means for its delivery.
type OutcomeKind int

const (
	// Delivered: the receiver answered 2xx.
	Delivered OutcomeKind = iota + 1 // zero is no outcome, never Delivered
	// Rejected: the receiver answered non-2xx (3xx included: redirects are not
	// followed). Counts as an attempt.
	Rejected
	// Unreachable: no answer from the receiver's side (connection refused, DNS,
	// TLS, timeout, private address refused). Counts as an attempt.
	Unreachable
	// Cancelled: the caller's context ended (shutdown). Not a failure: release
	// the lease.
	Cancelled
	// Internal: our side failed (bad secret, unbuildable request). Requeue,
	// charge nothing.
	Internal
)

func (k OutcomeKind) String() string {
	switch k {
	case Delivered:
		return "delivered"
	case Rejected:
		return "rejected"
	case Unreachable:
		return "unreachable"
	case Cancelled:
		return "cancelled"
	case Internal:
		return "internal"
	}
	return "OutcomeKind(" + strconv.Itoa(int(k)) + ")"
}

// Outcome is the result of one attempt. Error is short, fit for an API
// response and a log line, and never contains the secret.
type Outcome struct {
	Kind       OutcomeKind
	StatusCode int // the receiver's status, when it answered
	Error      string
	Duration   time.Duration
	// RetryAfter is the wait the receiver asked for with Retry-After on a
	// 429 or 503: 0 when absent, unreadable or past, at most maxRetryAfter.
	RetryAfter time.Duration
	// Refused: the dialer refused the target as not a public address
	// (ErrPrivateAddress), which is our policy, not the receiver's doing.
	// A connection refused by the receiver is not Refused.
	Refused bool
}

// Sender makes delivery attempts over one shared keep-alive transport.
// It is safe for concurrent use.
type Sender struct {
	client    *http.Client
	transport *http.Transport
	timeout   time.Duration
	userAgent string
	now       func() time.Time
}

// Timeout is the longest one attempt takes.
func (s *Sender) Timeout() time.Duration { return s.timeout }

// errAttemptTimeout is the cause of an attempt's own deadline, told apart from
// the caller's context ending.
var errAttemptTimeout = errors.New("attempt timeout")

// NewSender builds a Sender from cfg.
func NewSender(cfg SenderConfig) (*Sender, error) {
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("delivery: negative timeout %s", cfg.Timeout)
	}
	if cfg.MaxConnsPerHost < 0 {
		return nil, fmt.Errorf("delivery: negative MaxConnsPerHost %d", cfg.MaxConnsPerHost)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxConnsPerHost == 0 {
		cfg.MaxConnsPerHost = DefaultMaxConnsPerHost
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "hookferry"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	dialer := &attemptDialer{
		dialer: NewDialer(cfg.AllowPrivate),
		tls: &tls.Config{
			MinVersion: tls.VersionTLS12,
			RootCAs:    cfg.RootCAs,
			NextProtos: []string{"h2", "http/1.1"},
		},
		timeout: cfg.Timeout,
	}
	transport := &http.Transport{
		Proxy: nil, // a proxy would connect on our behalf, past the address check
		// Both dials end with their attempt (see attemptDialer); the
		// transport's TLSClientConfig and TLSHandshakeTimeout go unused.
		DialContext:            dialer.DialContext,
		DialTLSContext:         dialer.DialTLSContext,
		ForceAttemptHTTP2:      true,        // custom dialers would otherwise disable it
		ResponseHeaderTimeout:  cfg.Timeout, // starts after the request is written: a backstop to the deadline
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
		MaxConnsPerHost:        cfg.MaxConnsPerHost,
		// As many idle as may be open: a burst to one receiver is followed by
		// the next burst on the same connections.
		MaxIdleConnsPerHost: cfg.MaxConnsPerHost,
		MaxIdleConns:        1024,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true, // response bodies are discarded
	}
	return &Sender{
		client: &http.Client{
			Transport: transport,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		transport: transport,
		timeout:   cfg.Timeout,
		userAgent: cfg.UserAgent,
		now:       cfg.Now,
	}, nil
}

// Close closes idle connections; in-flight attempts finish.
func (s *Sender) Close() { s.transport.CloseIdleConnections() }

// Send makes one attempt to deliver m, within the configured timeout.
func (s *Sender) Send(ctx context.Context, m Message) Outcome {
	start := time.Now() // wall clock for the duration; s.now is for the signature
	out := s.send(ctx, m)
	out.Duration = time.Since(start)
	return out
}

func (s *Sender) send(ctx context.Context, m Message) Outcome {
	if err := ctx.Err(); err != nil {
		return Outcome{Kind: Cancelled, Error: cancelledError(ctx)}
	}
	timestamp := s.now()
	signature, err := Sign(m.Keys, m.EventID, timestamp, m.Body)
	if err != nil {
		return Outcome{Kind: Internal, Error: err.Error()}
	}
	deadline := time.Now().Add(s.timeout)
	attemptCtx, cancel := context.WithDeadlineCause(ctx, deadline, errAttemptTimeout)
	defer cancel()
	// The caller's deadline, if sooner, bounds the dial too.
	dialDeadline, _ := attemptCtx.Deadline()
	attemptCtx = withAttemptDeadline(attemptCtx, dialDeadline)
	req, err := http.NewRequestWithContext(attemptCtx, http.MethodPost, m.URL, bytes.NewReader(m.Body))
	if err != nil {
		return Outcome{Kind: Internal, Error: "bad request: " + unwrapURLError(err).Error()}
	}
	if req.URL.Scheme != "https" && req.URL.Scheme != "http" {
		return Outcome{Kind: Internal, Error: fmt.Sprintf("bad request: unsupported url scheme %q", req.URL.Scheme)}
	}
	req.Header = http.Header{
		"Webhook-Id":        {m.EventID},
		"Webhook-Timestamp": {strconv.FormatInt(timestamp.Unix(), 10)},
		"Webhook-Signature": {signature},
		"Content-Type":      {"application/json"},
		"User-Agent":        {s.userAgent},
	}

	resp, err := s.client.Do(req)
	if err != nil {
		return s.failure(ctx, attemptCtx, deadline, err)
	}
	// Read a little so a short answer leaves the connection reusable; a longer
	// one is cut off and its connection closed. Errors here change nothing:
	// the receiver has already answered.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseDrain))
	_ = resp.Body.Close()

	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return Outcome{Kind: Delivered, StatusCode: code}
	}
	out := Outcome{Kind: Rejected, StatusCode: code, Error: statusMessage(code)}
	if code >= 300 && code < 400 {
		out.Error += " (redirects are not followed)"
	}
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		out.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), s.now())
	}
	return out
}

// statusMessage reads "410 Gone": the code with Go's text for it, never the
// receiver's reason phrase, so the message for a status is always the same.
func statusMessage(code int) string {
	if text := http.StatusText(code); text != "" {
		return strconv.Itoa(code) + " " + text
	}
	return strconv.Itoa(code)
}

// failure classifies an error from the round trip. deadline is the attempt's
// own: a dial bound by it can fail a moment before the attempt's context
// notices, and that is the attempt's timeout too.
func (s *Sender) failure(parent, attempt context.Context, deadline time.Time, err error) Outcome {
	now := time.Now()
	if parent.Err() != nil || past(parent, now) {
		return Outcome{Kind: Cancelled, Error: cancelledError(parent)}
	}
	if errors.Is(err, ErrPrivateAddress) {
		return Outcome{Kind: Unreachable, Error: describe(err), Refused: true}
	}
	if errors.Is(context.Cause(attempt), errAttemptTimeout) || !now.Before(deadline) {
		return Outcome{Kind: Unreachable, Error: "timeout after " + s.timeout.String()}
	}
	return Outcome{Kind: Unreachable, Error: describe(err)}
}

// past reports whether ctx's deadline, if any, is not after now.
func past(ctx context.Context, now time.Time) bool {
	d, ok := ctx.Deadline()
	return ok && !now.Before(d)
}

func cancelledError(ctx context.Context) string {
	if cause := context.Cause(ctx); cause != nil && cause != ctx.Err() {
		return "cancelled: " + cause.Error()
	}
	return "cancelled"
}

// describe turns a transport error into a short message without the URL
// (which may carry credentials) or Go's layers of wrapping.
func describe(err error) string {
	var (
		private  *privateAddressError
		dnsErr   *net.DNSError
		verify   *tls.CertificateVerificationError
		record   tls.RecordHeaderError
		netErr   net.Error
		hostname x509.HostnameError
	)
	switch {
	case errors.As(err, &private):
		return private.Error()
	case errors.Is(err, ErrPrivateAddress):
		return unwrapAll(err).Error()
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return "dns: no such host " + dnsErr.Name
		}
		return "dns: " + dnsErr.Err + " looking up " + dnsErr.Name
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by receiver"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to host"
	case errors.As(err, &hostname):
		return "tls: " + strings.TrimPrefix(hostname.Error(), "x509: ")
	case errors.As(err, &verify):
		return "tls: " + strings.TrimPrefix(verify.Err.Error(), "x509: ")
	case errors.As(err, &record):
		return "tls: receiver did not answer with TLS"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by receiver without a response"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "timeout: " + strings.TrimPrefix(unwrapURLError(err).Error(), "net/http: ")
	}
	return strings.TrimPrefix(unwrapURLError(err).Error(), "net/http: ")
}

// unwrapURLError drops url.Error's "Post \"https://…\": " prefix.
func unwrapURLError(err error) error {
	var u *url.Error
	if errors.As(err, &u) {
		return u.Err
	}
	return err
}

func unwrapAll(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil || next == ErrPrivateAddress {
			return err
		}
		err = next
	}
}

// LoadCAFile returns the system roots plus the PEM certificates in path (for
// HOOKFERRY_DELIVERY_CA_FILE). It fails if the file holds no certificate or
// one that does not parse.
func LoadCAFile(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("delivery CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool() // no system roots here: the file alone
	}
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("delivery CA file %s: certificate %d: %w", path, n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("delivery CA file %s: no PEM certificate found", path)
	}
	return pool, nil
}
