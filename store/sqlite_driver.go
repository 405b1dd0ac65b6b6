package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"sync"

	"github.com/glebarez/sqlite"
	"gorm.io/gorm"
)

// sqliteDriverName is the SQLite driver with transactions that take the write
// lock when they begin. The driver's own _txlock=immediate is ignored when
// _time_format is set too (it stops reading the DSN there), and a deferred
// transaction that reads, then writes after another process wrote, fails at
// once with SQLITE_BUSY instead of waiting busy_timeout for the lock.
const sqliteDriverName = "hookferry-sqlite"

var registerSQLite sync.Once

// openSQLite is the gorm dialector of the SQLite database at path.
func openSQLite(path string) gorm.Dialector {
	registerSQLite.Do(func() {
		db, err := sql.Open(sqlite.DriverName, "")
		if err != nil {
			panic(err) // sql.Open only looks the driver up
		}
		sql.Register(sqliteDriverName, immediateDriver{db.Driver()})
		_ = db.Close()
	})
	return &sqlite.Dialector{DriverName: sqliteDriverName, DSN: sqliteDSN(path)}
}

type immediateDriver struct{ driver.Driver }

func (d immediateDriver) Open(name string) (driver.Conn, error) {
	c, err := d.Driver.Open(name)
	if err != nil {
		return nil, err
	}
	sc, ok := c.(sqliteConn)
	if !ok {
		_ = c.Close()
		return nil, errNotSQLiteConn
	}
	return immediateConn{sc}, nil
}

var errNotSQLiteConn = errors.New("store: the SQLite driver's connections lack the context methods")

// sqliteConn is what the driver's connections implement.
type sqliteConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
}

type immediateConn struct{ sqliteConn }

// BeginTx begins read-write transactions with BEGIN IMMEDIATE, which waits
// busy_timeout for another process's write to finish.
func (c immediateConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if opts.ReadOnly {
		return c.sqliteConn.BeginTx(ctx, opts)
	}
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE", nil); err != nil {
		return nil, err
	}
	return immediateTx{c}, nil
}

type immediateTx struct{ c immediateConn }

func (t immediateTx) Commit() error {
	_, err := t.c.ExecContext(context.Background(), "COMMIT", nil)
	return err
}

func (t immediateTx) Rollback() error {
	_, err := t.c.ExecContext(context.Background(), "ROLLBACK", nil)
	return err
}
