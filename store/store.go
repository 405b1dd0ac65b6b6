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
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

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
	db        *gorm.DB
	now       func() time.Time
	random    io.Reader
	postgres  bool
	dialect   dialect
	url       string
	loc       Location
	log       *slog.Logger
	signals   signals
	tokens    tokenCache
	keys      *keyring.Keyring
	applied   []int64
	revisions revisions
	ownReader bool   // revisions.reader is a connection of its own (SQLite)
	startUp   func() // releases the SQLite start-up lock

	publishes chan *publishRequest // waiting for a writer
	notifies  chan struct{}        // a NOTIFY to send, coalesced
	closing   chan struct{}
	// closingCtx ends when Close begins: the writers' database calls stop.
	closingCtx  context.Context
	stopWriting context.CancelFunc
	closeMu     sync.RWMutex
	closed      bool
	writers     sync.WaitGroup
}

// Open connects to databaseURL, brings the schema up to date (see
// Options.Migrate) and seals any signing secret still stored in plain text. An
// empty URL opens the SQLite file hookferry.db in the working directory;
// "sqlite:PATH" or "file:PATH" another SQLite file; "postgres://…" or
// "postgresql://…" PostgreSQL.
func Open(ctx context.Context, databaseURL string, opts Options) (*Store, error) {
	if opts.Keys == nil {
		return nil, errors.New("store: no encryption keys for the signing secrets")
	}
	s, err := openDB(ctx, databaseURL, opts, true)
	if err != nil {
		return nil, err
	}
	defer s.endStartUp()
	sqlDB, err := s.db.DB()
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := s.start(ctx, opts.Migrate); err != nil {
		_ = sqlDB.Close()
		return nil, err
	}
	s.publishes, s.notifies, s.closing = make(chan *publishRequest, 1024), make(chan struct{}, 1), make(chan struct{})
	s.closingCtx, s.stopWriting = context.WithCancel(context.Background())
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

// start migrates, checks that the database takes writes, and seals plain
// secrets.
func (s *Store) start(ctx context.Context, mode MigrateMode) error {
	if err := s.migrate(ctx, mode); err != nil {
		return s.explain(err)
	}
	if err := s.Ready(ctx); err != nil {
		return fmt.Errorf("store: %s does not accept writes: %w", s.loc, s.explain(err))
	}
	if err := s.sealPlainSecrets(ctx); err != nil {
		return err
	}
	if err := s.checkKeys(ctx); err != nil {
		return err
	}
	return s.openRevisions(ctx)
}

// endStartUp lets the next process start on this SQLite file.
func (s *Store) endStartUp() {
	if s.startUp != nil {
		s.startUp()
		s.startUp = nil
	}
}

// openDB connects without touching the schema; create says whether a missing
// SQLite file may be created (mode 0600).
func openDB(ctx context.Context, databaseURL string, opts Options, create bool) (_ *Store, err error) {
	loc, err := ParseDatabaseURL(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s := &Store{now: opts.Now, random: opts.Random, url: databaseURL, loc: loc, log: opts.Logger, keys: opts.Keys}
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
	if loc.Postgres {
		s.postgres, s.dialect = true, postgresDialect{}
		dialector = postgres.Open(loc.URL)
	} else {
		s.dialect = sqliteDialect{}
		if err := prepareSQLiteFile(loc.Path, create); err != nil {
			return nil, err
		}
		if fi, err := os.Stat(loc.Path); err == nil && fi.Mode().Perm()&0o077 != 0 && s.log != nil {
			s.log.Warn("the SQLite database is readable by other users of this machine; chmod 600 it and its -wal and -shm files",
				"file", loc.Path, "mode", fi.Mode().Perm().String())
		}
		if s.startUp, err = lockStartUp(loc.Path); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				s.endStartUp()
			}
		}()
		dialector = openSQLite(loc.Path)
	}
	db, err := gorm.Open(dialector, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", loc, err)
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
	if err := sqlDB.PingContext(ctx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("store: cannot reach %s: %w", loc, err)
	}
	return s, nil
}

// prepareSQLiteFile makes sure the directory exists and creates the file
// readable by its owner alone (SQLite gives its -wal and -shm files the same
// mode), so that SQLite does not create it world-readable.
func prepareSQLiteFile(path string, create bool) error {
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("store: the directory %s of the SQLite database does not exist; create it or set HOOKFERRY_DATABASE_URL=sqlite:PATH elsewhere", dir)
	}
	if _, err := os.Stat(path); err == nil {
		return nil // an older release may have made it 0644: Open warns
	} else if !create {
		return fmt.Errorf("store: there is no SQLite database at %s", path)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case errors.Is(err, os.ErrExist):
		return nil // another process created it meanwhile
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("store: cannot create the SQLite database %s: the directory %s is not writable by this user", path, dir)
	case err != nil:
		return fmt.Errorf("store: cannot create the SQLite database %s: %w", path, err)
	}
	return f.Close()
}

// explain rewords the SQLite errors a person meets at start-up.
func (s *Store) explain(err error) error {
	if s.postgres || err == nil {
		return err
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "readonly database"), strings.Contains(msg, "(8)"):
		return fmt.Errorf("the SQLite database %s is read-only: check the permissions of the file and of its directory (SQLite writes %s-wal and %s-shm beside it): %w", s.loc.Path, s.loc.Path, s.loc.Path, err)
	case strings.Contains(msg, "unable to open"), strings.Contains(msg, "(14)"):
		return fmt.Errorf("cannot open the SQLite database %s: check that its directory exists and is writable: %w", s.loc.Path, err)
	}
	return err
}

// sqliteDSN is the SQLite driver's DSN for path: WAL journal, full sync (an
// acknowledged write survives a power cut), a busy timeout for other processes
// (the CLI) writing at the same time, transactions that take the write lock up
// front, deleted content overwritten (no plain secret left in free pages), and
// free pages that can be handed back.
func sqliteDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)") // first: the pragmas after it may wait for a lock
	// Before the first page is written (journal_mode writes one): a new
	// database gives the pages that pruning frees back to the file system
	// (Prune runs incremental_vacuum); an older one keeps reusing them.
	q.Add("_pragma", "auto_vacuum(INCREMENTAL)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "secure_delete(1)")
	q.Set("_txlock", "immediate") // ignored by the driver beside _time_format: see immediateDriver
	q.Set("_time_format", "sqlite")
	return "file:" + path + "?" + q.Encode()
}

func (s *Store) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// Location is where the database is.
func (s *Store) Location() Location { return s.loc }

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
	if s.stopWriting != nil {
		s.stopWriting() // first: a writer stuck on the database must not hold up Close
	}
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
	var errs []error
	if s.ownReader {
		errs = append(errs, s.revisions.reader.Close())
	}
	return errors.Join(append(errs, sqlDB.Close())...)
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
