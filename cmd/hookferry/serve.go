package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

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
	done     chan error
	// connState, when set, observes the connections (tests).
	connState func(net.Conn, http.ConnState)
}

// Open opens the database, builds the API and starts listening; Addr is then
// the address it listens on.
func (m *Main) Open(ctx context.Context) (err error) {
	if m.Log == nil {
		m.Log = slog.New(slog.DiscardHandler)
	}
	catalog, err := webhook.LoadCatalog(m.Config.EventTypes)
	if err != nil {
		return err
	}
	m.store, err = store.Open(ctx, m.Config.DatabaseURL, store.Options{Logger: m.Log})
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = m.store.Close()
		}
	}()
	srv, err := server.New(m.store, server.Config{
		MaxWebhooksPerUser:  m.Config.MaxWebhooksPerUser,
		UnpauseCooldown:     m.Config.UnpauseCooldown,
		AllowPrivateTargets: m.Config.AllowPrivateTargets,
		Catalog:             catalog,
		Logger:              m.Log,
	})
	if err != nil {
		return err
	}
	if m.listener, err = net.Listen("tcp", m.Config.Addr); err != nil {
		return err
	}
	m.http = &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(m.Log.Handler(), slog.LevelWarn),
		ConnState:         m.connState,
	}
	m.done = make(chan error, 1)
	go func() { m.done <- m.http.Serve(m.listener) }()
	m.Log.Info("hookferry listening", "addr", m.Addr(), "database", m.store.Dialect(), "version", version())
	return nil
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

// Close stops accepting, lets in-flight requests finish (for at most the
// shutdown timeout) and closes the database.
func (m *Main) Close() error {
	var errs []error
	if m.http != nil {
		timeout := m.Config.ShutdownTimeout
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := m.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shutdown: %w", err))
		}
	}
	if m.store != nil {
		errs = append(errs, m.store.Close())
	}
	return errors.Join(errs...)
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	var m Main
	if _, err := parseServeFlags(args, &m.Config); err != nil {
		return err
	}
	var err error
	if m.Log, err = newLogger(stderr, m.Config.LogFormat, m.Config.LogLevel); err != nil {
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
