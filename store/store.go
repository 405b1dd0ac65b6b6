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
	"sync"
	"sync/atomic"
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
	releases  chan struct{}        // a round for the releaser, coalesced
	releasing atomic.Bool          // a release may be under way: asked for, or left by the last round
	// recordedWhileReleasing counts the results recorded since the releaser
	// was last asked for a round.
	recordedWhileReleasing atomic.Int64
	releaseMu              sync.Mutex
	releasedTo             map[releaseKey]int64 // releaseAll's: the last id each release made due
	closing                chan struct{}
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
	s.publishes, s.notifies, s.releases, s.closing = make(chan *publishRequest, 1024), make(chan struct{}, 1), make(chan struct{}, 1), make(chan struct{})
	s.closingCtx, s.stopWriting = context.WithCancel(context.Background())
	if s.dialect.notifies() {
		s.writers.Add(1)
		go s.sendNotifies()
	}
	// One writer: SQLite has one anyway, and on PostgreSQL writers in
	// parallel made smaller batches, each paying its own round trips and
	// commit, and their foreign-key locks on the same webhook rows became
	// multixacts (make bench, PostgreSQL's CPU per event: 510–770 µs with
	// 4 writers, 430 with 2, 345 with 1).
	s.writers.Add(1)
	go s.writePublishes()
	s.writers.Add(1)
	go s.releaser()
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
		s.dialect = postgresDialect{}
		dialector = postgres.Open(sessionDefaults(loc.URL))
	} else {
		s.dialect = sqliteDialect{path: loc.Path}
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
	s.dialect.configurePool(sqlDB, opts.MaxOpenConns)
	if err := sqlDB.PingContext(ctx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("store: cannot reach %s: %w", loc, err)
	}
	return s, nil
}

// explain rewords the errors a person meets at start-up.
func (s *Store) explain(err error) error { return s.dialect.explain(err) }

func (s *Store) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// Location is where the database is.
func (s *Store) Location() Location { return s.loc }

// Applied lists the migrations this Open applied, oldest first.
func (s *Store) Applied() []int64 { return s.applied }

// Dialect names the database engine: "postgres" or "sqlite".
func (s *Store) Dialect() string { return s.dialect.name() }

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
	ErrTokenUnauthorized = errors.New("unknown, revoked or expired token")
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

// sessionDefaults adds to a PostgreSQL URL the settings of the store's
// sessions that the URL does not set itself: jit=off, because the planner's
// estimates of a claim on a large deliveries table pass jit_above_cost, and
// compiling it (~40 ms) cost far more than running it (~1 ms) every time.
func sessionDefaults(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw // ParseDatabaseURL accepted it; the driver says what is wrong
	}
	q := u.Query()
	if !q.Has("jit") {
		q.Set("jit", "off")
	}
	u.RawQuery = q.Encode()
	return u.String()
}
