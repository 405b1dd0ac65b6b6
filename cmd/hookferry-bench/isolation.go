package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// The event types of the isolation phase: the hostile tenant's webhooks
// subscribe to one, the victims' to the other, so that no publish reaches the
// wrong side (the same-tenant victim also publishes to itself alone).
const (
	victimType  = "order.created"
	hostileType = "order.updated"
)

// IsolationResult is what the isolation phase measured: the victims' latency
// without and with the hostile tenant's webhooks stuck on a hanging receiver.
type IsolationResult struct {
	VictimRate      float64 `json:"victim_rate"`
	VictimDuration  string  `json:"victim_duration"`
	VictimWait      string  `json:"victim_wait"`
	HostileUsers    int     `json:"hostile_users"`
	HostileWebhooks int     `json:"hostile_webhooks"`
	HostileEvents   int     `json:"hostile_events_per_webhook"`
	// HostileDeliveries is what the hostile publishes queued, by their 202s.
	HostileDeliveries int    `json:"hostile_deliveries"`
	HangingMode       string `json:"hanging_mode"`
	HangingPorts      int    `json:"hanging_ports"`
	// HangingConnections is how many TCP connections the hanging receiver
	// accepted from the hostile publishes to the end of the victims' run.
	HangingConnections int            `json:"hanging_connections"`
	HangingHandshakes  int            `json:"hanging_tls_handshakes"`
	InFlight           []float64      `json:"deliveries_in_flight_end"` // hookferry_deliveries_in_flight of each instance
	Victims            []VictimResult `json:"victims"`
	HostilePublishErrs int            `json:"hostile_publish_errors"`
}

// VictimResult is one victim's two runs.
type VictimResult struct {
	Victim   string    `json:"victim"` // other-tenant or same-tenant-other-user
	Label    string    `json:"-"`      // as printed
	Baseline VictimRun `json:"baseline"`
	Hostile  VictimRun `json:"hostile"`
}

// VictimRun is one victim publishing at a light rate.
type VictimRun struct {
	Published     int `json:"published"`
	Delivered     int `json:"delivered"`
	Missing       int `json:"missing"` // not arrived when the bench stopped waiting
	Duplicates    int `json:"duplicates"`
	PublishErrors int `json:"publish_errors"`
	// LatencyMS is publish sent -> arrival; a missing delivery counts as its
	// wait so far, and the percentiles it reaches, listed in AtLeast, are
	// lower bounds.
	LatencyMS Latency  `json:"latency_ms"`
	AtLeast   []string `json:"latency_at_least,omitempty"`
	PublishMS Latency  `json:"publish_ms"`
}

// victim is one victim principal and its webhook on the fast receiver.
type victim struct {
	name string // as reported
	slug string // in phase names and paths
	api  *api
	hook string
}

func (b *bench) isolation(ctx context.Context) (_ *IsolationResult, err error) {
	o := b.o
	res := &IsolationResult{
		VictimRate: o.VictimRate, VictimDuration: o.VictimDuration.String(), VictimWait: o.VictimWait.String(),
		HostileUsers: o.HostileUsers, HostileWebhooks: o.HostileWebhooks, HostileEvents: o.HostileEvents,
		HangingMode: o.HangingMode, HangingPorts: o.HangingPorts,
	}
	victims := []*victim{
		{name: "other tenant", slug: "other-tenant"},
		{name: "same tenant, other user", slug: "same-tenant-other-user"},
	}
	for _, v := range victims {
		tenant := "victim"
		if v.slug == "same-tenant-other-user" {
			tenant = "hostile"
		}
		token, err := b.servers[0].createToken(ctx, tenant, "victim", "WEBHOOK_MANAGEMENT", "EVENTS_PUBLISH")
		if err != nil {
			return nil, err
		}
		v.api = b.api.as(token, victimType, "victim")
		ids, err := v.api.register(ctx, []string{b.recv.URL + "/victim/" + v.slug})
		if err != nil {
			return nil, err
		}
		v.hook = ids[0]
	}
	defer func() {
		for _, v := range victims {
			err = errors.Join(err, v.api.deleteAll(context.WithoutCancel(ctx), []string{v.hook}))
		}
	}()

	logf("isolation: baseline: %d victims at %g events/s for %s, at once", len(victims), o.VictimRate, o.VictimDuration)
	base := b.runVictims(ctx, victims, "iso-base")

	hang, err := startHanging(b.id, b.epoch, o.HangingMode, o.HangingPorts)
	if err != nil {
		return nil, fmt.Errorf("hanging receiver: %w", err)
	}
	defer hang.close()
	hostile := make([]*api, o.HostileUsers)
	for i := range hostile {
		token, err := b.servers[0].createToken(ctx, "hostile", fmt.Sprintf("hostile-%d", i+1), "WEBHOOK_MANAGEMENT", "EVENTS_PUBLISH")
		if err != nil {
			return nil, err
		}
		hostile[i] = b.api.as(token, hostileType) // to the whole tenant: only the hostile webhooks subscribe
	}
	owned := make([][]string, o.HostileUsers) // webhook ids, by user
	defer func() {
		// Deleting them drops what is queued for them; closing the connections
		// ends the attempts stuck on them.
		for i, ids := range owned {
			err = errors.Join(err, hostile[i].deleteAll(context.WithoutCancel(ctx), ids))
		}
		hang.reset()
		b.waitIdle(ctx, 2*b.timeout+5*time.Second)
	}()
	for i := range o.HostileWebhooks {
		u := i % o.HostileUsers
		ids, err := hostile[u].register(ctx, []string{fmt.Sprintf("%s/hostile/%d", hang.url(i), i)})
		if err != nil {
			return nil, err
		}
		owned[u] = append(owned[u], ids[0])
	}
	since := time.Since(b.epoch)
	pub := hostile[0].publishParallel(ctx, b.epoch, "iso-hostile", o.HostileEvents, 4, 1)
	res.HostileDeliveries, res.HostilePublishErrs = pub.deliveries, pub.errors
	if pub.firstErr != nil {
		logf("isolation: %d hostile publishes failed; the first: %v", pub.errors, pub.firstErr)
	}
	logf("isolation: hostile tenant queued %d deliveries to %d webhooks (%d users) on a hanging receiver (%s, %d port(s))",
		pub.deliveries, o.HostileWebhooks, o.HostileUsers, hang.describe(), o.HangingPorts)
	// Let the attempts reach the hanging receiver before the victims start.
	for deadline := time.Now().Add(b.timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if n, _ := hang.acceptedSince(since); n > 0 {
			break
		}
	}
	time.Sleep(500 * time.Millisecond)

	logf("isolation: the victims again, with the hostile deliveries queued")
	loaded := b.runVictims(ctx, victims, "iso-hostile")
	res.InFlight = b.inFlight(ctx)
	res.HangingConnections, res.HangingHandshakes = hang.acceptedSince(since)
	for i, v := range victims {
		res.Victims = append(res.Victims, VictimResult{Victim: v.slug, Label: v.name, Baseline: base[i], Hostile: loaded[i]})
	}
	return res, nil
}

