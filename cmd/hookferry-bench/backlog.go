package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"sync"
	"text/tabwriter"
	"time"
)

// The backlog phase's owner and the prefix of its bulk events.
const (
	backlogTenant = "backlog"
	backlogPrefix = "evt_back"
)

// The targets for a backlog of 1,000,000 events.
const (
	backlogRSSTarget   = 150 // MB
	backlogGetTarget   = 50  // ms
	backlogDrainTarget = 4000.0
	historyTolerance   = 0.10 // history's delivered/s within 10% of throughput's
)

// backlogWindow is the span of the drain's rate windows.
const backlogWindow = 10 * time.Second

// backlogGets is how many times the phase reads the paused webhook.
const backlogGets = 20

// BacklogResult is what the backlog phase measured: a paused webhook holding
// Events events inserted in bulk SQL, read through the API, then unpaused.
type BacklogResult struct {
	Events   int     `json:"events"`
	InsertS  float64 `json:"insert_s"`
	Analyzed string  `json:"analyzed"`
	// DBBytes is the growth of the database by the bulk rows, per event.
	DBBytes *BytesPerEvent `json:"db_bytes,omitempty"`
	// GET /v1/webhooks/{id} while paused: the first call, and all of them.
	GetFirstMS float64 `json:"get_first_ms"`
	GetMS      Latency `json:"get_ms"`
	GetCalls   int     `json:"get_calls"`
	Buffered   int64   `json:"buffered_events"` // as the last GET said; must be Events
	// The server's VmRSS sampled every 100 ms from the registration to the
	// end of the phase, and its VmHWM at the end (since it started).
	RSSMaxMiB float64 `json:"server_rss_max_mib"`
	VmHWMMiB  float64 `json:"server_vmhwm_mib"`
	RSSAfter  float64 `json:"server_rss_after_insert_mib"` // before the first GET
	UnpauseMS float64 `json:"unpause_ms"`                  // request sent -> 200
	// The drain: arrivals counted up to DrainTarget, then the bench stops
	// waiting (the rest drains on until the server stops).
	DrainTarget   int       `json:"drain_target"`
	Drained       int       `json:"drained"`
	Duplicates    int       `json:"duplicates"`
	DrainPerS     float64   `json:"drain_per_s"`           // Drained from the unpause sent to the last of them
	After200PerS  float64   `json:"drain_after_200_per_s"` // the same from the unpause's 200
	WindowsPerS   []float64 `json:"window_per_s"`          // each full backlogWindow from the 200
	SustainedPerS float64   `json:"sustained_per_s"`       // the slowest window (the only one, partial, if the drain was shorter)
	Stalled       bool      `json:"stalled"`               // nothing arrived for --wait: the bench gave up
	TimedOut      bool      `json:"timed_out"`             // --backlog-time passed before DrainTarget arrived
	CPU           CPU       `json:"cpu"`                   // from the unpause to the end of the count
	RepauseMS     float64   `json:"repause_ms,omitempty"`  // paused again for the phases after it
}

// rssSampler records the largest VmRSS of a process, every 100 ms.
type rssSampler struct {
	pid  int
	stop chan struct{}
	done chan struct{}
	once sync.Once
	mu   sync.Mutex
	max  int64 // KiB
}

func sampleRSS(pid int) *rssSampler {
	s := &rssSampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) sample() {
	if kib, err := statusKiB(s.pid, "VmRSS"); err == nil {
		s.mu.Lock()
		s.max = max(s.max, kib)
		s.mu.Unlock()
	}
}

// end stops sampling and returns the largest VmRSS, in MiB.
func (s *rssSampler) end() float64 {
	s.once.Do(func() { close(s.stop) })
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return round2(float64(s.max) / 1024)
}

func rssMiB(pid int, field string) float64 {
	kib, err := statusKiB(pid, field)
	if err != nil {
		logf("%s: %v", field, err)
	}
	return round2(float64(kib) / 1024)
}

