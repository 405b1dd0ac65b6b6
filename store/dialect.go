package store

import (
	"strconv"
	"time"

	"gorm.io/gorm"
)

// dialect is the SQL that differs between PostgreSQL and SQLite.
type dialect interface {
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
	// claim leases the rows that the query due selects (with args) until
	// leaseEnd and returns them with what sending needs.
	claim(tx *gorm.DB, due string, args []any, leaseSQL string, leaseArgs []any) ([]claimRow, error)
	// lockPending locks the webhook's pending deliveries until the end of
	// tx, waiting for the claims that hold some of them.
	lockPending(tx *gorm.DB, webhookID string) error
}

type postgresDialect struct{}

func (postgresDialect) now(time.Time) (string, []any) { return "now()", nil }

func (postgresDialect) leaseEnd(_ time.Time, lease time.Duration) (string, []any) {
	return "now() + make_interval(secs => CAST(? AS double precision))", []any{lease.Seconds()}
}

func (postgresDialect) after(_ time.Time, d time.Duration, n int) (string, []any) {
	return "now() + make_interval(secs => CAST($" + strconv.Itoa(n) + " AS double precision))", []any{d.Seconds()}
}

func (postgresDialect) param(n int) string { return "$" + strconv.Itoa(n) }

// claim is one statement: lock the rows due selects that nobody holds, lease
// them, and return them with their webhook and payload. The lock re-checks
// the lease on the row's latest version: a row another instance leased since
// due's snapshot is skipped, never leased twice.
func (postgresDialect) claim(tx *gorm.DB, due string, args []any, leaseSQL string, leaseArgs []any) ([]claimRow, error) {
	if err := relaxCommit(tx); err != nil {
		return nil, err
	}
	q := `UPDATE deliveries AS d SET leased_until = ` + leaseSQL + `, claim_seq = d.claim_seq + 1
		FROM events e, webhooks w
		WHERE d.id IN (SELECT l.id FROM deliveries l WHERE l.id IN (` + due + `)
			AND l.status = 'PENDING' AND (l.leased_until IS NULL OR l.leased_until <= now())
			FOR UPDATE SKIP LOCKED)
		AND e.id = d.event_id AND w.id = d.webhook_id
		RETURNING d.id, d.claim_seq, d.leased_until, d.event_id, d.webhook_id, w.tenant_id, w.user_id, w.ordered,
			d.attempts, d.schedule_pos, w.url, w.secret, e.payload`
	var rows []claimRow
	err := tx.Raw(q, append(leaseArgs, args...)...).Scan(&rows).Error
	return rows, err
}

func (postgresDialect) lockPending(tx *gorm.DB, webhookID string) error {
	return tx.Exec("SELECT id FROM deliveries WHERE webhook_id = ? AND status = 'PENDING' FOR UPDATE", webhookID).Error
}

type sqliteDialect struct{}

// lockPending: the transaction holds the database's write lock already.
func (sqliteDialect) lockPending(*gorm.DB, string) error { return nil }

func (sqliteDialect) now(appNow time.Time) (string, []any) { return "?", []any{appNow} }

func (sqliteDialect) leaseEnd(appNow time.Time, lease time.Duration) (string, []any) {
	return "?", []any{appNow.Add(lease)}
}

func (sqliteDialect) after(appNow time.Time, d time.Duration, _ int) (string, []any) {
	return "?", []any{appNow.Add(d)}
}

func (sqliteDialect) param(int) string { return "?" }

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
