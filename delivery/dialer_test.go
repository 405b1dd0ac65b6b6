package delivery

import (
	"context"
	"net"
	"strconv"
	"testing"

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
