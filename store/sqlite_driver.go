package store

import (
	"container/list"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"reflect"
	"sync"

	"modernc.org/sqlite"
)

// sqliteDriverName is the SQLite driver (modernc.org/sqlite, pure Go) with
// two things added to its connections:
//
//   - transactions that take the write lock when they begin (BEGIN
//     IMMEDIATE): a deferred transaction that reads, then writes after
//     another process wrote, fails at once with SQLITE_BUSY instead of
//     waiting busy_timeout for the lock;
//   - a cache of prepared statements by SQL text, because the driver
//     compiles every statement it is not given prepared, and compiling was
//     a fifth of the server's CPU under load;
//
// and one switch, relaxedCommit, that lets a transaction commit without
// syncing the disk.
const sqliteDriverName = "hookferry-sqlite"

var registerSQLite sync.Once

// openSQLite is the gorm dialector of the SQLite database at path.
func openSQLite(path string) sqliteGorm {
	registerSQLite.Do(func() {
		sql.Register(sqliteDriverName, cachingDriver{&sqlite.Driver{}})
	})
	return sqliteGorm{driverName: sqliteDriverName, dsn: sqliteDSN(path)}
}

type cachingDriver struct{ driver.Driver }

func (d cachingDriver) Open(name string) (driver.Conn, error) {
	c, err := d.Driver.Open(name)
	if err != nil {
		return nil, err
	}
	sc, ok := c.(sqliteConn)
	if !ok {
		_ = c.Close()
		return nil, errNotSQLiteConn
	}
	return &cachingConn{sqliteConn: sc, stmts: map[string]*list.Element{}, lru: list.New()}, nil
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

// sqliteStmt is what the driver's statements implement.
type sqliteStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

// stmtCacheSize bounds the prepared statements one connection keeps: the
// statements of the store are a few dozen texts, and the batches' VALUES
// lists of each length add one each.
const stmtCacheSize = 256

// relaxedCommit marks the context of a transaction whose commit need not
// wait for the disk: it begins with synchronous=NORMAL (in WAL mode a crash
// of the machine may lose the transaction, never corrupt the file, and the
// next synced commit persists it too; SQLite refuses the change inside a
// transaction), and its end restores synchronous=FULL.
type relaxedCommit struct{}

func withRelaxedCommit(ctx context.Context) context.Context {
	return context.WithValue(ctx, relaxedCommit{}, true)
}

// cachingConn is one connection; database/sql uses it from one goroutine at
// a time.
type cachingConn struct {
	sqliteConn
	stmts   map[string]*list.Element // of *cachedStmt, by SQL text
	lru     *list.List               // most recently used first
	relaxed bool                     // this transaction commits with synchronous=NORMAL
}

type cachedStmt struct {
	query string
	stmt  sqliteStmt
	busy  bool // rows of it are open: a second use would reset them
}

// prepared is the cached statement of query, prepared now if need be; nil
// when it is in use (the caller then runs query unprepared).
func (c *cachingConn) prepared(ctx context.Context, query string) (*cachedStmt, error) {
	if e, ok := c.stmts[query]; ok {
		cs := e.Value.(*cachedStmt)
		if cs.busy {
			return nil, nil
		}
		c.lru.MoveToFront(e)
		return cs, nil
	}
	st, err := c.sqliteConn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	ss, ok := st.(sqliteStmt)
	if !ok {
		_ = st.Close()
		return nil, errNotSQLiteConn
	}
	cs := &cachedStmt{query: query, stmt: ss}
	c.stmts[query] = c.lru.PushFront(cs)
	for c.lru.Len() > stmtCacheSize {
		c.evict(c.lru.Back())
	}
	return cs, nil
}

func (c *cachingConn) evict(e *list.Element) {
	cs := e.Value.(*cachedStmt)
	c.lru.Remove(e)
	delete(c.stmts, cs.query)
	if !cs.busy { // else the rows close it
		_ = cs.stmt.Close()
	}
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	cs, err := c.prepared(ctx, query)
	if err != nil || cs == nil {
		return c.sqliteConn.ExecContext(ctx, query, args)
	}
	return cs.stmt.ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	cs, err := c.prepared(ctx, query)
	if err != nil || cs == nil {
		return c.sqliteConn.QueryContext(ctx, query, args)
	}
	rows, err := cs.stmt.QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	cs.busy = true
	return &cachedRows{Rows: rows, release: func() {
		cs.busy = false
		if _, cached := c.stmts[cs.query]; !cached {
			_ = cs.stmt.Close() // evicted while open
		}
	}}, nil
}

// PrepareContext is database/sql's own preparing, which keeps the statement.
func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.sqliteConn.PrepareContext(ctx, query)
}

func (c *cachingConn) Close() error {
	for e := c.lru.Front(); e != nil; e = e.Next() {
		_ = e.Value.(*cachedStmt).stmt.Close()
	}
	c.stmts, c.lru = map[string]*list.Element{}, list.New()
	return c.sqliteConn.Close()
}

// BeginTx begins read-write transactions with BEGIN IMMEDIATE, which waits
// busy_timeout for another process's write to finish.
func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if opts.ReadOnly {
		return c.sqliteConn.BeginTx(ctx, opts)
	}
	if ctx.Value(relaxedCommit{}) != nil {
		if _, err := c.ExecContext(ctx, "PRAGMA synchronous = NORMAL", nil); err != nil {
			return nil, err
		}
		c.relaxed = true
	}
	tx := immediateTx{c}
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE", nil); err != nil {
		return nil, errors.Join(err, tx.restore())
	}
	return tx, nil
}

type immediateTx struct{ c *cachingConn }

func (t immediateTx) Commit() error { return t.end("COMMIT") }

func (t immediateTx) Rollback() error { return t.end("ROLLBACK") }

func (t immediateTx) end(query string) error {
	_, err := t.c.ExecContext(context.Background(), query, nil)
	return errors.Join(err, t.restore())
}

// restore syncs the next commits again, after a relaxed transaction.
func (t immediateTx) restore() error {
	if !t.c.relaxed {
		return nil
	}
	t.c.relaxed = false
	_, err := t.c.ExecContext(context.Background(), "PRAGMA synchronous = FULL", nil)
	return err
}

// cachedRows are the rows of a cached statement, which is free again when
// they close. The column type methods pass through for database/sql.
type cachedRows struct {
	driver.Rows
	release func()
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	if r.release != nil {
		r.release()
		r.release = nil
	}
	return err
}

func (r *cachedRows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *cachedRows) ColumnTypeScanType(i int) reflect.Type {
	if t, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return t.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}

func (r *cachedRows) ColumnTypeNullable(i int) (nullable, ok bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return t.ColumnTypeNullable(i)
	}
	return false, false
}
