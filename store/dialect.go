package store

import (
	"context"
	"database/sql"
	"time"

	"github.com/pressly/goose/v3"
	"gorm.io/gorm"
)

// dialect is what differs between PostgreSQL (dialect_postgres.go) and
// SQLite (dialect_sqlite.go): SQL, locks, notifications, start-up. The rest
// of the store is written once for both.
type dialect interface {
	// name is the engine's name: "postgres" or "sqlite".
	name() string

	// now is the database's clock in SQL, with its arguments: PostgreSQL's
	// now(), so that instances with skewed clocks agree on leases; SQLite's
	// is this process's (one machine owns the file).
	now(appNow time.Time) (string, []any)
	// leaseEnd is now + lease in SQL, with its arguments.
	leaseEnd(appNow time.Time, lease time.Duration) (string, []any)
	// after is now + d in SQL for a database/sql query whose next
	// placeholder is number n.
	after(appNow time.Time, d time.Duration, n int) (string, []any)
	// param is the n-th placeholder of a database/sql query.
	param(n int) string
	// typed is a placeholder of a VALUES list whose type the database must
	// be told (PostgreSQL does not infer it there), sqlType in PostgreSQL's
	// spelling.
	typed(sqlType string) string

	// claim leases the rows that the query due selects (with args) until
	// leaseEnd and returns them with what sending needs.
	claim(tx *gorm.DB, due string, args []any, leaseSQL string, leaseArgs []any) ([]claimRow, error)
	// lockPending locks the webhook's pending deliveries until the end of
	// tx, waiting for the claims that hold some of them.
	lockPending(tx *gorm.DB, webhookID string) error
	// forUpdate locks the rows q reads until the end of its transaction.
	forUpdate(q *gorm.DB) *gorm.DB
	// forUpdateSkipLocked locks the rows q reads that nobody else holds.
	forUpdateSkipLocked(q *gorm.DB) *gorm.DB
	// lockReferenced is the clause that locks the rows of alias (the
	// webhooks an insert refers to) against concurrent updates before their
	// columns are read.
	lockReferenced(alias string) string
	// tryLock takes the named lock of this database (schema) for one
	// instance, without waiting.
	tryLock(ctx context.Context, db *gorm.DB, name string) (release func(), ok bool, err error)
	// idIn is the condition that column is one of the ids the subquery
	// selects, in the form the database's planner takes as a list of ids.
	idIn(column, subquery string) string
	// eachWebhooksRows is the FROM of webhooks w2 with, as d2, the rows that
	// own (a query on deliveries that refers to w2) gives for each of them.
	eachWebhooksRows(own string) string

	// relaxCommit lets tx commit without waiting for the disk, where the
	// database allows it (see postgresDialect.relaxCommit).
	relaxCommit(tx *gorm.DB) error

	// notifies says whether other processes hear notify (and Listen relays
	// what they send).
	notifies() bool
	// notify tells the other instances, on commit of tx, something happened
	// on channel.
	notify(tx *gorm.DB, channel, payload string) error

	// configurePool sizes the connection pool; maxOpen 0 is the default.
	configurePool(db *sql.DB, maxOpen int)
	// openReader is the connection pool of the reads that must never wait
	// for the writer (Sync, Startable); own says it is not db's and is
	// closed with the store.
	openReader(db *gorm.DB) (reader *sql.DB, own bool, err error)
	// migrations are goose's dialect, the folder of migrations/ and options.
	migrations() (goose.Dialect, string, []goose.ProviderOption)
	// explain rewords the errors a person meets at start-up.
	explain(err error) error
	// shrink hands the pages that deleting freed back to the file system.
	shrink(ctx context.Context, db *gorm.DB) error
	// truncateWAL writes the write-ahead log back and empties it, so that
	// what was overwritten is nowhere on disk.
	truncateWAL(ctx context.Context, db *gorm.DB) error
	// retryable says err aborted a transaction that may simply run again: a
	// deadlock victim or a serialization failure.
	retryable(err error) bool
}
