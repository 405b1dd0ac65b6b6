// Command hookferry-bench measures a hookferry binary end to end: it starts
// the server as a child process on a fresh database (a SQLite file, or a
// PostgreSQL database created for the run and dropped after it), a local
// HTTPS receiver in-process, registers webhooks on the receiver, publishes
// events through the generated client and times every delivery from its
// publish to its arrival. Everything runs on 127.0.0.1.
//
// Run it with `make bench` (SQLite, then PostgreSQL), or by hand:
//
//	go build -o bin/hookferry ./cmd/hookferry
//	go build -o bin/hookferry-bench ./cmd/hookferry-bench
//	bin/hookferry-bench --hookferry bin/hookferry --db sqlite
//	bin/hookferry-bench --hookferry bin/hookferry --db postgres --postgres-url postgres://postgres@127.0.0.1:5432/?sslmode=disable
//
// Two phases run by default: throughput (--events N to --webhooks M from
// --publishers P in parallel, each waiting for its 202; --batch B sends them B
// per POST /v1/events/batch) and light load (one
// publisher at --rate events/s for --duration). --phases drain adds a third:
// N events queued to paused webhooks, then unpaused, which times the delivery
// engine alone (delivered/s from the unpause).
//
// Two phases measure what a large database costs, each set up in bulk SQL
// by the bench's own connection to the server's database (set-based inserts,
// 100,000 rows a transaction; then, on PostgreSQL, VACUUM (ANALYZE) as
// autovacuum would, unless --analyze=false; a checkpoint on both):
//
//   - history: --history (1,000,000) events of another tenant's
//     --history-webhooks webhooks, each with a DELIVERED delivery (at its
//     first attempt) from half an hour ago (inside the default retention), then
//     the throughput phase's measurement again, as its own row; with
//     throughput in the same run it prints history/throughput delivered/s
//     (the target: within 10%).
//   - backlog: --backlog (1,000,000) events held for one paused webhook, as
//     a paused webhook's publishes are held (PENDING, no due time). It reads
//     the webhook through the API (GET /v1/webhooks/{id} latency, and
//     buffered_events must be the backlog), samples the server's VmRSS
//     every 100 ms, unpauses it and counts the first --backlog-drain
//     arrivals (at most --backlog-time): delivered/s overall and per 10 s
//     window, the slowest window being the sustained rate. The rest drains
//     on until the server stops (or is paused again when isolation or pause
//     follow). Targets: RSS < 150 MB, GET < 50 ms, sustained ≥ 4,000/s.
//
// After throughput and history it prints the database's growth per
// delivered delivery, rows and indexes of events, deliveries and attempts
// (PostgreSQL pg_table_size and pg_indexes_size, dead row versions included;
// SQLite dbstat; the WAL in neither), and for each measured phase the CPU per
// delivered delivery of the server, of the database (PostgreSQL: its
// processes serving the bench's database, and the shared ones), and of the
// bench's load and receiver (a CPU profile of the bench, by goroutine label).
// For example:
//
//	bin/hookferry-bench --hookferry bin/hookferry --db postgres --phases throughput,history,backlog
//
// Two more phases test what one webhook's trouble does to the rest (`make
// bench-isolation` runs both on both databases; BENCH_PG_FLAGS=--instances 2
// adds a second instance on PostgreSQL):
//
//   - isolation: two victims, another tenant and another user of the hostile
//     tenant, each with one webhook on the fast receiver, publish
//     --victim-rate events/s for --victim-duration, at once; then the hostile
//     tenant points --hostile-webhooks webhooks (over --hostile-users users)
//     at a receiver that never answers (--hanging-mode accept: TCP accepted,
//     never read; handshake: TLS completed, request never read) and queues
//     --hostile-events events to each, and the victims publish again. It
//     prints their publish->arrival p50/p99/max without and with the hostile
//     tenant; a delivery still missing --victim-wait after the last publish
//     counts as its wait so far and makes the percentiles it reaches lower
//     bounds (≥).
//   - pause: --pause-webhooks webhooks on a receiver that holds every request
//     --slow-hold then answers 200, --pause-events events each; then half are
//     paused and half deleted through the API (instance A). It counts, per
//     webhook, the requests whose handler started after the bench received
//     the 200 (a request already sent before may arrive just after; their
//     latest lag is printed), and checks that a paused webhook's deliveries
//     stay PENDING with buffered_events intact. Then the same on a hanging
//     receiver (one port per webhook), counting TCP connections accepted after
//     the 200. A failed check makes the bench exit 1.
//
// These two set the server's attempt timeout to 5s unless
// HOOKFERRY_DELIVERY_TIMEOUT is set; the report says which was used.
// --instances 2 (PostgreSQL only) runs two servers on one database: the
// bench publishes, pauses and deletes through the first, both deliver.
//
// It prints a table per phase and one JSON line. HOOKFERRY_ variables other
// than those it sets itself (database, private targets, log level, CA file)
// pass through to the server, e.g. HOOKFERRY_DELIVERY_WORKERS=128. --perf
// FILE records the server's stacks with `perf record` during the throughput
// phase (read with `perf report -i FILE`).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// Options are the bench's flags.
type Options struct {
	Hookferry   string
	DB          string
	PostgresURL string
	Instances   int
	Events      int
	Webhooks    int
	Publishers  int
	Batch       int
	Rate        float64
	Duration    time.Duration
	Phases      string
	Wait        time.Duration
	Perf        string

	VictimRate      float64
	VictimDuration  time.Duration
	VictimWait      time.Duration
	HostileWebhooks int
	HostileUsers    int
	HostileEvents   int
	HangingMode     string
	HangingPorts    int

	PauseWebhooks  int
	PauseEvents    int
	SlowHold       time.Duration
	PauseReceivers string

	History         int
	HistoryWebhooks int
	Backlog         int
	BacklogDrain    int
	BacklogTime     time.Duration
	Analyze         bool
}

