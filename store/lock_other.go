//go:build !unix

package store

import (
	"context"
	"database/sql"
)

// sqliteLocker does not lock where flock is missing: start one process first.
type sqliteLocker struct{ path string }

func (sqliteLocker) SessionLock(context.Context, *sql.Conn) error   { return nil }
func (sqliteLocker) SessionUnlock(context.Context, *sql.Conn) error { return nil }
