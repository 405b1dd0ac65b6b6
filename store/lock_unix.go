//go:build unix

package store

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockStartUp makes processes opening one SQLite file take turns from the
// first connection (which may switch a new file to WAL) to the last
// migration: an exclusive flock on the directory that holds the file. Not on
// the file itself: closing any descriptor of the database would drop the POSIX
// locks SQLite holds on it in this process.
func lockStartUp(path string) (unlock func(), err error) {
	dir := filepath.Dir(path)
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("store: lock %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("store: lock %s: %w", dir, err)
	}
	return func() { f.Close() }, nil // closing releases the flock
}
