package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hookferry/hookferry/delivery"
	"github.com/hookferry/hookferry/metrics"
	"github.com/hookferry/hookferry/server"
	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/webhook"
)

// Main is a running hookferry service: tests start it on :0 with a temporary
// database, the binary from serve.
type Main struct {
	Config Config
	Log    *slog.Logger

	store    *store.Store
	http     *http.Server
	listener net.Listener
	debug    *http.Server // the profiler's, when DebugAddr is set
	done     chan error
	sender   *delivery.Sender
	stop     context.CancelFunc // stops the delivery workers and the listener
	workers  sync.WaitGroup
	// cancelRequests ends the contexts of the requests in flight.
	cancelRequests context.CancelFunc
	// connState, when set, observes the connections (tests).
	connState func(net.Conn, http.ConnState)
}

// Open opens the database, builds the API and starts listening; Addr is then
// the address it listens on.
func (m *Main) Open(ctx context.Context) (err error) {
	if m.Log == nil {
		m.Log = slog.New(slog.DiscardHandler)
	}
	loc, err := parseLocation(m.Config.DatabaseURL)
	if err != nil {
		return err
	}
	catalog, err := webhook.LoadCatalog(m.Config.EventTypes)
	if err != nil {
		return usageError{err}
	}
	keys, err := resolveKeys(loc, m.Config.EncryptionKeys, m.Config.EncryptionKeysFile)
	if err != nil {
		return err
	}
	if keys.Created {
		msg := "created the encryption key file for the webhooks' signing secrets; back it up with the database: without it they cannot be read"
		if keys.ExistingDatabase {
			msg = "created a new encryption key file beside an existing database; if the database holds secrets sealed with another key, restore that key's file instead"
		}
		m.Log.Warn(msg, "file", keys.File)
	}
	m.store, err = store.Open(ctx, m.Config.DatabaseURL, store.Options{Logger: m.Log, Keys: keys.Keys, Migrate: m.Config.Migrate})
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if m.stop != nil {
				m.stop()
				m.workers.Wait()
			}
			_ = m.store.Close()
		}
	}()
	hasTokens, err := m.store.HasTokens(ctx)
	if err != nil {
		return err
	}
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mets := metrics.New(registry, m.store.QueueDepth)
	srv, err := server.New(m.store, server.Config{
		MaxWebhooksPerUser:   m.Config.MaxWebhooksPerUser,
		UnpauseCooldown:      m.Config.UnpauseCooldown,
		AllowPrivateTargets:  m.Config.AllowPrivateTargets,
		RateLimit:            m.Config.RateLimit,
		MaxBatchBytes:        m.Config.MaxBatchBytes,
		PublicURL:            m.Config.PublicURL,
		PortalFrameAncestors: m.Config.PortalFrameAncestors,
		Catalog:              catalog,
		Logger:               m.Log,
		Metrics:              mets,
		MetricsHandler:       promhttp.HandlerFor(registry, promhttp.HandlerOpts{}),
	})
	if err != nil {
		return err
	}
	if err := m.startDelivery(mets); err != nil {
		return err
	}
	m.startPruning(mets)
	if m.listener, err = net.Listen("tcp", m.Config.Addr); err != nil {
		return err
	}
	requests, cancelRequests := context.WithCancel(context.Background())
	m.cancelRequests = cancelRequests
	m.http = &http.Server{
		Handler:           srv.Handler(),
		BaseContext:       func(net.Listener) context.Context { return requests },
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(m.Log.Handler(), slog.LevelWarn),
		ConnState:         m.connState,
	}
	m.done = make(chan error, 1)
	go func() { m.done <- m.http.Serve(m.listener) }()
	if err := m.serveDebug(); err != nil {
		return err
	}
	applied := m.store.Applied()
	if applied == nil {
		applied = []int64{}
	}
	m.Log.Info("hookferry listening", "addr", m.Addr(), "database", loc.String(), "delivery", m.Config.Delivery,
		"allow_private_targets", m.Config.AllowPrivateTargets, "version", version(), "migrations_applied", applied)
	if !hasTokens {
		// Nothing in /v1 answers without one: tell a newcomer how to start.
		m.Log.Info("no API token exists yet; create the first with: hookferry token create --tenant T --user U --permission WEBHOOK_MANAGEMENT")
	}
	return nil
}

