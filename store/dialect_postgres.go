package store

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pressly/goose/v3"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// postgresDialect is PostgreSQL: several instances share the database, so
// claims lock rows and skip those locked, leases are on the database's clock,
// and instances tell each other what changed with NOTIFY.
type postgresDialect struct{}

func (postgresDialect) name() string { return "postgres" }

func (postgresDialect) now(time.Time) (string, []any) { return "now()", nil }

func (postgresDialect) leaseEnd(_ time.Time, lease time.Duration) (string, []any) {
	return "now() + make_interval(secs => CAST(? AS double precision))", []any{lease.Seconds()}
}

func (postgresDialect) after(_ time.Time, d time.Duration, n int) (string, []any) {
	return "now() + make_interval(secs => CAST($" + strconv.Itoa(n) + " AS double precision))", []any{d.Seconds()}
}

func (postgresDialect) param(n int) string { return "$" + strconv.Itoa(n) }

func (postgresDialect) typed(sqlType string) string { return "CAST(? AS " + sqlType + ")" }

// claim is one statement: lock the rows due selects that nobody holds, lease
// them, and return them with their webhook and payload. The lock re-checks
// the lease on each row's latest version: a row another instance leased since
// due's snapshot is skipped, never leased twice.
func (postgresDialect) claim(tx *gorm.DB, due string, args []any, leaseSQL string, leaseArgs []any) ([]claimRow, error) {
	q := `UPDATE deliveries AS d SET leased_until = ` + leaseSQL + `, claim_seq = d.claim_seq + 1
		FROM events e, webhooks w
		WHERE d.id = ANY(ARRAY(SELECT l.id FROM deliveries l WHERE l.id = ANY(ARRAY(` + due + `))
			AND l.status = 'PENDING' AND (l.leased_until IS NULL OR l.leased_until <= now())
			FOR UPDATE SKIP LOCKED))
		AND e.id = d.event_id AND w.id = d.webhook_id
		RETURNING d.id, d.claim_seq, d.leased_until, d.event_id, d.webhook_id, w.tenant_id, w.user_id, w.ordered,
			d.attempts, d.schedule_pos, w.url, w.secret, w.previous_secrets, e.payload`
	var rows []claimRow
	if err := tx.Raw(q, append(leaseArgs, args...)...).Scan(&rows).Error; err != nil {
		return nil, err
	}
	return keepOrderedHeads(tx, rows)
}

// keepOrderedHeads gives back the deliveries of ordered webhooks claimed that
// a statement begun now does not see as their webhook's oldest pending one
// and its only lease. The claim judged that on its statement's snapshot,
// which can predate a redelivery of an older delivery that committed before
// the claim reached the row it locked (lockPending holds off only the claims
// that locked first): another claim, seeing the redelivered one, would lease
// it beside this one. Of two such claims the later to check gives way.
func keepOrderedHeads(tx *gorm.DB, rows []claimRow) ([]claimRow, error) {
	var ordered []int64
	for _, r := range rows {
		if r.Ordered {
			ordered = append(ordered, r.ID)
		}
	}
	if len(ordered) == 0 {
		return rows, nil
	}
	var lost []int64
	if err := tx.Raw(`SELECT d.id FROM deliveries d WHERE d.id IN ? AND (
		EXISTS (SELECT 1 FROM deliveries d3 WHERE d3.webhook_id = d.webhook_id AND d3.status = 'PENDING' AND d3.id < d.id)
		OR EXISTS (SELECT 1 FROM deliveries d4 WHERE d4.webhook_id = d.webhook_id AND d4.status = 'PENDING' AND d4.id <> d.id
			AND d4.leased_until > now()))`, ordered).Scan(&lost).Error; err != nil || len(lost) == 0 {
		return rows, err
	}
	// As before the claim: the lease it took over had ended, or there was none.
	if err := tx.Exec("UPDATE deliveries SET leased_until = NULL, claim_seq = claim_seq - 1 WHERE id IN ?", lost).Error; err != nil {
		return nil, err
	}
	kept := rows[:0]
	for _, r := range rows {
		if !slices.Contains(lost, r.ID) {
			kept = append(kept, r)
		}
	}
	return kept, nil
}

