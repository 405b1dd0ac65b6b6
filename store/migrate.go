package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
)

// migrations holds the numbered SQL migrations of each dialect; goose applies
// them and records each in migrationsTable.
//
//go:embed migrations
var migrations embed.FS

const migrationsTable = "hookferry_migrations"

// ErrSchemaTooNew is a database migrated by a newer hookferry than this one.
var ErrSchemaTooNew = errors.New("the database schema is newer than this hookferry knows")

// ErrSchemaBehind is a database with pending migrations that Open was told not
// to apply.
var ErrSchemaBehind = errors.New("the database schema has pending migrations")

func (s *Store) provider(sqlDB *sql.DB) (*goose.Provider, error) {
	dialect, dir, opts := s.dialect.migrations()
	fsys, err := fs.Sub(migrations, dir)
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(dialect, sqlDB, fsys, append(opts,
		goose.WithTableName(migrationsTable),
		goose.WithDisableGlobalRegistry(true))...)
}

// migrate brings the schema to the newest version this build knows, under a
// lock that makes processes starting at once take turns; with MigrateRequire it
// only checks that nothing is pending.
func (s *Store) migrate(ctx context.Context, mode MigrateMode) (err error) {
	defer wrap(&err, "store.migrate")
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	p, err := s.provider(sqlDB)
	if err != nil {
		return err
	}
	latest := latestVersion(p)
	current, err := p.GetDBVersion(ctx)
	if err != nil && !errors.Is(err, goose.ErrNoCurrentVersion) {
		return err
	}
	if current > latest {
		return fmt.Errorf("%w: it is at version %d, this build knows up to %d; run a hookferry at least as new as the one that migrated it", ErrSchemaTooNew, current, latest)
	}
	if mode == MigrateRequire {
		if current < latest {
			return fmt.Errorf("%w: it is at version %d, this build needs %d; run hookferry migrate up (or start with HOOKFERRY_MIGRATE=true)", ErrSchemaBehind, current, latest)
		}
		return nil
	}
	results, err := p.Up(ctx)
	if err != nil {
		return err
	}
	for _, r := range results {
		s.applied = append(s.applied, r.Source.Version)
	}
	return nil
}

func latestVersion(p *goose.Provider) int64 {
	var v int64
	for _, src := range p.ListSources() {
		v = max(v, src.Version)
	}
	return v
}

// Status reads the schema version of the database at databaseURL without
// migrating it.
func Status(ctx context.Context, databaseURL string) (_ SchemaStatus, err error) {
	defer wrap(&err, "store.Status")
	s, err := openDB(ctx, databaseURL, Options{}, false)
	if err != nil {
		return SchemaStatus{}, err
	}
	defer s.endStartUp()
	sqlDB, err := s.db.DB()
	if err != nil {
		return SchemaStatus{}, err
	}
	defer sqlDB.Close()
	p, err := s.provider(sqlDB)
	if err != nil {
		return SchemaStatus{}, err
	}
	st := SchemaStatus{Latest: latestVersion(p)}
	if st.Current, err = p.GetDBVersion(ctx); err != nil && !errors.Is(err, goose.ErrNoCurrentVersion) {
		return SchemaStatus{}, err
	}
	list, err := p.Status(ctx)
	if err != nil {
		return SchemaStatus{}, err
	}
	for _, m := range list {
		st.Migrations = append(st.Migrations, MigrationState{
			Version: m.Source.Version, Name: m.Source.Path, Applied: m.State == goose.StateApplied, AppliedAt: m.AppliedAt.UTC(),
		})
	}
	return st, nil
}

// postgresLocker serialises migrations of one schema with a session advisory
// lock; schemas of one database (the tests') do not wait for each other.
type postgresLocker struct{}

const migrationLockSQL = "hashtext('hookferry.migrate.' || current_schema())"

func (postgresLocker) SessionLock(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock("+migrationLockSQL+")")
	return err
}

func (postgresLocker) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock("+migrationLockSQL+")")
	return err
}
