package delivery

import (
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
