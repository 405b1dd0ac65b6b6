package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"gorm.io/gorm"
)

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
	// A page cache of 32 MiB per connection instead of 2: the b-trees of a
	// database of millions of rows are read through it.
	q.Add("_pragma", "cache_size(-32768)")
	q.Set("_time_format", "sqlite")
	return "file:" + path + "?" + q.Encode()
}

// sqliteDialect is a SQLite file that one process serves (the CLI may write
// beside it): its transactions take the write lock when they begin, so they
// are serialised, and there is one clock, this process's.
type sqliteDialect struct {
	path string // the database file
}

func (sqliteDialect) name() string { return "sqlite" }

func (sqliteDialect) now(appNow time.Time) (string, []any) { return "?", []any{appNow} }

func (sqliteDialect) leaseEnd(appNow time.Time, lease time.Duration) (string, []any) {
	return "?", []any{appNow.Add(lease)}
}

func (sqliteDialect) after(appNow time.Time, d time.Duration, _ int) (string, []any) {
	return "?", []any{appNow.Add(d)}
}

func (sqliteDialect) param(int) string { return "?" }

func (sqliteDialect) typed(string) string { return "?" }

// claim: SQLite has one writer, so the transaction is the lock; RETURNING
// cannot reach other tables, so the rest comes in a second query.
func (sqliteDialect) claim(tx *gorm.DB, due string, args []any, leaseSQL string, leaseArgs []any) ([]claimRow, error) {
	q := `UPDATE deliveries SET leased_until = ` + leaseSQL + `, claim_seq = claim_seq + 1
		WHERE id IN (` + due + `)
		RETURNING id, claim_seq, leased_until, event_id, webhook_id, attempts, schedule_pos`
	var rows []claimRow
	if err := tx.Raw(q, append(leaseArgs, args...)...).Scan(&rows).Error; err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, nil
	}
	return rows, completeClaims(tx, rows)
}

// completeClaims adds what sending needs to rows claimed on SQLite, whose
// RETURNING cannot reach other tables.
func completeClaims(tx *gorm.DB, rows []claimRow) error {
	eventIDs := make([]string, 0, len(rows))
	webhookIDs := make([]string, 0, len(rows))
	for _, r := range rows {
		eventIDs = append(eventIDs, r.EventID)
		webhookIDs = append(webhookIDs, r.WebhookID)
	}
	var events []eventRow
	if err := tx.Select("id", "payload").Where("id IN ?", unique(eventIDs)).Find(&events).Error; err != nil {
		return err
	}
	var hooks []webhookRow
	if err := tx.Select("id", "tenant_id", "user_id", "ordered", "url", "secret", "previous_secrets").Where("id IN ?", unique(webhookIDs)).Find(&hooks).Error; err != nil {
		return err
	}
	payloads := make(map[string][]byte, len(events))
	for _, e := range events {
		payloads[e.ID] = e.Payload
	}
	byID := make(map[string]webhookRow, len(hooks))
	for _, h := range hooks {
		byID[h.ID] = h
	}
	for i := range rows {
		w := byID[rows[i].WebhookID]
		rows[i].Payload = payloads[rows[i].EventID]
		rows[i].URL, rows[i].Secret, rows[i].PreviousSecrets = w.URL, w.Secret, w.PreviousSecrets
		rows[i].TenantID, rows[i].UserID, rows[i].Ordered = w.TenantID, w.UserID, w.Ordered
	}
	return nil
}

// lockPending: the transaction holds the database's write lock already.
func (sqliteDialect) lockPending(*gorm.DB, string) error { return nil }

// forUpdate: the transaction holds the database's write lock already.
func (sqliteDialect) forUpdate(q *gorm.DB) *gorm.DB { return q }

// forUpdateSkipLocked: nobody else holds anything while the transaction runs.
func (sqliteDialect) forUpdateSkipLocked(q *gorm.DB) *gorm.DB { return q }

