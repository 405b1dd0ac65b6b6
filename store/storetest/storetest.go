// Package storetest opens fresh hookferry databases for tests: a SQLite file in
// t.TempDir() and an isolated schema of the test PostgreSQL server.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the database/sql driver "pgx"
)

// DefaultPostgresURL is the test server when HOOKFERRY_TEST_POSTGRES_URL is unset.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Backend is a database engine tests run against.
type Backend struct {
	Name string
	// URL returns the HOOKFERRY_DATABASE_URL of a fresh, empty database that is
	// removed when t ends.
	URL func(t testing.TB) string
}

// Backends returns SQLite and PostgreSQL. When PostgreSQL cannot be reached the
// PostgreSQL runs skip with a loud message, or fail when CI=true.
func Backends() []Backend {
	return []Backend{
		{Name: "sqlite", URL: SQLiteURL},
		{Name: "postgres", URL: PostgresURL},
	}
}

// SQLiteURL returns the URL of a new SQLite file in t.TempDir().
func SQLiteURL(t testing.TB) string {
	t.Helper()
	return "sqlite:" + t.TempDir() + "/hookferry.db"
}

var (
	pgOnce   sync.Once
	pgErr    error
	skipOnce sync.Once
)

// SkipMarker starts the line a package prints when it skips its PostgreSQL
// tests; make test looks for it to say so in its summary.
const SkipMarker = "!!! SKIPPING"

// PostgresURL creates a schema of its own on the test server and returns a URL
// whose connections use it; the schema is dropped when t ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("HOOKFERRY_TEST_POSTGRES_URL")
	if base == "" {
		base = DefaultPostgresURL
	}
	admin, err := sql.Open("pgx", base)
	if err == nil {
		pgOnce.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			pgErr = admin.PingContext(ctx)
		})
		err = pgErr
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL at %s is required under CI=true and unreachable: %v", redacted(base), err)
		}
		msg := fmt.Sprintf("%s PostgreSQL test: %s unreachable (%v); set HOOKFERRY_TEST_POSTGRES_URL !!!", SkipMarker, redacted(base), err)
		reportSkip(msg)
		t.Skip(msg)
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	schema := "hftest_" + hex.EncodeToString(b)
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("HOOKFERRY_TEST_POSTGRES_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// reportSkip says once per package that its PostgreSQL tests are skipped,
// where people look: go test shows t.Skip only under -v, and in package list
// mode (go test ./...) it hides all output of a passing package, stderr too.
// So the line goes to stderr (go test -v, go test in one package's folder),
// to the terminal if there is one (plain go test ./...), and to the file
// HOOKFERRY_TEST_SKIP_LOG names (make test reads it for its summary).
func reportSkip(msg string) {
	skipOnce.Do(func() {
		line := msg + " (every PostgreSQL test of this package is skipped)\n"
		fmt.Fprint(os.Stderr, line)
		if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
			_, _ = tty.WriteString(line)
			_ = tty.Close()
		}
		if path := os.Getenv("HOOKFERRY_TEST_SKIP_LOG"); path != "" {
			if f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil {
				_, _ = f.WriteString(line)
				_ = f.Close()
			}
		}
	})
}

func redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Sprintf("%q", raw)
	}
	return u.Redacted()
}

// PostgresDatabase creates a database of its own on the test server, for tests
// that terminate its connections or share it between processes, and returns
// its URL; the database is dropped when t ends.
func PostgresDatabase(t testing.TB) string {
	t.Helper()
	PostgresURL(t) // skips, or fails under CI, as PostgresURL does
	base := os.Getenv("HOOKFERRY_TEST_POSTGRES_URL")
	if base == "" {
		base = DefaultPostgresURL
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open %s: %v", redacted(base), err)
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	name := "hftest_" + hex.EncodeToString(b)
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.Exec("DROP DATABASE " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("HOOKFERRY_TEST_POSTGRES_URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}
