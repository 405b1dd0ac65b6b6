package main

import (
	"context"
	"fmt"
	"strings"
)

// sizedTables are the tables whose size grows with the events delivered.
var sizedTables = []string{"events", "deliveries", "attempts"}

// TableSize is one table's bytes on disk: its rows (PostgreSQL: heap, TOAST,
// free space and visibility maps) and its indexes.
type TableSize struct {
	Table   int64 `json:"table"`
	Indexes int64 `json:"indexes"`
}

// DBSize is the sizedTables' bytes, by table.
type DBSize map[string]TableSize

// size measures the sizedTables: PostgreSQL pg_table_size and
// pg_indexes_size; SQLite the pages of each b-tree (dbstat), an index's
// counted with its table. Neither counts the WAL; PostgreSQL's figures
// include the space of dead row versions not yet vacuumed, SQLite's leave
// out the free pages.
func (b *benchDB) size(ctx context.Context) (DBSize, error) {
	out := DBSize{}
	if b.kind == "sqlite" {
		rows, err := b.db.QueryContext(ctx, `SELECT m.tbl_name, m.type, SUM(d.pgsize)
			FROM dbstat d JOIN sqlite_master m ON m.name = d.name
			WHERE m.tbl_name IN ('events', 'deliveries', 'attempts') GROUP BY m.tbl_name, m.type`)
		if err != nil {
			return nil, fmt.Errorf("dbstat: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var table, typ string
			var n int64
			if err := rows.Scan(&table, &typ, &n); err != nil {
				return nil, err
			}
			s := out[table]
			if typ == "index" {
				s.Indexes += n
			} else {
				s.Table += n
			}
			out[table] = s
		}
		return out, rows.Err()
	}
	for _, t := range sizedTables {
		var s TableSize
		if err := b.db.QueryRowContext(ctx, "SELECT pg_table_size($1::regclass), pg_indexes_size($1::regclass)", t).Scan(&s.Table, &s.Indexes); err != nil {
			return nil, fmt.Errorf("size of %s: %w", t, err)
		}
		out[t] = s
	}
	return out, nil
}

// total is the bytes of the tables and of their indexes, summed.
func (s DBSize) total() (table, indexes int64) {
	for _, t := range s {
		table += t.Table
		indexes += t.Indexes
	}
	return table, indexes
}

// BytesPerEvent is the growth of the database during a phase per delivered
// delivery.
type BytesPerEvent struct {
	Delivered int     `json:"delivered"`
	Table     float64 `json:"table"`   // events, deliveries and attempts
	Indexes   float64 `json:"indexes"` // theirs
	Total     float64 `json:"total"`
	// ByTable is each table's, rows+indexes.
	ByTable map[string]float64 `json:"by_table"`
	Note    string             `json:"note"`
}

// perDelivered is (after-before)/delivered.
func perDelivered(before, after DBSize, delivered int, kind string) *BytesPerEvent {
	if delivered <= 0 || before == nil || after == nil {
		return nil
	}
	n := float64(delivered)
	bt, bi := before.total()
	at, ai := after.total()
	r := &BytesPerEvent{Delivered: delivered, Table: round2(float64(at-bt) / n), Indexes: round2(float64(ai-bi) / n),
		Total: round2(float64(at+ai-bt-bi) / n), ByTable: map[string]float64{}}
	for _, t := range sizedTables {
		r.ByTable[t] = round2(float64(after[t].Table+after[t].Indexes-before[t].Table-before[t].Indexes) / n)
	}
	if kind == "sqlite" {
		r.Note = "dbstat pages of the b-trees (free pages and the WAL not counted)"
	} else {
		r.Note = "pg_table_size + pg_indexes_size (dead row versions not yet vacuumed are counted, the WAL is not)"
	}
	return r
}

// sizeOrLog measures the size, or logs why it could not (nil).
func (b *benchDB) sizeOrLog(ctx context.Context) DBSize {
	if b == nil {
		return nil
	}
	s, err := b.size(ctx)
	if err != nil {
		logf("database size: %v", err)
		return nil
	}
	return s
}

func (r *BytesPerEvent) String() string {
	if r == nil {
		return "-"
	}
	parts := make([]string, 0, len(sizedTables))
	for _, t := range sizedTables {
		parts = append(parts, fmt.Sprintf("%s %.0f", t, r.ByTable[t]))
	}
	return fmt.Sprintf("%.0f B (rows %.0f + indexes %.0f; %s)", r.Total, r.Table, r.Indexes, strings.Join(parts, ", "))
}
