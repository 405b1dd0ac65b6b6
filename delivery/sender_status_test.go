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
	"time"

	"github.com/stretchr/testify/require"
)

func TestSendRetryAfter(t *testing.T) {
	t.Parallel()
	// The signature's timestamp comes from the same clock: it must be near
	// the verifier's wall clock.
	base := time.Now().Truncate(time.Second)
	in90s := base.Add(90 * time.Second).Format(http.TimeFormat)
	for name, c := range map[string]struct {
		code       int
		retryAfter string // "" sends no header
		want       time.Duration
	}{
		"429 seconds":      {http.StatusTooManyRequests, "120", 2 * time.Minute},
		"503 seconds":      {http.StatusServiceUnavailable, "5", 5 * time.Second},
		"503 date":         {http.StatusServiceUnavailable, in90s, 90 * time.Second},
		"429 past date":    {http.StatusTooManyRequests, base.Add(-time.Hour).Format(http.TimeFormat), 0},
		"429 huge":         {http.StatusTooManyRequests, "999999999999999999999", maxRetryAfter},
		"429 negative":     {http.StatusTooManyRequests, "-30", 0},
		"503 garbage":      {http.StatusServiceUnavailable, "in a while", 0},
		"429 without":      {http.StatusTooManyRequests, "", 0},
		"500 is no signal": {http.StatusInternalServerError, "120", 0},
		"301 is no signal": {http.StatusMovedPermanently, "120", 0},
		"200 is no signal": {http.StatusOK, "120", 0},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rcv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
				if c.retryAfter != "" {
					w.Header().Set("Retry-After", c.retryAfter)
				}
				w.WriteHeader(c.code)
			})
			s := newSender(t, rcv, SenderConfig{AllowPrivate: true, Now: func() time.Time { return base }})
			m := rcv.message("evt_retry_after")

			out := s.Send(context.Background(), m)
			require.Equal(t, c.code, out.StatusCode)
			require.Equal(t, c.want, out.RetryAfter)
			rcv.requireVerified(t, 1, m)
		})
	}
}

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

			out := s.Send(context.Background(), Message{URL: url, Keys: []string{newSecret(t)}, EventID: "evt_gone"})
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