// backlog runs the backlog phase; repause pauses the webhook again at the
// end, for the phases after it.
func (b *bench) backlog(ctx context.Context, repause bool) (*BacklogResult, error) {
	o := b.o
	srv := b.servers[0]
	res := &BacklogResult{Events: o.Backlog, DrainTarget: o.BacklogDrain}
	if res.DrainTarget == 0 || res.DrainTarget > o.Backlog {
		res.DrainTarget = o.Backlog
	}
	rss := sampleRSS(srv.pid())
	defer func() { res.RSSMaxMiB = rss.end() }()

	token, err := srv.createToken(ctx, backlogTenant, backlogTenant, "WEBHOOK_MANAGEMENT", "EVENTS_PUBLISH")
	if err != nil {
		return res, err
	}
	a := b.api.as(token, eventType)
	ids, err := a.register(ctx, []string{b.recv.URL + "/backlog/0"})
	if err != nil {
		return res, err
	}
	if err := a.setPaused(ctx, ids, true); err != nil {
		return res, err
	}
	id := ids[0]

	before := b.dbc.sizeOrLog(ctx)
	d := b.dbc
	logf("backlog: inserting %d events and their PENDING deliveries, held for the paused webhook %s, in bulk SQL, %d per transaction", o.Backlog, id, bulkChunk)
	start := time.Now()
	at := time.Now().UTC().Truncate(time.Microsecond)
	// As insertFanOut queues a delivery for a paused webhook: pending, no
	// due time (held), never claimed; unpause gives it one.
	err = d.bulkEvents(ctx, backlogPrefix, backlogTenant, "backlog", o.Backlog, at, func() int64 { return int64(time.Since(b.epoch)) },
		func(ctx context.Context, tx *sql.Tx, lo, hi int) error {
			if err := d.insertDeliveries(ctx, tx, backlogPrefix, ids, lo, hi,
				[]string{"status", "attempts", "schedule_pos", "next_attempt_at", "claim_seq", "last_error", "created_at"},
				[]string{"'PENDING'", "0", "0", "NULL", "0", "''", d.typed(3, "timestamptz")},
				at); err != nil {
				return fmt.Errorf("deliveries: %w", err)
			}
			if hi%(5*bulkChunk) == 0 {
				logf("backlog: %d inserted, %.0f/s", hi, float64(hi)/time.Since(start).Seconds())
			}
			return nil
		})
	if err != nil {
		return res, err
	}
	res.InsertS = round2(time.Since(start).Seconds())
	if !o.Analyze {
		res.Analyzed = "nothing (--analyze=false)"
	} else if res.Analyzed, err = d.analyze(ctx); err != nil {
		return res, err
	}
	res.DBBytes = perDelivered(before, d.sizeOrLog(ctx), o.Backlog, o.DB)
	res.RSSAfter = rssMiB(srv.pid(), "VmRSS")
	logf("backlog: inserted in %.1f s; %s; server RSS %.1f MiB", res.InsertS, res.Analyzed, res.RSSAfter)

	var calls []time.Duration
	for i := range backlogGets {
		sent := time.Now()
		resp, err := a.client.GetWebhookWithResponse(ctx, id, nil, a.manage)
		took := time.Since(sent)
		if err != nil {
			return res, fmt.Errorf("get %s: %w", id, err)
		}
		if resp.JSON200 == nil {
			return res, fmt.Errorf("get %s: %s %s", id, resp.Status(), resp.Body)
		}
		if i == 0 {
			res.GetFirstMS = ms(took)
		}
		calls = append(calls, took)
		res.Buffered = resp.JSON200.BufferedEvents
	}
	res.GetMS, res.GetCalls = latencyOf(calls), len(calls)
	if res.Buffered != int64(o.Backlog) {
		logf("backlog: buffered_events is %d, not %d", res.Buffered, o.Backlog)
	}

	c := b.recv.begin("backlog", res.DrainTarget)
	defer b.recv.end(c)
	cpu := startCPU(b.cpuScope())
	sent := time.Since(b.epoch)
	resp, err := a.client.UnpauseWebhookWithResponse(ctx, id, nil, a.manage)
	at200 := time.Since(b.epoch)
	res.UnpauseMS = ms(at200 - sent)
	if err != nil {
		return res, fmt.Errorf("unpause %s: %w", id, err)
	}
	if resp.StatusCode() != http.StatusOK {
		return res, fmt.Errorf("unpause %s: %s %s", id, resp.Status(), resp.Body)
	}
	logf("backlog: unpaused in %.0f ms; counting the first %d arrivals", res.UnpauseMS, res.DrainTarget)

	type sample struct {
		at  time.Duration // since the epoch
		got int
	}
	samples := []sample{{at200, 0}}
	lastGot, lastChange := 0, time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	for waiting := true; waiting; {
		select {
		case <-c.done:
			waiting = false
		case <-ctx.Done():
			waiting = false
		case <-tick.C:
		}
		got, _, _ := b.recv.progress(c)
		samples = append(samples, sample{time.Since(b.epoch), got})
		if waiting && time.Since(b.epoch)-at200 > o.BacklogTime {
			res.TimedOut = true
			logf("backlog: %s after the unpause %d of %d counted; the bench stops counting", o.BacklogTime, got, res.DrainTarget)
			waiting = false
		}
		if !waiting {
			break
		}
		if got != lastGot {
			lastGot, lastChange = got, time.Now()
		} else if time.Since(lastChange) > o.Wait {
			res.Stalled = true
			logf("backlog: nothing arrived for %s; %d of %d counted", o.Wait, got, res.DrainTarget)
			waiting = false
		}
	}
	tick.Stop()
	res.CPU = cpu.stop()
	got, dups, last := b.recv.progress(c)
	res.Drained, res.Duplicates = got, dups
	res.CPU.perDelivered(got)
	if got > 0 && last > sent {
		res.DrainPerS = round2(float64(got) / (last - sent).Seconds())
	}
	if got > 0 && last > at200 {
		res.After200PerS = round2(float64(got) / (last - at200).Seconds())
	}
	// The arrivals in each full window from the 200, by the samples.
	end := samples[len(samples)-1]
	countAt := func(t time.Duration) int {
		n := 0
		for _, s := range samples {
			if s.at > t {
				break
			}
			n = s.got
		}
		return n
	}
	for w := at200; w+backlogWindow <= end.at; w += backlogWindow {
		res.WindowsPerS = append(res.WindowsPerS, round2(float64(countAt(w+backlogWindow)-countAt(w))/backlogWindow.Seconds()))
	}
	switch {
	case len(res.WindowsPerS) > 0:
		res.SustainedPerS = res.WindowsPerS[0]
		for _, r := range res.WindowsPerS {
			res.SustainedPerS = min(res.SustainedPerS, r)
		}
	case end.at > at200:
		res.SustainedPerS = round2(float64(end.got) / (end.at - at200).Seconds())
	}
	res.RSSMaxMiB = rss.end()
	res.VmHWMMiB = rssMiB(srv.pid(), "VmHWM")
	if repause {
		sent := time.Now()
		if err := a.setPaused(ctx, ids, true); err != nil {
			return res, err
		}
		res.RepauseMS = ms(time.Since(sent))
	}
	return res, nil
}

