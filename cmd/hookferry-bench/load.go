package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	hookferry "github.com/hookferry/hookferry/clients/go"
)

// eventType is what the bench publishes and subscribes to.
const eventType = "order.created"

// maxPublishErrors stops a phase whose publishes keep failing.
const maxPublishErrors = 10

// api is the generated client of the server under test, one token per role,
// and what it publishes: an event type, to an audience (nil: the tenant).
type api struct {
	client    *hookferry.ClientWithResponses
	manage    hookferry.RequestEditorFn
	publish   hookferry.RequestEditorFn
	eventType string
	audience  *hookferry.Audience
}

func bearer(token string) hookferry.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}

// as is a over the same connections for another principal, whose token
// holds both roles, publishing typ to the users of audience (none: all the
// users of its tenant).
func (a *api) as(token, typ string, audience ...string) *api {
	b := &api{client: a.client, manage: bearer(token), publish: bearer(token), eventType: typ}
	if len(audience) > 0 {
		b.audience = &hookferry.Audience{UserIds: audience}
	}
	return b
}

func newAPI(addr string, publishers int, manageToken, publishToken string) (*api, error) {
	// Keep-alive connections for every publisher: the default of 2 idle per
	// host would make the load generator open connections all the time.
	transport := &http.Transport{
		MaxIdleConns:        publishers + 8,
		MaxIdleConnsPerHost: publishers + 8,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	client, err := hookferry.NewClientWithResponses("http://"+addr, hookferry.WithHTTPClient(&http.Client{Transport: transport, Timeout: 30 * time.Second}))
	if err != nil {
		return nil, err
	}
	return &api{client: client, manage: bearer(manageToken), publish: bearer(publishToken), eventType: eventType}, nil
}

// registerWebhooks points m webhooks, subscribed to a's event type, at
// distinct paths of the receiver, and returns their ids.
func (a *api) registerWebhooks(ctx context.Context, receiverURL string, m int) ([]string, error) {
	urls := make([]string, m)
	for i := range urls {
		urls[i] = fmt.Sprintf("%s/hook/%d", receiverURL, i)
	}
	return a.register(ctx, urls)
}

// register registers one webhook per URL, subscribed to a's event type, and
// returns their ids.
func (a *api) register(ctx context.Context, urls []string) ([]string, error) {
	var ids []string
	for _, u := range urls {
		resp, err := a.client.RegisterWebhookWithResponse(ctx, hookferry.RegisterWebhookRequest{
			Url:          u,
			Subscription: hookferry.Subscription{EventTypes: []hookferry.EventTypeName{a.eventType}},
		}, a.manage)
		if err != nil {
			return nil, fmt.Errorf("register webhook %s: %w", u, err)
		}
		if resp.JSON201 == nil {
			return nil, fmt.Errorf("register webhook %s: %s %s", u, resp.Status(), resp.Body)
		}
		ids = append(ids, resp.JSON201.Id)
	}
	return ids, nil
}

// deleteAll deletes the webhooks, ignoring those already gone.
func (a *api) deleteAll(ctx context.Context, ids []string) error {
	for _, id := range ids {
		resp, err := a.client.DeleteWebhookWithResponse(ctx, id, a.manage)
		if err != nil {
			return fmt.Errorf("delete %s: %w", id, err)
		}
		if resp.StatusCode() != http.StatusOK && resp.StatusCode() != http.StatusNotFound {
			return fmt.Errorf("delete %s: %s %s", id, resp.Status(), resp.Body)
		}
	}
	return nil
}

// setPaused pauses or unpauses the webhooks.
func (a *api) setPaused(ctx context.Context, ids []string, paused bool) error {
	for _, id := range ids {
		var status int
		var body []byte
		if paused {
			resp, err := a.client.PauseWebhookWithResponse(ctx, id, a.manage)
			if err != nil {
				return fmt.Errorf("pause %s: %w", id, err)
			}
			status, body = resp.StatusCode(), resp.Body
		} else {
			resp, err := a.client.UnpauseWebhookWithResponse(ctx, id, nil, a.manage)
			if err != nil {
				return fmt.Errorf("unpause %s: %w", id, err)
			}
			status, body = resp.StatusCode(), resp.Body
		}
		if status != http.StatusOK {
			return fmt.Errorf("pause=%t %s: %d %s", paused, id, status, body)
		}
	}
	return nil
}

// eventData is the payload of every bench event: when it was published
// (since the bench's epoch), which one, and in which phase.
type eventData struct {
	SentNS int64  `json:"sent_ns"`
	Seq    int64  `json:"seq"`
	Phase  string `json:"phase"`
}

// publishOne publishes one event and returns how many deliveries it queued
// and how long the 202 took.
func (a *api) publishOne(ctx context.Context, epoch time.Time, phase string, seq int64) (int, time.Duration, error) {
	sent := time.Since(epoch)
	data, _ := json.Marshal(eventData{SentNS: int64(sent), Seq: seq, Phase: phase})
	resp, err := a.client.PublishEventWithResponse(ctx, hookferry.PublishEventRequest{Type: a.eventType, Data: data, Audience: a.audience}, a.publish)
	if err != nil {
		return 0, 0, err
	}
	if resp.JSON202 == nil {
		return 0, 0, fmt.Errorf("publish: %s %s", resp.Status(), resp.Body)
	}
	return int(resp.JSON202.Deliveries), time.Since(epoch) - sent, nil
}

// publishBatch publishes the events seq to seq+n-1 in one publishEvents
// request and returns how many deliveries they queued and how long the 202
// took.
func (a *api) publishBatch(ctx context.Context, epoch time.Time, phase string, seq int64, n int) (int, time.Duration, error) {
	sent := time.Since(epoch)
	events := make([]hookferry.PublishEventRequest, n)
	for i := range events {
		data, _ := json.Marshal(eventData{SentNS: int64(sent), Seq: seq + int64(i), Phase: phase})
		events[i] = hookferry.PublishEventRequest{Type: a.eventType, Data: data, Audience: a.audience}
	}
	resp, err := a.client.PublishEventsWithResponse(ctx, hookferry.PublishEventsRequest{Events: events}, a.publish)
	if err != nil {
		return 0, 0, err
	}
	if resp.JSON202 == nil {
		return 0, 0, fmt.Errorf("publish batch: %s %.300s", resp.Status(), resp.Body)
	}
	deliveries := 0
	for _, e := range resp.JSON202.Events {
		deliveries += int(e.Deliveries)
	}
	return deliveries, time.Since(epoch) - sent, nil
}

// publishResult is what a publish phase did.
type publishResult struct {
	published  int
	deliveries int // queued, by the 202s
	errors     int
	firstErr   error
	duration   time.Duration   // first publish sent to last 202 received
	rtts       []time.Duration // publish sent -> 202 received
	// releasedAt (since the epoch), when set, is when the deliveries could
	// start: delivered/s counts from it instead of the first publish.
	releasedAt time.Duration
	// sent is when (since the epoch) each accepted event was sent, by seq;
	// publishSteady alone fills it.
	sent map[int64]time.Duration
}

// publishParallel publishes n events from p publishers, each waiting for its
// 202 before the next; batch above 1 publishes them that many per request.
func (a *api) publishParallel(ctx context.Context, epoch time.Time, phase string, n, p, batch int) publishResult {
	batch = max(batch, 1)
	var (
		next       atomic.Int64
		mu         sync.Mutex
		res        publishResult
		wg         sync.WaitGroup
		stopped    atomic.Bool
		start      = time.Now()
		deliveries atomic.Int64
		published  atomic.Int64
	)
	for range p {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stopped.Load() && ctx.Err() == nil {
				seq := next.Add(int64(batch)) - int64(batch) + 1
				if seq > int64(n) {
					return
				}
				count := min(batch, n-int(seq)+1)
				var d int
				var rtt time.Duration
				var err error
				if batch == 1 {
					d, rtt, err = a.publishOne(ctx, epoch, phase, seq)
				} else {
					d, rtt, err = a.publishBatch(ctx, epoch, phase, seq, count)
				}
				if err != nil {
					mu.Lock()
					res.errors++
					if res.firstErr == nil {
						res.firstErr = err
					}
					if res.errors >= maxPublishErrors {
						stopped.Store(true)
					}
					mu.Unlock()
					continue
				}
				published.Add(int64(count))
				deliveries.Add(int64(d))
				mu.Lock()
				res.rtts = append(res.rtts, rtt)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.duration = time.Since(start)
	res.published, res.deliveries = int(published.Load()), int(deliveries.Load())
	return res
}

// publishSteady publishes rate events per second from one publisher for d:
// event i goes out at start+i/rate, or at once if the previous 202 was late.
func (a *api) publishSteady(ctx context.Context, epoch time.Time, phase string, rate float64, d time.Duration) publishResult {
	n := int(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	res := publishResult{sent: make(map[int64]time.Duration, n)}
	start := time.Now()
	for i := range n {
		if ctx.Err() != nil || res.errors >= maxPublishErrors {
			break
		}
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		got, rtt, err := a.publishOne(ctx, epoch, phase, int64(i+1))
		// No earlier than the event's sent_ns: a lower bound taken from it
		// stays one.
		sent := time.Since(epoch) - rtt
		if err != nil {
			res.errors++
			if res.firstErr == nil {
				res.firstErr = err
			}
			continue
		}
		res.published++
		res.deliveries += got
		res.rtts = append(res.rtts, rtt)
		res.sent[int64(i+1)] = sent
	}
	res.duration = time.Since(start)
	return res
}

// Latency is a distribution in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func latencyOf(ds []time.Duration) Latency {
	l, _ := latencyBounded(ds, nil)
	return l
}

// latencyBounded is the distribution of the measured durations and of lower
// bounds of others (deliveries that had not arrived when the bench stopped
// waiting, each counted as its wait so far). A percentile is exact when no
// lower bound sorts at or below its rank; the others are lower bounds
// themselves (raising the bounded values can only raise them), and atLeast
// names them: p50, p90, p99, max.
func latencyBounded(measured, lower []time.Duration) (_ Latency, atLeast []string) {
	type sample struct {
		d     time.Duration
		bound bool
	}
	all := make([]sample, 0, len(measured)+len(lower))
	for _, d := range measured {
		all = append(all, sample{d: d})
	}
	for _, d := range lower {
		all = append(all, sample{d: d, bound: true})
	}
	if len(all) == 0 {
		return Latency{}, nil
	}
	slices.SortFunc(all, func(a, b sample) int { return cmp.Compare(a.d, b.d) })
	firstBound := len(all)
	for i, x := range all {
		if x.bound {
			firstBound = i
			break
		}
	}
	// Nearest rank: the smallest value with at least q of the samples at or below it.
	rank := func(name string, q float64) float64 {
		i := min(max(int(q*float64(len(all))+0.999999)-1, 0), len(all)-1)
		if i >= firstBound {
			atLeast = append(atLeast, name)
		}
		return ms(all[i].d)
	}
	return Latency{P50: rank("p50", 0.50), P90: rank("p90", 0.90), P99: rank("p99", 0.99), Max: rank("max", 1)}, atLeast
}

func ms(d time.Duration) float64 { return round2(float64(d) / float64(time.Millisecond)) }

func round2(v float64) float64 { return math.Round(v*100) / 100 }
