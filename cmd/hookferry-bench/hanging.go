package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"
)

// The ways a hanging receiver hangs.
const (
	// hangAccept accepts the TCP connection and never reads or writes: the
	// TLS handshake never completes.
	hangAccept = "accept"
	// hangHandshake completes the TLS handshake (offering only http/1.1, so
	// that every attempt in flight needs a connection of its own) and then
	// never reads the request nor answers it.
	hangHandshake = "handshake"
)

// HangingReceiver is a set of TLS listeners on 127.0.0.1 that never answer.
// Each port counts the connections it accepted and when; the connections are
// held open until reset or close, so that the server's attempts end only by
// their own timeout.
type HangingReceiver struct {
	mode  string
	tls   *tls.Config
	epoch time.Time
	ports []*hangPort

	mu     sync.Mutex
	conns  []net.Conn
	closed bool
}

// hangPort is one listener of a hanging receiver.
type hangPort struct {
	URL      string // https://127.0.0.1:PORT
	ln       net.Listener
	mu       sync.Mutex
	accepted []time.Duration // since the epoch, as Accept returned
	shaken   int             // TLS handshakes completed (handshake mode)
}

// startHanging opens n listeners that hang in mode (hangAccept or hangHandshake).
func startHanging(id *identity, epoch time.Time, mode string, n int) (*HangingReceiver, error) {
	if mode != hangAccept && mode != hangHandshake {
		return nil, fmt.Errorf("hanging mode must be %s or %s, not %q", hangAccept, hangHandshake, mode)
	}
	h := &HangingReceiver{mode: mode, epoch: epoch, tls: &tls.Config{
		Certificates: []tls.Certificate{id.cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"},
	}}
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			h.close()
			return nil, err
		}
		p := &hangPort{URL: "https://" + ln.Addr().String(), ln: ln}
		h.ports = append(h.ports, p)
		go h.accept(p)
	}
	return h, nil
}

func (h *HangingReceiver) accept(p *hangPort) {
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		at := time.Since(h.epoch)
		p.mu.Lock()
		p.accepted = append(p.accepted, at)
		p.mu.Unlock()
		if !h.hold(conn) {
			return
		}
		if h.mode == hangHandshake {
			go func() {
				tc := tls.Server(conn, h.tls)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if tc.HandshakeContext(ctx) == nil {
					p.mu.Lock()
					p.shaken++
					p.mu.Unlock()
				}
				// Then nothing: the request stays unread, the connection open.
			}()
		}
	}
}

// hold keeps conn open until reset or close; false once closed.
func (h *HangingReceiver) hold(conn net.Conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		_ = conn.Close()
		return false
	}
	h.conns = append(h.conns, conn)
	return true
}

// reset closes every connection held, which ends the attempts stuck on them.
func (h *HangingReceiver) reset() {
	h.mu.Lock()
	conns := h.conns
	h.conns = nil
	h.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

func (h *HangingReceiver) close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	for _, p := range h.ports {
		_ = p.ln.Close()
	}
	h.reset()
}

// url is the URL of port i (modulo the number of ports).
func (h *HangingReceiver) url(i int) string { return h.ports[i%len(h.ports)].URL }

// accepted counts the connections port i accepted at or before t and after
// it, and how long after t the latest came.
func (h *HangingReceiver) accepted(i int, t time.Duration) (before, after int, lastLag time.Duration) {
	p := h.ports[i]
	p.mu.Lock()
	defer p.mu.Unlock()
	return countAround(p.accepted, t)
}

// acceptedSince counts the connections all ports accepted after t, and the
// TLS handshakes they completed in all.
func (h *HangingReceiver) acceptedSince(t time.Duration) (conns, handshakes int) {
	for i, p := range h.ports {
		_, after, _ := h.accepted(i, t)
		conns += after
		p.mu.Lock()
		handshakes += p.shaken
		p.mu.Unlock()
	}
	return conns, handshakes
}

// describe says how the receiver hangs, for the report.
func (h *HangingReceiver) describe() string {
	if h.mode == hangHandshake {
		return "TLS handshake completed (http/1.1), request never read"
	}
	return "TCP accepted, never read or written"
}

// countAround splits times (since the epoch) at t: at or before it, after it,
// and how long after t the latest one came.
func countAround(times []time.Duration, t time.Duration) (before, after int, lastLag time.Duration) {
	for _, a := range times {
		if a > t {
			after++
			lastLag = max(lastLag, a-t)
		} else {
			before++
		}
	}
	return before, after, lastLag
}