// Report is the machine-readable outcome, printed as one JSON line.
type Report struct {
	DB             string           `json:"db"`
	Instances      int              `json:"instances"`
	Events         int              `json:"n"`
	Webhooks       int              `json:"m"`
	Publishers     int              `json:"p"`
	Batch          int              `json:"batch"`
	Throughput     *PhaseResult     `json:"throughput,omitempty"`
	Light          *PhaseResult     `json:"light,omitempty"`
	Drain          *PhaseResult     `json:"drain,omitempty"`
	HistorySetup   *HistorySetup    `json:"history_setup,omitempty"`
	History        *PhaseResult     `json:"history,omitempty"`
	HistoryRatio   float64          `json:"history_ratio,omitempty"` // history's delivered/s over throughput's, when both ran
	Backlog        *BacklogResult   `json:"backlog,omitempty"`
	Isolation      *IsolationResult `json:"isolation,omitempty"`
	Pause          *PauseResult     `json:"pause,omitempty"`
	PeakRSSMiB     float64          `json:"server_peak_rss_mib"` // the largest of the instances'
	BusyBeforePct  float64          `json:"busy_before_pct"`     // the machine's CPUs in the second before the first phase
	AttemptTimeout string           `json:"attempt_timeout"`     // the server's, and who chose it
	Protocols      string           `json:"receiver_protocols"`
	Strays         int              `json:"receiver_strays"`
	ServerEnv      []string         `json:"server_env,omitempty"`
	Machine        Machine          `json:"machine"`
}