// met says whether a figure reached its target.
func met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT MET"
}

func printBacklog(r *BacklogResult) {
	fmt.Printf("backlog: %d events held for a paused webhook, inserted in bulk SQL in %.1f s; then %s\n", r.Events, r.InsertS, r.Analyzed)
	if r.DBBytes != nil {
		fmt.Printf("backlog: database bytes per held event: %s\n", r.DBBytes)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "figure\tvalue\ttarget\t\t")
	fmt.Fprintf(tw, "GET /v1/webhooks/{id} p50 / max ms (%d calls; first %.1f)\t%.1f / %.1f\t< %d\t%s\t\n", r.GetCalls, r.GetFirstMS, r.GetMS.P50, r.GetMS.Max, backlogGetTarget, met(r.GetMS.Max < backlogGetTarget))
	fmt.Fprintf(tw, "buffered_events\t%d\t%d\t%s\t\n", r.Buffered, r.Events, met(r.Buffered == int64(r.Events)))
	fmt.Fprintf(tw, "server VmRSS max MiB (every 100 ms; %.1f after the insert)\t%.1f\t< %d MB\t%s\t\n", r.RSSAfter, r.RSSMaxMiB, backlogRSSTarget, met(r.RSSMaxMiB*1.048576 < backlogRSSTarget))
	fmt.Fprintf(tw, "server VmHWM MiB (since it started)\t%.1f\t\t\t\n", r.VmHWMMiB)
	fmt.Fprintf(tw, "unpause call ms\t%.0f\t\t\t\n", r.UnpauseMS)
	fmt.Fprintf(tw, "drained (counted of %d; dup %d)\t%d\t\t\t\n", r.DrainTarget, r.Duplicates, r.Drained)
	fmt.Fprintf(tw, "drain/s from the unpause sent / from its 200\t%.0f / %.0f\t\t\t\n", r.DrainPerS, r.After200PerS)
	fmt.Fprintf(tw, "drain/s sustained (slowest %s window from the 200)\t%.0f\t≥ %.0f\t%s\t\n", backlogWindow, r.SustainedPerS, backlogDrainTarget, met(r.SustainedPerS >= backlogDrainTarget))
	_ = tw.Flush()
	fmt.Printf("backlog: drain windows/s %v; cpu s srv/db/bench/other %.1f/%.1f/%.1f/%.1f, busy %.0f%%", r.WindowsPerS, r.CPU.ServerS, r.CPU.DatabaseS, r.CPU.BenchS, r.CPU.OtherS, r.CPU.MachineBusyPct)
	fmt.Println()
	if line := r.CPU.perDeliveredLine(); line != "" {
		fmt.Printf("backlog: %s\n", line)
	}
	if r.TimedOut {
		fmt.Printf("backlog: the bench stopped counting at --backlog-time, %d short of its target %d\n", r.DrainTarget-r.Drained, r.DrainTarget)
	}
	if r.Stalled {
		fmt.Println("backlog: the drain stalled: the bench stopped waiting before it counted its target")
	}
	if r.RepauseMS > 0 {
		fmt.Printf("backlog: paused again for the next phases in %.0f ms\n", r.RepauseMS)
	} else {
		fmt.Printf("backlog: the bench stopped counting after %d arrivals; the other %d went on draining until the server stopped (they count as receiver strays)\n", r.Drained, r.Events-r.Drained)
	}
}
