package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/hookferry/hookferry/webhook"
)

// ErrPrivateAddress is wrapped by the error of a dial to an address that is
// not public (see webhook.IsPublicAddr) when private targets are not allowed.
var ErrPrivateAddress = errors.New("not a public address")

// privateAddressError reads "refused: 10.0.0.5 is not a public address".
type privateAddressError struct{ addr string }

func (e *privateAddressError) Error() string {
	return "refused: " + e.addr + " is " + ErrPrivateAddress.Error()
}

func (e *privateAddressError) Unwrap() error { return ErrPrivateAddress }

// NewDialer returns the dialer for deliveries. Unless allowPrivate, it refuses
// every connection to an address that is not public. The check runs in
// Control, after DNS resolution and before connect, on each address tried, so
// a name that resolves (or re-resolves, as in DNS rebinding) to a private
// address is refused too.
func NewDialer(allowPrivate bool) *net.Dialer {
	d := &net.Dialer{
		Timeout:   10 * time.Second,
		KeepAlive: 30 * time.Second,
	}
	if !allowPrivate {
		d.Control = refusePrivate
	}
	return d
}

// refusePrivate is a net.Dialer Control function; address is the resolved
// "ip:port" about to be connected.
func refusePrivate(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		// Fail closed: an address we cannot read is not one we can vouch for.
		return fmt.Errorf("refused: cannot parse address %q: %w", address, ErrPrivateAddress)
	}
	if !webhook.IsPublicAddr(ap.Addr()) {
		return &privateAddressError{addr: ap.Addr().WithZone("").Unmap().String()}
	}
	return nil
}

// attemptDeadlineKey carries an attempt's deadline to the dials made for it.
// http.Transport dials detached from the request's cancellation (so a late
// connection can serve a later request) but keeps its values: a value is the
// one way the deadline reaches the dial.
type attemptDeadlineKey struct{}

// withAttemptDeadline marks ctx so that dials for it end by deadline.
func withAttemptDeadline(ctx context.Context, deadline time.Time) context.Context {
	return context.WithValue(ctx, attemptDeadlineKey{}, deadline)
}

// attemptDialer makes the Sender's connections, TLS handshake included, so
// that each ends no later than the attempt that asked for it: by the deadline
// withAttemptDeadline put in its context, and at most timeout after the dial
// began. Without it a host that accepts and never answers holds every
// connection slot to it (MaxConnsPerHost) for as long as the transport's own
// bounds allow, each dial outliving its attempt.
type attemptDialer struct {
	dialer  *net.Dialer
	tls     *tls.Config // ServerName is set per dial
	timeout time.Duration
}

// bound returns ctx limited to the attempt's deadline.
func (d *attemptDialer) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(d.timeout)
	if attempt, ok := ctx.Value(attemptDeadlineKey{}).(time.Time); ok && attempt.Before(deadline) {
		deadline = attempt
	}
	return context.WithDeadline(ctx, deadline)
}

// DialContext is http.Transport's DialContext: plain TCP, for http targets.
func (d *attemptDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	return d.dialer.DialContext(ctx, network, addr)
}

// DialTLSContext is http.Transport's DialTLSContext: TCP and the TLS
// handshake under one bound (the transport's TLSHandshakeTimeout would start
// its own clock after the dial).
func (d *attemptDialer) DialTLSContext(ctx context.Context, network, addr string) (net.Conn, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	conn, err := d.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cfg := d.tls.Clone()
	cfg.ServerName = host
	tlsConn := tls.Client(conn, cfg)
	// HandshakeContext closes the connection when ctx ends mid-handshake.
	if err := tlsConn.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return tlsConn, nil
}