// serveDebug serves Go's profiler on DebugAddr, if set.
func (m *Main) serveDebug() error {
	if m.Config.DebugAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", m.Config.DebugAddr)
	if err != nil {
		return fmt.Errorf("debug-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	m.debug = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = m.debug.Serve(ln) }()
	m.Log.Info("profiler listening", "addr", ln.Addr().String())
	return nil
}

// startDelivery runs the delivery workers and, on PostgreSQL, the listener
// that wakes them when another instance queues work.
func (m *Main) startDelivery(mets *metrics.Metrics) error {
	ctx, stop := context.WithCancel(context.Background())
	m.stop = stop
	m.workers.Add(1)
	go func() {
		defer m.workers.Done()
		_ = m.store.Listen(ctx)
	}()
	if !m.Config.Delivery {
		return nil
	}
	var roots *x509.CertPool
	if m.Config.DeliveryCAFile != "" {
		var err error
		if roots, err = delivery.LoadCAFile(m.Config.DeliveryCAFile); err != nil {
			return err
		}
	}
	sender, err := delivery.NewSender(delivery.SenderConfig{
		Timeout:      m.Config.DeliveryTimeout,
		AllowPrivate: m.Config.AllowPrivateTargets,
		RootCAs:      roots,
		UserAgent:    "hookferry/" + version(),
	})
	if err != nil {
		return err
	}
	m.sender = sender
	d := delivery.New(m.store, sender, delivery.Config{
		Workers:         m.Config.DeliveryWorkers,
		PerWebhook:      m.Config.DeliveryPerWebhook,
		PerTenant:       m.Config.DeliveryPerTenant,
		PerUser:         m.Config.DeliveryPerUser,
		HeldBackWorkers: m.Config.DeliveryHeldBack,
		SlowAfter:       m.Config.DeliverySlowAfter,
		Lease:           m.Config.DeliveryLease,
		RetrySchedule:   m.Config.RetrySchedule,
		AutoPauseAfter:  m.Config.AutoPauseAfter,
		ShutdownGrace:   m.Config.ShutdownTimeout,
		Logger:          m.Log,
		Metrics:         mets,
	})
	m.workers.Add(1)
	go func() {
		defer m.workers.Done()
		_ = d.Run(ctx)
	}()
	return nil
}

// startPruning runs retention every PruneInterval (after a first round at
// start), unless Retention is 0; on PostgreSQL one instance prunes at a time.
func (m *Main) startPruning(mets *metrics.Metrics) {
	if m.Config.Retention <= 0 {
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	prev := m.stop
	m.stop = func() { stop(); prev() }
	m.workers.Add(1)
	go func() {
		defer m.workers.Done()
		t := time.NewTicker(m.Config.PruneInterval)
		defer t.Stop()
		for {
			c, err := m.store.Prune(ctx, m.Config.Retention)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				m.Log.Warn("prune failed; retrying at the next interval", "error", err, "interval", m.Config.PruneInterval)
			case c.Deliveries+c.Attempts+c.Events+c.Tokens > 0:
				m.Log.Info("pruned", "deliveries", c.Deliveries, "attempts", c.Attempts, "events", c.Events, "expired_tokens", c.Tokens, "retention", m.Config.Retention)
			}
			mets.Pruned("deliveries", c.Deliveries)
			mets.Pruned("attempts", c.Attempts)
			mets.Pruned("events", c.Events)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Addr is the address the service listens on.
func (m *Main) Addr() string { return m.listener.Addr().String() }

// Wait serves until ctx ends or the listener fails.
func (m *Main) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-m.done:
		return err
	}
}

// Close stops accepting and stops the delivery workers at once; in-flight
// requests and attempts may finish for the shutdown timeout, then what is
// left is cancelled (requests' contexts end, attempts are given back) and the
// outcomes are recorded for at most 3 seconds more before the database
// closes. So Close returns within the timeout plus about 5 seconds, even when
// the database does not answer: what could not be recorded is left to lease
// expiry (at least once).
func (m *Main) Close() error {
	timeout := m.Config.ShutdownTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	var (
		mu   sync.Mutex
		errs []error
		api  sync.WaitGroup
	)
	if m.http != nil {
		api.Add(1)
		go func() {
			defer api.Done()
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			if err := m.http.Shutdown(ctx); err != nil {
				m.cancelRequests() // handlers waiting on the database give up
				_ = m.http.Close()
				mu.Lock()
				errs = append(errs, fmt.Errorf("shutdown: %w", err))
				mu.Unlock()
			}
		}()
	}
	if m.debug != nil {
		_ = m.debug.Close()
	}
	if m.stop != nil {
		m.stop()
		m.workers.Wait()
	}
	api.Wait()
	if m.cancelRequests != nil {
		m.cancelRequests()
	}
	if m.sender != nil {
		m.sender.Close()
	}
	if m.store != nil {
		errs = append(errs, m.store.Close())
	}
	return errors.Join(errs...)
}

// serveCmd is `hookferry serve`.
type serveCmd struct {
	Config `embed:""`
}

func (c *serveCmd) Run(ctx context.Context, out console, db *storeFlags) error {
	m := Main{Config: c.Config}
	m.Config.DatabaseURL = db.DatabaseURL
	m.Config.EncryptionKeys = encryptionKeys()
	m.Config.EncryptionKeysFile = db.EncryptionKeysFile
	m.Config.Migrate = db.migrateMode()
	var err error
	if m.Log, err = newLogger(out.stderr, m.Config.LogFormat, m.Config.LogLevel); err != nil {
		return err
	}
	if err := m.Open(ctx); err != nil {
		return err
	}
	waitErr := m.Wait(ctx)
	m.Log.Info("hookferry stopping")
	closeErr := m.Close()
	if err := errors.Join(waitErr, closeErr); err != nil {
		return err
	}
	m.Log.Info("hookferry stopped")
	return nil
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, usagef("log-level %q: %v", level, err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}
