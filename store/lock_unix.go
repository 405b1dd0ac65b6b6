//go:build unix

package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// sqliteLocker serialises the migrations of processes opening one SQLite file
// at once: an exclusive flock on the directory that holds it. Not on the file
// itself: closing any descriptor of the database would drop the POSIX locks
// SQLite holds on it in this process.
type sqliteLocker struct{ path string }

var sqliteLocks sync.Map // directory -> *os.File, while locked

func (l sqliteLocker) SessionLock(ctx context.Context, _ *sql.Conn) error {
	dir := filepath.Dir(l.path)
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return fmt.Errorf("lock %s: %w", dir, err)
	}
	sqliteLocks.Store(l.path, f)
	return nil
}

func (l sqliteLocker) SessionUnlock(context.Context, *sql.Conn) error {
	v, ok := sqliteLocks.LoadAndDelete(l.path)
	if !ok {
		return nil
	}
	return v.(*os.File).Close() // closing releases the flock
}
