package store

import (
	"database/sql"
	"errors"
	"strconv"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/callbacks"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"
	"gorm.io/gorm/migrator"
	"gorm.io/gorm/schema"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteGorm is GORM's dialect of SQLite over the driver sqliteDriverName:
// what the store's queries need (RETURNING, LIMIT, no row locks, constraint
// errors translated), after github.com/glebarez/sqlite (MIT), whose driver
// re-compiled every statement. The schema comes from the migrations, so the
// migrator is GORM's generic one and never used.
type sqliteGorm struct{ driverName, dsn string }

func (sqliteGorm) Name() string { return "sqlite" }

func (d sqliteGorm) Initialize(db *gorm.DB) error {
	conn, err := sql.Open(d.driverName, d.dsn)
	if err != nil {
		return err
	}
	db.ConnPool = conn
	callbacks.RegisterDefaultCallbacks(db, &callbacks.Config{
		CreateClauses:        []string{"INSERT", "VALUES", "ON CONFLICT", "RETURNING"},
		UpdateClauses:        []string{"UPDATE", "SET", "FROM", "WHERE", "RETURNING"},
		DeleteClauses:        []string{"DELETE", "FROM", "WHERE", "RETURNING"},
		LastInsertIDReversed: true,
	})
	db.ClauseBuilders["LIMIT"] = func(c clause.Clause, b clause.Builder) {
		limit, ok := c.Expression.(clause.Limit)
		if !ok {
			c.Build(b)
			return
		}
		if limit.Limit != nil && *limit.Limit >= 0 {
			b.WriteString("LIMIT " + strconv.Itoa(*limit.Limit))
		} else if limit.Offset > 0 {
			b.WriteString("LIMIT -1")
		}
		if limit.Offset > 0 {
			b.WriteString(" OFFSET " + strconv.Itoa(limit.Offset))
		}
	}
	db.ClauseBuilders["FOR"] = func(c clause.Clause, b clause.Builder) {
		if _, ok := c.Expression.(clause.Locking); ok {
			return // one writer at a time: no row locks
		}
		c.Build(b)
	}
	return nil
}

func (sqliteGorm) DefaultValueOf(field *schema.Field) clause.Expression {
	if field.AutoIncrement {
		return clause.Expr{SQL: "NULL"}
	}
	return clause.Expr{SQL: "DEFAULT"}
}

func (d sqliteGorm) Migrator(db *gorm.DB) gorm.Migrator {
	return migrator.Migrator{Config: migrator.Config{DB: db, Dialector: d}}
}

func (sqliteGorm) BindVarTo(w clause.Writer, _ *gorm.Statement, _ any) { w.WriteByte('?') }

// QuoteTo quotes each dot-separated part of an identifier in backticks.
func (sqliteGorm) QuoteTo(w clause.Writer, s string) {
	for i, part := range strings.Split(s, ".") {
		if i > 0 {
			w.WriteByte('.')
		}
		w.WriteString("`" + strings.ReplaceAll(part, "`", "``") + "`")
	}
}

func (sqliteGorm) Explain(sql string, vars ...any) string {
	return logger.ExplainSQL(sql, nil, `"`, vars...)
}

func (sqliteGorm) DataTypeOf(field *schema.Field) string {
	switch field.DataType {
	case schema.Bool:
		return "numeric"
	case schema.Int, schema.Uint:
		return "integer"
	case schema.Float:
		return "real"
	case schema.String:
		return "text"
	case schema.Time:
		return "datetime"
	case schema.Bytes:
		return "blob"
	}
	return string(field.DataType)
}

func (sqliteGorm) SavePoint(tx *gorm.DB, name string) error {
	return tx.Exec("SAVEPOINT " + name).Error
}

func (sqliteGorm) RollbackTo(tx *gorm.DB, name string) error {
	return tx.Exec("ROLLBACK TO SAVEPOINT " + name).Error
}

// Translate turns constraint errors into GORM's (Config.TranslateError).
func (sqliteGorm) Translate(err error) error {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return err
	}
	switch e.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return gorm.ErrDuplicatedKey
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return gorm.ErrForeignKeyViolated
	}
	return err
}
