package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // the "sqlite" database/sql driver
)

// benchDB is the bench's own connection to the server's database: for the
// set-ups done in bulk SQL (history, backlog) and for the database's size.
// The SQL that differs per database is here.
type benchDB struct {
	kind string // sqlite or postgres
	name string // PostgreSQL: the database's name (its backends' command lines carry it)
	db   *sql.DB
}

// openBenchDB connects to d, which the server has migrated already.
func openBenchDB(ctx context.Context, kind string, d *Database) (*benchDB, error) {
	b := &benchDB{kind: kind}
	var err error
	switch kind {
	case "sqlite":
		// The server's own time format, so that the times the bench writes
		// compare as text with those the server writes; a busy timeout
		// because the server writes at the same time (WAL lets it read).
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(30000)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Set("_time_format", "sqlite")
		b.db, err = sql.Open("sqlite", "file:"+strings.TrimPrefix(d.URL, "sqlite:")+"?"+q.Encode())
		if err == nil {
			b.db.SetMaxOpenConns(1)
		}
	default:
		u, perr := url.Parse(d.URL)
		if perr != nil {
			return nil, perr
		}
		b.name = strings.TrimPrefix(u.Path, "/")
		b.db, err = sql.Open("pgx", d.URL)
		if err == nil {
			b.db.SetMaxOpenConns(2)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("bench connection to the database: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := b.db.PingContext(ctx); err != nil {
		_ = b.db.Close()
		return nil, fmt.Errorf("bench connection to the database: %w", err)
	}
	return b, nil
}

func (b *benchDB) close() error {
	if b == nil {
		return nil
	}
	return b.db.Close()
}

// p is the placeholder of the nth argument (from 1).
func (b *benchDB) p(n int) string {
	if b.kind == "sqlite" {
		return "?" + strconv.Itoa(n)
	}
	return "$" + strconv.Itoa(n)
}

// series is a statement over i = lo…hi (arguments 1 and 2): the prefix it
// needs (SQLite: a recursive CTE) and the FROM item naming i.
func (b *benchDB) series() (with, from string) {
	if b.kind == "sqlite" {
		return "WITH RECURSIVE s(i) AS (SELECT CAST(?1 AS INTEGER) UNION ALL SELECT i + 1 FROM s WHERE i < ?2) ", "s"
	}
	return "", "generate_series($1::bigint, $2::bigint) AS s(i)"
}

// eventID is the SQL of a bulk event's id: prefix and i padded to 22 digits,
// as long as the server's ids (evt_ and 26 characters) with a 4-letter prefix.
func (b *benchDB) eventID(prefix string) string {
	if b.kind == "sqlite" {
		return "'" + prefix + "' || substr('0000000000000000000000' || i, -22)"
	}
	return "'" + prefix + "' || lpad(i::text, 22, '0')"
}

// blob is text as the payload column's type.
func (b *benchDB) blob(text string) string {
	if b.kind == "sqlite" {
		return "CAST(" + text + " AS BLOB)"
	}
	return "convert_to(" + text + ", 'UTF8')"
}

// typed is argument n as a value of type pgType (SQLite: as it is).
func (b *benchDB) typed(n int, pgType string) string {
	if b.kind == "sqlite" {
		return b.p(n)
	}
	return b.p(n) + "::" + pgType
}

// text is an integer expression as text.
func (b *benchDB) text(expr string) string {
	if b.kind == "sqlite" {
		return "CAST(" + expr + " AS TEXT)"
	}
	return "(" + expr + ")::text"
}

// analyze makes the database as it would be in production some time after
// such inserts: VACUUM (ANALYZE) of the tables on PostgreSQL (as autovacuum
// soon does: statistics, and the visibility map); nothing on SQLite, which
// the server never analyzes (without statistics SQLite plans by its
// indexes), only a checkpoint. It says what it did.
func (b *benchDB) analyze(ctx context.Context) (string, error) {
	if b.kind == "sqlite" {
		return "nothing to analyze (the server never runs ANALYZE on SQLite)" + b.checkpoint(ctx), nil
	}
	for _, t := range []string{"events", "deliveries", "attempts", "webhooks", "webhook_event_types"} {
		if _, err := b.db.ExecContext(ctx, "VACUUM (ANALYZE) "+t); err != nil {
			return "", fmt.Errorf("VACUUM (ANALYZE) %s: %w", t, err)
		}
	}
	return "VACUUM (ANALYZE) of events, deliveries, attempts, webhooks, webhook_event_types" + b.checkpoint(ctx), nil
}

// checkpoint writes the bulk set-up's WAL back now, so that the phase after
// it does not pay for that: CHECKPOINT on PostgreSQL (superuser or
// pg_checkpoint), wal_checkpoint(TRUNCATE) on SQLite. It says what it did,
// and a failure only makes it say so.
func (b *benchDB) checkpoint(ctx context.Context) string {
	q := "CHECKPOINT"
	if b.kind == "sqlite" {
		q = "PRAGMA wal_checkpoint(TRUNCATE)"
	}
	if _, err := b.db.ExecContext(ctx, q); err != nil {
		logf("%s: %v", q, err)
		return "; " + q + " failed"
	}
	return "; " + q
}

// bulkChunk is how many events one statement (and transaction) of a bulk
// set-up inserts.
const bulkChunk = 100_000

// bulkEvents inserts events prefix+lo…prefix+hi of tenant in chunks, each in
// one transaction with rows(tx, lo, hi) run after the events of the chunk
// (the deliveries and attempts). The payload is the envelope the server
// stores: id, type, timestamp and data as the bench publishes it (sent_ns,
// seq, phase), so a delivery of it reaches the receiver like any other.
func (b *benchDB) bulkEvents(ctx context.Context, prefix, tenant, phase string, n int, at time.Time, sentNS func() int64,
	rows func(ctx context.Context, tx *sql.Tx, lo, hi int) error) error {
	with, from := b.series()
	id := b.eventID(prefix)
	payload := b.blob(`'{"id":"' || ` + id + ` || '","type":"` + eventType + `","timestamp":"' || ` + b.typed(3, "text") +
		` || '","data":{"sent_ns":' || ` + b.typed(4, "text") + ` || ',"seq":' || ` + b.text("i") + ` || ',"phase":"` + phase + `"}}'`)
	q := with + `INSERT INTO events (id, tenant_id, producer_id, type, payload, deliveries, created_at)
		SELECT ` + id + `, ` + b.typed(5, "text") + `, NULL, '` + eventType + `', ` + payload + `, 0, ` + b.typed(6, "timestamptz") + ` FROM ` + from + ` ORDER BY i`
	stamp := at.UTC().Truncate(time.Second).Format(time.RFC3339)
	for lo := 1; lo <= n; lo += bulkChunk {
		hi := min(lo+bulkChunk-1, n)
		tx, err := b.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, q, lo, hi, stamp, strconv.FormatInt(sentNS(), 10), tenant, at); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("insert events %d-%d: %w", lo, hi, err)
		}
		if err := rows(ctx, tx, lo, hi); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("rows of events %d-%d: %w", lo, hi, err)
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// insertDeliveries inserts, in tx, one delivery per event prefix+lo…hi (the
// series' arguments 1 and 2), spread over the webhooks in turn, with the
// columns cols set to vals (SQL; their arguments from 3 on).
func (b *benchDB) insertDeliveries(ctx context.Context, tx *sql.Tx, prefix string, webhooks []string, lo, hi int, cols, vals []string, args ...any) error {
	with, from := b.series()
	hook := "CASE i % " + strconv.Itoa(len(webhooks))
	for k, id := range webhooks {
		hook += fmt.Sprintf(" WHEN %d THEN '%s'", k, id) // ids the server made: letters, digits and _
	}
	hook += " END"
	q := with + `INSERT INTO deliveries (event_id, webhook_id, event_type, ` + strings.Join(cols, ", ") + `)
		SELECT ` + b.eventID(prefix) + `, ` + hook + `, '` + eventType + `', ` + strings.Join(vals, ", ") + `
		FROM ` + from + ` ORDER BY i`
	_, err := tx.ExecContext(ctx, q, append([]any{lo, hi}, args...)...)
	return err
}
