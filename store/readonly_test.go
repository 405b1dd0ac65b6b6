package store_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/stretchr/testify/require"
)

// TestStartRefusesWhatCannotBeWritten: a missing directory, a read-only
// SQLite file (immutable, so that it holds even for root) and a read-only
// PostgreSQL database stop start-up with a message naming the cause; Ready
// fails on a database that stops taking writes.
func TestStartRefusesWhatCannotBeWritten(t *testing.T) {
	t.Parallel()
	t.Run("missing directory", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "nonexistent")
		_, err := store.Open(ctx, "sqlite:"+dir+"/x.db", store.Options{Keys: storetest.Keys()})
		require.ErrorContains(t, err, "directory "+dir+" of the SQLite database does not exist")
	})
	t.Run("read-only sqlite", func(t *testing.T) {
		t.Parallel()
		url := storetest.SQLiteURL(t)
		path := strings.TrimPrefix(url, "sqlite:")
		st, err := store.Open(ctx, url, store.Options{Keys: storetest.Keys()})
		require.NoError(t, err)
		require.NoError(t, st.Close())
		out, err := exec.Command("chattr", "+i", path).CombinedOutput()
		require.NoError(t, err, "chattr +i (e2fsprogs) makes the file read-only even for root: %s", out)
		t.Cleanup(func() { _ = exec.Command("chattr", "-i", path).Run() })
		_, err = store.Open(ctx, url, store.Options{Keys: storetest.Keys()})
		require.ErrorContains(t, err, "read-only")
	})
	t.Run("read-only postgres", func(t *testing.T) {
		t.Parallel()
		url := storetest.PostgresDatabase(t)
		st, err := store.Open(ctx, url, store.Options{Keys: storetest.Keys(), MaxOpenConns: 1})
		require.NoError(t, err)
		defer st.Close()
		require.NoError(t, st.Ready(ctx))
		db := rawDB(t, url)
		_, err = db.Exec("ALTER DATABASE " + filepath.Base(strings.Split(url, "?")[0]) + " SET default_transaction_read_only = on")
		require.NoError(t, err)
		// The store's connection starts afresh, read-only.
		_, err = db.Exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
		require.NoError(t, err)
		_ = st.Ready(ctx) // may meet the terminated connection first
		require.ErrorContains(t, st.Ready(ctx), "read-only")
		_, err = store.Open(ctx, url, store.Options{Keys: storetest.Keys()})
		require.ErrorContains(t, err, "does not accept writes")
	})
}
