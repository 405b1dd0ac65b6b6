// Package store keeps hookferry's state in a relational database through GORM:
// embedded SQLite (pure Go) by default, PostgreSQL for production and for
// several instances sharing one database.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/hookferry/hookferry/keyring"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// DefaultSQLitePath is the database file used when no database URL is set.
const DefaultSQLitePath = "hookferry.db"

// Options tune a Store; the zero value is fit for production.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Random feeds ids and tokens; nil means crypto/rand.
	Random io.Reader
	// MaxOpenConns bounds the PostgreSQL pool; 0 means 20.
	MaxOpenConns int
	// Logger receives slow-query and error reports; nil discards them.
	Logger *slog.Logger
	// Keys seal and open the webhooks' signing secrets; required.
	Keys *keyring.Keyring
	// Migrate says what Open does with pending migrations.
	Migrate MigrateMode
}

// MigrateMode is what Open does with a schema that is behind this build.
type MigrateMode int

// The migrate modes.
const (
	// MigrateApply applies pending migrations under a lock (the default).
	MigrateApply MigrateMode = iota
	// MigrateRequire refuses a schema with pending migrations (HOOKFERRY_MIGRATE=false).
	MigrateRequire
)

// Store is the database. It is safe for concurrent use.
type Store struct {
	db       *gorm.DB
	now      func() time.Time
	random   io.Reader
	postgres bool
	url      string
	log      *slog.Logger
	signals  signals
	tokens   tokenCache
	keys     *keyring.Keyring
	applied  []int64

	publishes chan *publishRequest // waiting for a writer
	notifies  chan struct{}        // a NOTIFY to send, coalesced
	closing   chan struct{}
	closeMu   sync.RWMutex
	closed    bool
	writers   sync.WaitGroup
}

// Open connects to databaseURL and creates or upgrades the schema. An empty URL
// opens the SQLite file hookferry.db in the working directory; "sqlite:PATH" or
// "file:PATH" another SQLite file; "postgres://…" or "postgresql://…" PostgreSQL.
func Open(ctx context.Context, databaseURL string, opts Options) (*Store, error) {
	s := &Store{now: opts.Now, random: opts.Random, url: databaseURL, log: opts.Logger}
	if s.now == nil {
		s.now = time.Now
	}
	cfg := &gorm.Config{
		TranslateError:         true,
		SkipDefaultTransaction: true,
		NowFunc:                func() time.Time { return s.clock() },
		Logger:                 logger.Discard,
	}
	var dialector gorm.Dialector
	switch {
	case strings.HasPrefix(databaseURL, "postgres://"), strings.HasPrefix(databaseURL, "postgresql://"):
		s.postgres = true
		dialector = postgres.Open(databaseURL)
	default:
		dsn, err := sqliteDSN(databaseURL)
		if err != nil {
			return nil, err
		}
		dialector = sqlite.Open(dsn)
	}
	db, err := gorm.Open(dialector, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", redact(databaseURL), err)
	}
	s.db = db
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if s.postgres {
		n := opts.MaxOpenConns
		if n <= 0 {
			n = 20
		}
		sqlDB.SetMaxOpenConns(n)
		sqlDB.SetMaxIdleConns(n)
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	} else {
		// One connection: SQLite has one writer anyway, and queueing in Go is
		// fairer and faster than SQLite's busy-wait.
		sqlDB.SetMaxOpenConns(1)
	}
	if err := s.migrate(ctx); err != nil {
		_ = sqlDB.Close()
		return nil, err
	}
	s.publishes, s.notifies, s.closing = make(chan *publishRequest, 1024), make(chan struct{}, 1), make(chan struct{})
	writers := 1 // SQLite has one writer anyway
	if s.postgres {
		writers = 4
		s.writers.Add(1)
		go s.sendNotifies()
	}
	s.writers.Add(writers)
	for range writers {
		go s.writePublishes()
	}
	return s, nil
}

// sqliteDSN turns a database URL into the SQLite driver's DSN: WAL journal,
// full sync (an acknowledged write survives a power cut), a busy timeout for
// other processes (the CLI) writing at the same time, and transactions that
// take the write lock up front.
func sqliteDSN(databaseURL string) (string, error) {
	path := databaseURL
	switch {
	case path == "":
		path = DefaultSQLitePath
	case strings.HasPrefix(path, "sqlite://"):
		path = strings.TrimPrefix(path, "sqlite://")
	case strings.HasPrefix(path, "sqlite:"):
		path = strings.TrimPrefix(path, "sqlite:")
	case strings.HasPrefix(path, "file:"):
		path = strings.TrimPrefix(path, "file:")
	case strings.Contains(path, "://"):
		return "", fmt.Errorf("store: unsupported database URL %s (use postgres://… or sqlite:PATH)", redact(databaseURL))
	}
	path, _, _ = strings.Cut(path, "?")
	if path == "" {
		return "", fmt.Errorf("store: empty SQLite path in %q", databaseURL)
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	q.Set("_time_format", "sqlite")
	return "file:" + path + "?" + q.Encode(), nil
}

// redact hides the password of a database URL, for messages.
func redact(databaseURL string) string {
	u, err := url.Parse(databaseURL)
	if err != nil || u.User == nil {
		return databaseURL
	}
	return u.Redacted()
}

func (s *Store) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// Location is where the database is.
func (s *Store) Location() Location { loc, _ := ParseDatabaseURL(s.url); return loc }

// Applied lists the migrations this Open applied, oldest first.
func (s *Store) Applied() []int64 { return s.applied }

// Dialect names the database engine: "postgres" or "sqlite".
func (s *Store) Dialect() string {
	if s.postgres {
		return "postgres"
	}
	return "sqlite"
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// Close stops the writers and releases the database.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if !s.closed {
		s.closed = true
		close(s.closing)
	}
	s.closeMu.Unlock()
	s.writers.Wait()
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// Sentinel errors; callers test them with errors.Is.
var (
	ErrNotFound          = errors.New("not found")
	ErrDuplicateURL      = errors.New("a webhook with this URL is already registered")
	ErrTooManyWebhooks   = errors.New("too many webhooks registered")
	ErrUnpauseTooSoon    = errors.New("unpaused too recently")
	ErrTokenUnauthorized = errors.New("unknown or revoked token")
)

// CooldownError is ErrUnpauseTooSoon with the time left to wait.
type CooldownError struct{ RetryAfter time.Duration }

func (e *CooldownError) Error() string {
	return fmt.Sprintf("%v: retry after %s", ErrUnpauseTooSoon, e.RetryAfter)
}

// Unwrap makes errors.Is(err, ErrUnpauseTooSoon) hold.
func (e *CooldownError) Unwrap() error { return ErrUnpauseTooSoon }

// wrap adds where an error happened: defer wrap(&err, "store.GetWebhook(%s)", id).
func wrap(errp *error, format string, args ...any) {
	if *errp != nil {
		*errp = fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), *errp)
	}
}