// runVictims has every victim publish at the victim rate for the victim
// duration, at once, and waits for their deliveries.
func (b *bench) runVictims(ctx context.Context, vs []*victim, stage string) []VictimRun {
	o := b.o
	n := int(o.VictimRate * o.VictimDuration.Seconds())
	cs := make([]*Collector, len(vs))
	for i, v := range vs {
		cs[i] = b.recv.add(stage+"/"+v.slug, n)
	}
	defer b.recv.end(cs...)
	pubs := make([]publishResult, len(vs))
	var wg sync.WaitGroup
	for i, v := range vs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pubs[i] = v.api.publishSteady(ctx, b.epoch, stage+"/"+v.slug, o.VictimRate, o.VictimDuration)
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(o.VictimWait)
	for i, c := range cs {
		if pubs[i].firstErr != nil {
			logf("%s/%s: %d publishes failed; the first: %v", stage, vs[i].slug, pubs[i].errors, pubs[i].firstErr)
		}
		b.recv.setExpected(c, pubs[i].deliveries)
	}
	for _, c := range cs {
		b.recv.wait(ctx, c, time.Until(deadline))
	}
	out := make([]VictimRun, len(vs))
	for i, c := range cs {
		got, queued, dups, lats, _ := b.recv.snapshot(c)
		missing := b.recv.missing(c, pubs[i].sent)
		r := VictimRun{
			Published: pubs[i].published, Delivered: got, Missing: max(queued-got, 0), Duplicates: dups,
			PublishErrors: pubs[i].errors, PublishMS: latencyOf(pubs[i].rtts),
		}
		r.LatencyMS, r.AtLeast = latencyBounded(lats, missing)
		if r.Missing > 0 {
			logf("%s/%s: %d of %d deliveries had not arrived %s after the last publish", stage, vs[i].slug, r.Missing, queued, o.VictimWait)
		}
		out[i] = r
	}
	return out
}

func printIsolation(r *IsolationResult) {
	fmt.Printf("isolation: victims at %g events/s for %s each, at once; the hostile tenant's %d webhooks (%d user(s)) on a hanging receiver (%s; %d port(s)), %d events each: %d deliveries queued\n",
		r.VictimRate, r.VictimDuration, r.HostileWebhooks, r.HostileUsers, r.HangingMode, r.HangingPorts, r.HostileEvents, r.HostileDeliveries)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "victim\tpublished\tmissing\tp50 ms\twith hostile\tp99 ms\twith hostile\tmax ms\twith hostile\t")
	for _, v := range r.Victims {
		b, h := v.Baseline, v.Hostile
		fmt.Fprintf(tw, "%s\t%d/%d\t%d/%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", v.Label, b.Published, h.Published, b.Missing, h.Missing,
			bound(b.LatencyMS.P50, b.AtLeast, "p50"), bound(h.LatencyMS.P50, h.AtLeast, "p50"),
			bound(b.LatencyMS.P99, b.AtLeast, "p99"), bound(h.LatencyMS.P99, h.AtLeast, "p99"),
			bound(b.LatencyMS.Max, b.AtLeast, "max"), bound(h.LatencyMS.Max, h.AtLeast, "max"))
	}
	_ = tw.Flush()
	inFlight := make([]string, len(r.InFlight))
	for i, v := range r.InFlight {
		inFlight[i] = fmt.Sprintf("%s=%g", instanceName(i), v)
	}
	fmt.Printf("isolation: published and missing are without/with the hostile tenant; ≥: a lower bound (deliveries missing %s after the last publish count as their wait so far)\n", r.VictimWait)
	fmt.Printf("isolation: the hanging receiver accepted %d TCP connections (%d TLS handshakes) from the hostile publishes to the end; hookferry_deliveries_in_flight at the end: %s\n",
		r.HangingConnections, r.HangingHandshakes, strings.Join(inFlight, " "))
}

// bound prints a latency figure, marked ≥ when it is a lower bound.
func bound(v float64, atLeast []string, name string) string {
	if slices.Contains(atLeast, name) {
		return fmt.Sprintf("≥%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}
