package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// openSQLiteConn is one connection of the store's SQLite driver to a new file.
func openSQLiteConn(t *testing.T) *sql.Conn {
	t.Helper()
	openSQLite("") // registers the driver
	db, err := sql.Open(sqliteDriverName, sqliteDSN(filepath.Join(t.TempDir(), "t.db")))
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	conn, err := db.Conn(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func synchronous(t *testing.T, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) int {
	t.Helper()
	var level int
	require.NoError(t, q.QueryRowContext(context.Background(), "PRAGMA synchronous").Scan(&level))
	return level
}

// TestRelaxedCommitIsOneTransactionOnly: a relaxed transaction runs with
// synchronous=NORMAL (1), and the connection is back to FULL (2) after its
// commit or rollback, so a publish that reuses the connection still syncs.
func TestRelaxedCommitIsOneTransactionOnly(t *testing.T) {
	conn := openSQLiteConn(t)
	ctx := context.Background()
	require.Equal(t, 2, synchronous(t, conn))

	for _, end := range []string{"commit", "rollback"} {
		tx, err := conn.BeginTx(withRelaxedCommit(ctx), nil)
		require.NoError(t, err)
		require.Equal(t, 1, synchronous(t, tx), end)
		if end == "commit" {
			require.NoError(t, tx.Commit())
		} else {
			require.NoError(t, tx.Rollback())
		}
		require.Equal(t, 2, synchronous(t, conn), "after "+end)
	}

	tx, err := conn.BeginTx(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, 2, synchronous(t, tx), "an ordinary transaction")
	require.NoError(t, tx.Rollback())
}

// TestStatementCache: a statement whose rows are open runs again unprepared
// beside them, and past the cache's bound the evicted statements still give
// their own answers.
func TestStatementCache(t *testing.T) {
	conn := openSQLiteConn(t)
	ctx := context.Background()
	_, err := conn.ExecContext(ctx, "CREATE TABLE n (v INTEGER)")
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, "INSERT INTO n VALUES (1), (2), (3)")
	require.NoError(t, err)

	const q = "SELECT v * ? FROM n ORDER BY v"
	outer, err := conn.QueryContext(ctx, q, 10)
	require.NoError(t, err)
	var got []int
	for outer.Next() {
		var v, inner int
		require.NoError(t, outer.Scan(&v))
		require.NoError(t, conn.QueryRowContext(ctx, q, 100).Scan(&inner))
		got = append(got, v, inner)
	}
	require.NoError(t, outer.Err())
	require.NoError(t, outer.Close())
	require.Equal(t, []int{10, 100, 20, 100, 30, 100}, got)

	for i := range 2 * stmtCacheSize {
		var v int
		require.NoError(t, conn.QueryRowContext(ctx, fmt.Sprintf("SELECT %d + ?", i), 1).Scan(&v))
		require.Equal(t, i+1, v)
	}
	var v int
	require.NoError(t, conn.QueryRowContext(ctx, q, 2).Scan(&v))
	require.Equal(t, 2, v)
}