// Machine is where the figures were taken.
type Machine struct {
	NProc      int    `json:"nproc"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Go         string `json:"go"`
}

// PhaseResult is what one phase measured.
type PhaseResult struct {
	Published     int     `json:"published"`
	Publishers    int     `json:"publishers"`
	TargetRate    float64 `json:"target_rate,omitempty"`
	PublishPerS   float64 `json:"publish_per_s"`
	Deliveries    int     `json:"deliveries"` // queued, by the 202s
	Delivered     int     `json:"delivered"`
	Missing       int     `json:"missing"`
	DeliveredPerS float64 `json:"delivered_per_s"`
	LatencyMS     Latency `json:"latency_ms"` // publish sent -> delivery arrived
	PublishMS     Latency `json:"publish_ms"` // publish sent -> 202 received
	Duplicates    int     `json:"duplicates"`
	PublishErrors int     `json:"publish_errors"`
	CPU           CPU     `json:"cpu"`
	// DBBytes is the database's growth per delivered delivery (throughput
	// and history).
	DBBytes *BytesPerEvent `json:"db_bytes,omitempty"`
}

// serverDefaultTimeout is `hookferry serve`'s --delivery-timeout default
// (cmd/hookferry/config.go).
const serverDefaultTimeout = 15 * time.Second

// benchTimeout is the attempt timeout the isolation and pause phases give the
// server unless HOOKFERRY_DELIVERY_TIMEOUT is set: short enough that attempts
// stuck on a hanging receiver end within the phase, long enough for the slow
// receiver's hold.
const benchTimeout = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var o Options
	fs := flag.NewFlagSet("hookferry-bench", flag.ExitOnError)
	fs.StringVar(&o.Hookferry, "hookferry", "bin/hookferry", "path to the hookferry binary under test")
	fs.StringVar(&o.DB, "db", "sqlite", "database: sqlite or postgres")
	fs.StringVar(&o.PostgresURL, "postgres-url", "postgres://postgres@127.0.0.1:5432/?sslmode=disable", "PostgreSQL server on which a database hfbench_<random> is created and dropped")
	fs.IntVar(&o.Instances, "instances", 1, "server processes on the one database (more than 1: PostgreSQL only); the bench talks to the first, all deliver")
	fs.IntVar(&o.Events, "events", 20000, "throughput and drain phases: events to publish (N)")
	fs.IntVar(&o.Webhooks, "webhooks", 1, "webhooks subscribed to every event (M)")
	fs.IntVar(&o.Publishers, "publishers", 16, "throughput and drain phases: parallel publishers (P)")
	fs.IntVar(&o.Batch, "batch", 1, "throughput and drain phases: events per publish request; above 1 they go to POST /v1/events/batch (at most 500)")
	fs.Float64Var(&o.Rate, "rate", 100, "light phase: events per second from one publisher")
	fs.DurationVar(&o.Duration, "duration", 5*time.Second, "light phase: how long to publish")
	fs.StringVar(&o.Phases, "phases", "throughput,light", "phases to run, in this order: throughput, light, drain (deliver a backlog of N queued while paused), history (throughput over --history delivered rows), backlog (--backlog events held for a paused webhook), isolation, pause")
	fs.DurationVar(&o.Wait, "wait", 2*time.Minute, "how long to wait for the deliveries after the last publish")
	fs.StringVar(&o.Perf, "perf", "", "record the server's stacks into `FILE` with perf record -g during the throughput phase")
	fs.Float64Var(&o.VictimRate, "victim-rate", 20, "isolation phase: events per second each victim publishes")
	fs.DurationVar(&o.VictimDuration, "victim-duration", 10*time.Second, "isolation phase: how long each victim publishes, without and with the hostile tenant")
	fs.DurationVar(&o.VictimWait, "victim-wait", 45*time.Second, "isolation phase: how long to wait for the victims' deliveries after their last publish")
	fs.IntVar(&o.HostileWebhooks, "hostile-webhooks", 25, "isolation phase: the hostile tenant's webhooks on the hanging receiver")
	fs.IntVar(&o.HostileUsers, "hostile-users", 1, "isolation phase: users of the hostile tenant the webhooks are spread over")
	fs.IntVar(&o.HostileEvents, "hostile-events", 50, "isolation phase: events queued to each hostile webhook")
	fs.StringVar(&o.HangingMode, "hanging-mode", hangAccept, "hanging receiver: accept (TCP accepted, never read or written) or handshake (TLS completed, request never read)")
	fs.IntVar(&o.HangingPorts, "hanging-ports", 1, "isolation phase: ports the hostile webhooks are spread over (1: one host, distinct paths)")
	fs.IntVar(&o.PauseWebhooks, "pause-webhooks", 25, "pause phase: webhooks, half paused and half deleted")
	fs.IntVar(&o.PauseEvents, "pause-events", 50, "pause phase: events queued to each webhook")
	fs.DurationVar(&o.SlowHold, "slow-hold", 2*time.Second, "pause phase: how long the slow receiver holds each request before its 200")
	fs.StringVar(&o.PauseReceivers, "pause-receivers", "slow,hanging", "pause phase: the receivers to run it on, in this order: slow, hanging")
	fs.IntVar(&o.History, "history", 1_000_000, "history phase: delivered deliveries of another tenant's webhooks inserted in bulk SQL before it measures")
	fs.IntVar(&o.HistoryWebhooks, "history-webhooks", 10, "history phase: the other tenant's webhooks the history is spread over")
	fs.IntVar(&o.Backlog, "backlog", 1_000_000, "backlog phase: events held for a paused webhook, inserted in bulk SQL")
	fs.IntVar(&o.BacklogDrain, "backlog-drain", 200_000, "backlog phase: arrivals to count after the unpause (0: all of --backlog)")
	fs.DurationVar(&o.BacklogTime, "backlog-time", 2*time.Minute, "backlog phase: stop counting the drain after this long, even short of --backlog-drain")
	fs.BoolVar(&o.Analyze, "analyze", true, "history and backlog phases: after the bulk inserts, ANALYZE (SQLite) or VACUUM (ANALYZE) (PostgreSQL)")
	_ = fs.Parse(os.Args[1:])
	// Everything the main goroutine starts is the load unless labelled
	// otherwise (the receivers are): the bench's CPU profile tells them apart.
	pprof.SetGoroutineLabels(pprof.WithLabels(ctx, pprof.Labels(componentLabel, "load")))
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "hookferry-bench:", err)
		os.Exit(1)
	}
}

// bench is what the phases share.
type bench struct {
	o       Options
	epoch   time.Time
	id      *identity
	recv    *Receiver
	servers []*Server // the first is the one the bench talks to
	api     *api      // the default principal's (tenant bench, user bench)
	dbc     *benchDB  // the bench's own connection to the database
	timeout time.Duration
}

func (b *bench) pids() []int {
	pids := make([]int, len(b.servers))
	for i, s := range b.servers {
		pids[i] = s.pid()
	}
	return pids
}

func run(ctx context.Context, o Options) (err error) {
	phases := map[string]bool{}
	for _, p := range strings.Split(o.Phases, ",") {
		switch p = strings.TrimSpace(p); p {
		case "throughput", "light", "drain", "history", "backlog", "isolation", "pause":
			phases[p] = true
		default:
			return fmt.Errorf("--phases: unknown phase %q (throughput, light, drain, history, backlog, isolation, pause)", p)
		}
	}
	receivers, err := pauseReceivers(o.PauseReceivers)
	if err != nil {
		return err
	}
	switch {
	case o.Events < 1 || o.Webhooks < 1 || o.Publishers < 1:
		return errors.New("--events, --webhooks and --publishers must be at least 1")
	case o.Batch < 1 || o.Batch > 500:
		return errors.New("--batch must be 1 to 500")
	case phases["light"] && (o.Rate <= 0 || o.Duration <= 0 || int(o.Rate*o.Duration.Seconds()) < 1):
		return errors.New("--rate and --duration must make at least one event")
	case o.Instances < 1 || (o.Instances > 1 && o.DB != "postgres"):
		return errors.New("--instances must be at least 1, and above 1 only with --db postgres (SQLite has one owning process)")
	case phases["isolation"] && (o.VictimRate <= 0 || o.VictimDuration <= 0 || int(o.VictimRate*o.VictimDuration.Seconds()) < 1):
		return errors.New("--victim-rate and --victim-duration must make at least one event")
	case phases["isolation"] && (o.HostileWebhooks < 1 || o.HostileEvents < 1 || o.HostileUsers < 1 || o.HostileUsers > o.HostileWebhooks || o.HangingPorts < 1):
		return errors.New("--hostile-webhooks, --hostile-events, --hostile-users and --hanging-ports must be at least 1, and --hostile-users at most --hostile-webhooks")
	case (phases["isolation"] || phases["pause"]) && o.HangingMode != hangAccept && o.HangingMode != hangHandshake:
		return fmt.Errorf("--hanging-mode must be %s or %s", hangAccept, hangHandshake)
	case phases["pause"] && (o.PauseWebhooks < 2 || o.PauseEvents < 1 || o.SlowHold <= 0):
		return errors.New("--pause-webhooks must be at least 2, --pause-events at least 1 and --slow-hold positive")
	case phases["history"] && (o.History < 1 || o.HistoryWebhooks < 1):
		return errors.New("--history and --history-webhooks must be at least 1")
	case phases["backlog"] && (o.Backlog < 1 || o.BacklogDrain < 0 || o.BacklogTime <= 0):
		return errors.New("--backlog must be at least 1, --backlog-drain not negative and --backlog-time positive")
	}
	if _, err := os.Stat(o.Hookferry); err != nil {
		return fmt.Errorf("--hookferry: %w (build it: go build -o bin/hookferry ./cmd/hookferry)", err)
	}

	dir, err := os.MkdirTemp("", "hookferry-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b := &bench{o: o, epoch: time.Now()}

	if b.id, err = newIdentity(dir); err != nil {
		return fmt.Errorf("receiver certificate: %w", err)
	}
	recv, err := startReceiver(b.id, b.epoch)
	if err != nil {
		return fmt.Errorf("receiver: %w", err)
	}
	defer recv.close()
	b.recv = recv

	db, err := openDatabase(ctx, o.DB, dir, o.PostgresURL)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.close()) }()

	defaults := map[string]string{}
	if phases["isolation"] || phases["pause"] {
		defaults["HOOKFERRY_DELIVERY_TIMEOUT"] = benchTimeout.String()
	}
	perUser := max(o.Webhooks, (o.HostileWebhooks+o.HostileUsers-1)/o.HostileUsers, o.PauseWebhooks, o.HistoryWebhooks)
	env, passed := serverEnv(db.URL, recv.CAFile, perUser, defaults)
	var timeoutBy string
	if b.timeout, timeoutBy, err = attemptTimeout(env, defaults); err != nil {
		return err
	}
	if phases["pause"] && slices.Contains(receivers, "slow") && o.SlowHold+time.Second > b.timeout {
		return fmt.Errorf("--slow-hold %s must be at least 1s under the server's attempt timeout %s (%s)", o.SlowHold, b.timeout, timeoutBy)
	}
	defer func() {
		for _, s := range b.servers {
			if s != nil {
				_ = s.stop(40 * time.Second)
			}
		}
	}()
	for i := range o.Instances {
		s, err := startServer(ctx, o.Hookferry, env)
		if err != nil {
			return err
		}
		b.servers = append(b.servers, s)
		logf("hookferry serve %s pid %d on %s, %s database, receiver %s", instanceName(i), s.pid(), s.Addr, o.DB, recv.URL)
	}
	srv := b.servers[0]
	logf("attempt timeout %s (%s)", b.timeout, timeoutBy)
	if b.dbc, err = openBenchDB(ctx, o.DB, db); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.dbc.close()) }()

	manage, err := srv.createToken(ctx, "bench", "bench", "WEBHOOK_MANAGEMENT")
	if err != nil {
		return err
	}
	publish, err := srv.createToken(ctx, "bench", "bench", "EVENTS_PUBLISH")
	if err != nil {
		return err
	}
	a, err := newAPI(srv.Addr, o.Publishers, manage, publish)
	if err != nil {
		return err
	}
	b.api = a
	var hooks []string
	if phases["throughput"] || phases["light"] || phases["drain"] || phases["history"] {
		if hooks, err = a.registerWebhooks(ctx, recv.URL, o.Webhooks); err != nil {
			return err
		}
	}

	rep := Report{
		DB: o.DB, Instances: o.Instances, Events: o.Events, Webhooks: o.Webhooks, Publishers: o.Publishers, Batch: o.Batch, ServerEnv: passed,
		AttemptTimeout: fmt.Sprintf("%s (%s)", b.timeout, timeoutBy),
		Machine:        Machine{NProc: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), Go: runtime.Version()},
	}
	if rep.BusyBeforePct = busyPct(time.Second); rep.BusyBeforePct > 10 {
		logf("the machine was %.0f%% busy before the load started: other processes will skew the figures", rep.BusyBeforePct)
	}
	epoch, scope := b.epoch, b.cpuScope()
	if phases["throughput"] {
		rep.Throughput = b.throughputLike(ctx, "throughput", o.Perf)
	}
	if phases["light"] && ctx.Err() == nil {
		time.Sleep(time.Second) // let the server finish recording the previous phase
		n := int(o.Rate * o.Duration.Seconds())
		logf("light: %d events at %g/s from 1 publisher", n, o.Rate)
		rep.Light = measure(ctx, recv, scope, epoch, "light", n*o.Webhooks, o.Wait, func() publishResult {
			return a.publishSteady(ctx, epoch, "light", o.Rate, o.Duration)
		})
		rep.Light.Publishers, rep.Light.TargetRate = 1, o.Rate
	}

	if phases["drain"] && ctx.Err() == nil {
		time.Sleep(time.Second)
		logf("drain: %d events published to paused webhooks from %d publishers, then unpaused", o.Events, o.Publishers)
		rep.Drain = measure(ctx, recv, scope, epoch, "drain", o.Events*o.Webhooks, o.Wait, func() publishResult {
			if err := a.setPaused(ctx, hooks, true); err != nil {
				return publishResult{errors: 1, firstErr: err}
			}
			res := a.publishParallel(ctx, epoch, "drain", o.Events, o.Publishers, o.Batch)
			res.releasedAt = time.Since(epoch)
			if err := a.setPaused(ctx, hooks, false); err != nil {
				res.errors++
				res.firstErr = err
			}
			logf("drain: %d published; webhooks unpaused", res.published)
			return res
		})
		rep.Drain.Publishers = o.Publishers
	}

	var phaseErrs []error
	if phases["history"] && ctx.Err() == nil {
		b.waitIdle(ctx, 2*b.timeout+5*time.Second)
		if rep.HistorySetup, err = b.historySetup(ctx); err != nil {
			phaseErrs = append(phaseErrs, fmt.Errorf("history: %w", err))
		} else {
			time.Sleep(time.Second)
			rep.History = b.throughputLike(ctx, "history", "")
			if rep.Throughput != nil && rep.Throughput.DeliveredPerS > 0 {
				rep.HistoryRatio = round2(rep.History.DeliveredPerS / rep.Throughput.DeliveredPerS)
			}
		}
	}
	if phases["backlog"] && ctx.Err() == nil {
		b.waitIdle(ctx, 2*b.timeout+5*time.Second)
		if rep.Backlog, err = b.backlog(ctx, phases["isolation"] || phases["pause"]); err != nil {
			phaseErrs = append(phaseErrs, fmt.Errorf("backlog: %w", err))
		}
	}
	if phases["isolation"] && ctx.Err() == nil {
		b.waitIdle(ctx, 2*b.timeout+5*time.Second)
		if rep.Isolation, err = b.isolation(ctx); err != nil {
			phaseErrs = append(phaseErrs, fmt.Errorf("isolation: %w", err))
		}
	}
	if phases["pause"] && ctx.Err() == nil {
		b.waitIdle(ctx, 2*b.timeout+5*time.Second)
		if rep.Pause, err = b.pause(ctx, receivers); err != nil {
			phaseErrs = append(phaseErrs, fmt.Errorf("pause: %w", err))
		}
	}

	for _, pid := range scope.pids {
		if kib, err := peakRSSKiB(pid); err == nil {
			rep.PeakRSSMiB = max(rep.PeakRSSMiB, round2(float64(kib)/1024))
		} else {
			logf("peak RSS: %v", err)
		}
	}
	servers := b.servers
	b.servers = nil
	for i, s := range servers {
		if err := s.stop(40 * time.Second); err != nil {
			logf("stopping the server %s: %v", instanceName(i), err)
		}
	}
	rep.Protocols, rep.Strays = recv.protocols(), recv.strayCount()

	printReport(rep)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	for _, p := range []*PhaseResult{rep.Throughput, rep.Light, rep.Drain, rep.History} {
		if p != nil && (p.Missing > 0 || p.PublishErrors > 0) {
			phaseErrs = append(phaseErrs, fmt.Errorf("incomplete run: %d deliveries missing, %d publishes failed", p.Missing, p.PublishErrors))
		}
	}
	if rep.Pause != nil {
		phaseErrs = append(phaseErrs, rep.Pause.failures()...)
	}
	return errors.Join(phaseErrs...)
}

// attemptTimeout is the server's attempt timeout given its environment, and
// who chose it.
func attemptTimeout(env []string, defaults map[string]string) (time.Duration, string, error) {
	const key = "HOOKFERRY_DELIVERY_TIMEOUT"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				return 0, "", fmt.Errorf("%s=%q: %w", key, v, err)
			}
			if defaults[key] == v {
				return d, "set by the bench; " + key + " overrides", nil
			}
			return d, "from " + key, nil
		}
	}
	return serverDefaultTimeout, "the server's default", nil
}

// instanceName is A, B, … by index.
func instanceName(i int) string { return string(rune('A' + i%26)) }

// inFlight is hookferry_deliveries_in_flight of every instance (-1 where it
// could not be read).
func (b *bench) inFlight(ctx context.Context) []float64 {
	out := make([]float64, len(b.servers))
	for i, s := range b.servers {
		v, err := s.metric(ctx, "hookferry_deliveries_in_flight")
		if err != nil {
			logf("instance %s: %v", instanceName(i), err)
			v = -1
		}
		out[i] = v
	}
	return out
}

// waitIdle waits, for at most limit, until no instance has a delivery in
// flight, so that one phase's attempts do not run into the next.
func (b *bench) waitIdle(ctx context.Context, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for ctx.Err() == nil {
		busy := 0.0
		for _, v := range b.inFlight(ctx) {
			busy += max(v, 0)
		}
		if busy == 0 {
			return
		}
		if time.Now().After(deadline) {
			logf("%.0f deliveries still in flight after %s; going on", busy, limit)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// measure runs one phase's publishing and waits (for at most wait after the
// last publish) for its deliveries.
func measure(ctx context.Context, recv *Receiver, scope cpuScope, epoch time.Time, name string, expected int, wait time.Duration, publish func() publishResult) *PhaseResult {
	c := recv.begin(name, expected)
	cpu := startCPU(scope)
	start := time.Since(epoch)
	pub := publish()
	if pub.firstErr != nil {
		logf("%s: %d publishes failed; the first: %v", name, pub.errors, pub.firstErr)
	}
	recv.setExpected(c, pub.deliveries)
	recv.wait(ctx, c, wait)
	used := cpu.stop()
	got, queued, dups, lats, last := recv.snapshot(c)
	r := &PhaseResult{
		Published: pub.published, Deliveries: queued, Delivered: got, Missing: max(queued-got, 0),
		Duplicates: dups, PublishErrors: pub.errors, LatencyMS: latencyOf(lats), PublishMS: latencyOf(pub.rtts), CPU: used,
	}
	r.CPU.perDelivered(got)
	if pub.duration > 0 {
		r.PublishPerS = round2(float64(pub.published) / pub.duration.Seconds())
	}
	if pub.releasedAt > 0 {
		start = pub.releasedAt
	}
	if span := last - start; got > 0 && span > 0 {
		r.DeliveredPerS = round2(float64(got) / span.Seconds())
	}
	if r.Missing > 0 {
		logf("%s: %d of %d deliveries did not arrive within %s of the last publish", name, r.Missing, queued, wait)
	}
	return r
}

func printReport(r Report) {
	type row struct {
		name string
		r    *PhaseResult
	}
	var rows []row
	for _, x := range []row{{"throughput", r.Throughput}, {"light", r.Light}, {"drain", r.Drain}, {"history", r.History}} {
		if x.r != nil {
			rows = append(rows, x)
		}
	}
	fmt.Printf("hookferry-bench  db=%s  instances=%d  N=%d  M=%d  P=%d  batch=%d  nproc=%d  GOMAXPROCS=%d  %s  attempt timeout %s\n",
		r.DB, r.Instances, r.Events, r.Webhooks, r.Publishers, r.Batch, r.Machine.NProc, r.Machine.GOMAXPROCS, r.Machine.Go, r.AttemptTimeout)
	if len(rows) > 0 {
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "phase\tpublished\tpubl.\tpublish/s\tdelivered\tmissing\tdelivered/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\tdup\tcpu s srv/db/bench/other\tbusy %\t")
		for _, x := range rows {
			p := x.r
			fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%d\t%d\t%.1f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%.1f/%.1f/%.1f/%.1f\t%.0f\t\n",
				x.name, p.Published, p.Publishers, p.PublishPerS, p.Delivered, p.Missing, p.DeliveredPerS,
				p.LatencyMS.P50, p.LatencyMS.P90, p.LatencyMS.P99, p.LatencyMS.Max, p.Duplicates,
				p.CPU.ServerS, p.CPU.DatabaseS, p.CPU.BenchS, p.CPU.OtherS, p.CPU.MachineBusyPct)
		}
		_ = tw.Flush()
		for _, x := range rows {
			l := x.r.PublishMS
			fmt.Printf("%s: publish -> 202 p50 %.2f  p90 %.2f  p99 %.2f  max %.2f ms\n", x.name, l.P50, l.P90, l.P99, l.Max)
		}
		for _, x := range rows {
			if line := x.r.CPU.perDeliveredLine(); line != "" {
				fmt.Printf("%s: %s\n", x.name, line)
			}
			if x.r.DBBytes != nil {
				fmt.Printf("%s: database bytes per delivered delivery: %s\n", x.name, x.r.DBBytes)
			}
		}
	}
	if h := r.HistorySetup; h != nil {
		fmt.Printf("history: set-up of %d events of %d webhooks of another tenant, each DELIVERED %.0f min ago at its first attempt, inserted in bulk SQL in %.1f s; then %s (%.1f s)\n",
			h.Events, h.Webhooks, h.AgeMin, h.InsertS, h.Analyzed, h.AnalyzeS)
		if h.DBBytes != nil {
			fmt.Printf("history: database bytes per bulk delivered event: %s\n", h.DBBytes)
		}
		if r.HistoryRatio > 0 {
			fmt.Printf("history/throughput delivered/s: %.2f (target ≥ %.2f: %s)\n", r.HistoryRatio, 1-historyTolerance, met(r.HistoryRatio >= 1-historyTolerance))
		}
	}
	if r.Backlog != nil {
		printBacklog(r.Backlog)
	}
	if r.Isolation != nil {
		printIsolation(r.Isolation)
	}
	if r.Pause != nil {
		printPause(r.Pause)
	}
	fmt.Printf("server peak RSS (VmHWM, largest instance): %.1f MiB; deliveries over %s; machine %.0f%% busy before the load", r.PeakRSSMiB, r.Protocols, r.BusyBeforePct)
	if len(r.ServerEnv) > 0 {
		fmt.Printf("; server env: %s", strings.Join(r.ServerEnv, " "))
	}
	fmt.Println()
	line, _ := json.Marshal(r)
	fmt.Println(string(line))
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "hookferry-bench: "+format+"\n", args...)
}
