package main

import (
	"io"
	"net/http"
	"sync"
	"time"
)

// SlowReceiver holds every request for a while and then answers 200, so that
// the server's workers stay busy and its claims wait in memory. It records,
// per webhook path, when each request arrived (when its handler started,
// after the request's headers were read) and which events it answered.
type SlowReceiver struct {
	URL  string
	hold time.Duration

	epoch time.Time
	srv   *http.Server

	mu      sync.Mutex
	hooks   map[string]*slowHook // by path
	holding int                  // requests being held now
}

// slowHook is what one webhook path received.
type slowHook struct {
	arrivals []time.Duration // since the epoch, at handler start
	// answered is, by webhook-id (the event), when the first request for it
	// that was answered 200 arrived.
	answered map[string]time.Duration
}

func startSlowReceiver(id *identity, epoch time.Time, hold time.Duration) (*SlowReceiver, error) {
	r := &SlowReceiver{hold: hold, epoch: epoch, hooks: map[string]*slowHook{}}
	srv, url, err := serveTLS(id, http.HandlerFunc(r.serveHTTP))
	if err != nil {
		return nil, err
	}
	r.srv, r.URL = srv, url
	return r, nil
}

func (r *SlowReceiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	arrived := time.Since(r.epoch)
	r.mu.Lock()
	h := r.hookLocked(req.URL.Path)
	h.arrivals = append(h.arrivals, arrived)
	r.holding++
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.holding--
		r.mu.Unlock()
	}()

	_, _ = io.Copy(io.Discard, io.LimitReader(req.Body, 1<<20))
	t := time.NewTimer(r.hold)
	defer t.Stop()
	select {
	case <-t.C:
	case <-req.Context().Done():
		return // the server gave up on the attempt: no answer
	}
	w.WriteHeader(http.StatusOK)
	event := req.Header.Get("Webhook-Id")
	r.mu.Lock()
	if at, ok := h.answered[event]; !ok || arrived < at {
		h.answered[event] = arrived
	}
	r.mu.Unlock()
}

func (r *SlowReceiver) hookLocked(path string) *slowHook {
	h := r.hooks[path]
	if h == nil {
		h = &slowHook{answered: map[string]time.Duration{}}
		r.hooks[path] = h
	}
	return h
}

// arrivals counts the requests for path that arrived at or before t and those
// after it, and the latest arrival after t relative to t.
func (r *SlowReceiver) arrivals(path string, t time.Duration) (before, after int, lastLag time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return countAround(r.hookLocked(path).arrivals, t)
}

// answered is how many distinct events path was answered 200 for, by a
// request that arrived at or before t.
func (r *SlowReceiver) answered(path string, t time.Duration) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, at := range r.hookLocked(path).answered {
		if at <= t {
			n++
		}
	}
	return n
}

// held is how many requests are being held now.
func (r *SlowReceiver) held() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.holding
}

func (r *SlowReceiver) close() { _ = r.srv.Close() }