func (sqliteDialect) lockReferenced(string) string { return "" }

// tryLock: nothing to take, the transactions are serialised anyway.
func (sqliteDialect) tryLock(context.Context, *gorm.DB, string) (func(), bool, error) {
	return func() {}, true, nil
}

func (sqliteDialect) idIn(column, subquery string) string { return column + " IN (" + subquery + ")" }

// eachWebhooksRows: SQLite has no LATERAL; a rowid IN (subquery) that refers
// to w2 alone is run once per webhook, and its ids looked up.
func (sqliteDialect) eachWebhooksRows(own string) string {
	return "webhooks w2 JOIN deliveries d2 ON d2.id IN (SELECT id FROM (" + own + "))"
}

// relaxCommit: the driver began the transaction relaxed (withRelaxedCommit).
func (sqliteDialect) relaxCommit(*gorm.DB) error { return nil }

// notifies: one process serves the file; it signals itself.
func (sqliteDialect) notifies() bool { return false }

func (sqliteDialect) notify(*gorm.DB, string, string) error { return nil }

// configurePool: one connection. SQLite has one writer anyway, and queueing
// in Go is fairer and faster than SQLite's busy-wait.
func (sqliteDialect) configurePool(db *sql.DB, _ int) { db.SetMaxOpenConns(1) }

// openReader is a connection of its own, which never waits for the writer's.
func (d sqliteDialect) openReader(*gorm.DB) (*sql.DB, bool, error) {
	db, err := gorm.Open(openSQLite(d.path), &gorm.Config{})
	if err != nil {
		return nil, false, err
	}
	reader, err := db.DB()
	if err != nil {
		return nil, false, err
	}
	reader.SetMaxOpenConns(1)
	return reader, true, nil
}

// migrations: SQLite start-ups are serialised as a whole (lockStartUp).
func (sqliteDialect) migrations() (goose.Dialect, string, []goose.ProviderOption) {
	return goose.DialectSQLite3, "migrations/sqlite", nil
}

// explain rewords the SQLite errors a person meets at start-up.
func (d sqliteDialect) explain(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "readonly database"), strings.Contains(msg, "(8)"):
		return fmt.Errorf("the SQLite database %s is read-only: check the permissions of the file and of its directory (SQLite writes %s-wal and %s-shm beside it): %w", d.path, d.path, d.path, err)
	case strings.Contains(msg, "unable to open"), strings.Contains(msg, "(14)"):
		return fmt.Errorf("cannot open the SQLite database %s: check that its directory exists and is writable: %w", d.path, err)
	}
	return err
}

// vacuumBatch bounds the pages one step of shrink frees.
const vacuumBatch = 2000

// shrink steps incremental_vacuum to the end, then empties the WAL: the file
// shrinks when the WAL is written back.
func (d sqliteDialect) shrink(ctx context.Context, db *gorm.DB) error {
	db = db.WithContext(ctx)
	for {
		var free int64
		if err := db.Raw("PRAGMA freelist_count").Scan(&free).Error; err != nil || free == 0 {
			if err != nil {
				return err
			}
			break
		}
		// A bounded number of pages per transaction; the pragma frees one
		// page per step, so step it to the end.
		rows, err := db.Raw("PRAGMA incremental_vacuum(" + strconv.Itoa(vacuumBatch) + ")").Rows()
		if err != nil {
			return err
		}
		for rows.Next() {
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return d.truncateWAL(ctx, db)
}

func (sqliteDialect) truncateWAL(ctx context.Context, db *gorm.DB) error {
	return db.WithContext(ctx).Exec("PRAGMA wal_checkpoint(TRUNCATE)").Error
}

// retryable: one writer at a time, which waits for the lock up front
// (BEGIN IMMEDIATE), so no transaction is ever a deadlock's victim.
func (sqliteDialect) retryable(error) bool { return false }