func (postgresDialect) lockPending(tx *gorm.DB, webhookID string) error {
	return tx.Exec("SELECT id FROM deliveries WHERE webhook_id = ? AND status = 'PENDING' FOR UPDATE", webhookID).Error
}

func (postgresDialect) forUpdate(q *gorm.DB) *gorm.DB {
	return q.Clauses(clause.Locking{Strength: "UPDATE"})
}

func (postgresDialect) forUpdateSkipLocked(q *gorm.DB) *gorm.DB {
	return q.Clauses(clause.Locking{Strength: "UPDATE", Options: "SKIP LOCKED"})
}

// lockReferenced is the lock a foreign key check takes anyway, taken before
// the webhook's status is read: a concurrent pause or unpause (which locks
// the row FOR UPDATE) is then wholly before the insert or wholly after it.
func (postgresDialect) lockReferenced(alias string) string { return " FOR KEY SHARE OF " + alias }

// tryLock is a session advisory lock on a connection of its own, keyed by the
// schema, so that the test schemas of one database do not share it.
func (postgresDialect) tryLock(ctx context.Context, db *gorm.DB, name string) (release func(), ok bool, err error) {
	sqlDB, err := db.DB()
	if err != nil {
		return nil, false, err
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return nil, false, err
	}
	key := "hashtext('hookferry." + name + ".' || current_schema())"
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock("+key+")").Scan(&ok); err != nil || !ok {
		conn.Close()
		return nil, false, err
	}
	return func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock("+key+")")
		conn.Close()
	}, true, nil
}

// idIn: with IN (subquery) the planner may join the subquery to the whole
// table (a release of 1,000 held rows took 116 ms); = ANY(ARRAY(…)) runs it
// first and looks the ids up.
func (postgresDialect) idIn(column, subquery string) string {
	return column + " = ANY(ARRAY(" + subquery + "))"
}

func (postgresDialect) eachWebhooksRows(own string) string {
	return "webhooks w2 CROSS JOIN LATERAL (" + own + ") d2"
}

// relaxCommit lets a PostgreSQL transaction commit without waiting for its WAL
// to reach the disk. Only for claims and outcomes: losing the last of them in a
// crash of the database means deliveries sent again (at least once), never an
// event lost; publishes always commit synchronously.
//
// It also keeps the planner to index scans for the transaction: a claim and
// a record touch a few rows by index, and on a table without statistics yet
// (new, or just grown by a large batch) PostgreSQL chose bitmap and
// sequential scans of every due row instead (112 ms a claim at 50,000).
func (postgresDialect) relaxCommit(tx *gorm.DB) error {
	return tx.Exec(`SELECT set_config('synchronous_commit', 'off', true), set_config('enable_bitmapscan', 'off', true),
		set_config('enable_seqscan', 'off', true)`).Error
}

func (postgresDialect) notifies() bool { return true }

func (postgresDialect) notify(tx *gorm.DB, channel, payload string) error {
	return tx.Exec("SELECT pg_notify(?, ?)", channel, payload).Error
}

func (postgresDialect) configurePool(db *sql.DB, maxOpen int) {
	if maxOpen <= 0 {
		maxOpen = 20
	}
	db.SetMaxOpenConns(maxOpen)
	db.SetMaxIdleConns(maxOpen)
	db.SetConnMaxIdleTime(5 * time.Minute)
}

// openReader: reads never wait for writes on PostgreSQL; the pool serves.
func (postgresDialect) openReader(db *gorm.DB) (*sql.DB, bool, error) {
	reader, err := db.DB()
	return reader, false, err
}

func (postgresDialect) migrations() (goose.Dialect, string, []goose.ProviderOption) {
	return goose.DialectPostgres, "migrations/postgres", []goose.ProviderOption{goose.WithSessionLocker(postgresLocker{})}
}

func (postgresDialect) explain(err error) error { return err }

// shrink: autovacuum makes the freed pages reusable.
func (postgresDialect) shrink(context.Context, *gorm.DB) error { return nil }

func (postgresDialect) truncateWAL(context.Context, *gorm.DB) error { return nil }

// retryable: deadlock_detected and serialization_failure. Lock orders differ
// between a pause (webhook row, then its deliveries) and a claim or a record
// (deliveries, then the webhook), so PostgreSQL may abort one of two that
// meet; the other went on.
func (postgresDialect) retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}
