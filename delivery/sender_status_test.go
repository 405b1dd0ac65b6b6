package delivery

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// 410 Gone is a rejection like any other status; its message is the same
// whatever reason phrase the receiver sent.
func TestSendGone(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string][]receiverOption{"http1": nil, "http2": {withHTTP2}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rcv := newReceiver(t, status(http.StatusGone), opts...)
			s := newSender(t, rcv, SenderConfig{AllowPrivate: true})
			m := rcv.message("evt_gone")

			out := s.Send(context.Background(), m)
			require.Equal(t, Outcome{Kind: Rejected, StatusCode: http.StatusGone, Error: "410 Gone", Duration: out.Duration}, out)
			rcv.requireVerified(t, 1, m)
		})
	}
	for statusLine, want := range map[string]string{
		"HTTP/1.1 410 Endpoint Deleted": "410 Gone",
		"HTTP/1.1 410 ":                 "410 Gone",
		"HTTP/1.1 503 Go away\x01":      "503 Service Unavailable",
		"HTTP/1.1 599 Mystery":          "599",
	} {
		t.Run(strconv.Quote(statusLine), func(t *testing.T) {
			t.Parallel()
			url, requests := rawReceiver(t, statusLine)
			s, err := NewSender(SenderConfig{AllowPrivate: true})
			require.NoError(t, err)
			t.Cleanup(s.Close)

			out := s.Send(context.Background(), Message{URL: url, Secret: newSecret(t), EventID: "evt_gone"})
			require.Equal(t, Rejected, out.Kind)
			require.Equal(t, want, out.Error)
			require.EqualValues(t, 1, requests.Load())
		})
	}
}

// rawReceiver is a plain-HTTP receiver that answers every request with
// statusLine verbatim; it counts the requests it read.
func rawReceiver(t *testing.T, statusLine string) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	var requests atomic.Int64
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = conn.Close() }()
				req, err := http.ReadRequest(bufio.NewReader(conn))
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				requests.Add(1)
				_, _ = io.WriteString(conn, statusLine+"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			}()
		}
	}()
	return "http://" + ln.Addr().String() + "/hooks/in", &requests
}
