package store

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
)

// Location is a parsed HOOKFERRY_DATABASE_URL.
type Location struct {
	// Postgres is true for postgres:// and postgresql:// URLs.
	Postgres bool
	// Path is the SQLite file, as given.
	Path string
	// URL is the PostgreSQL URL, password included: never print it.
	URL string
}

// ErrBadDatabaseURL is a HOOKFERRY_DATABASE_URL of none of the accepted forms.
var ErrBadDatabaseURL = errors.New("HOOKFERRY_DATABASE_URL must be sqlite:PATH, file:PATH, postgres://… or postgresql://… (unset: the SQLite file hookferry.db)")

// ParseDatabaseURL reads a database URL: "" is the SQLite file hookferry.db;
// "sqlite:PATH" and "file:PATH" a SQLite file; "postgres://…" and
// "postgresql://…" PostgreSQL. Anything else is ErrBadDatabaseURL. Errors
// never hold the password.
func ParseDatabaseURL(raw string) (Location, error) {
	switch {
	case raw == "":
		return Location{Path: DefaultSQLitePath}, nil
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		u, err := url.Parse(raw)
		if err != nil {
			// url's errors quote the input: say only where it failed.
			return Location{}, fmt.Errorf("%w: the PostgreSQL URL does not parse (an escape such as %%zz, or a bad port?)", ErrBadDatabaseURL)
		}
		if u.Host == "" && u.Query().Get("host") == "" {
			return Location{}, fmt.Errorf("%w: the PostgreSQL URL names no host", ErrBadDatabaseURL)
		}
		return Location{Postgres: true, URL: raw}, nil
	}
	var path string
	switch {
	case strings.HasPrefix(raw, "sqlite://"):
		path = strings.TrimPrefix(raw, "sqlite://")
	case strings.HasPrefix(raw, "sqlite:"):
		path = strings.TrimPrefix(raw, "sqlite:")
	case strings.HasPrefix(raw, "file:"):
		path = strings.TrimPrefix(raw, "file:")
	default:
		return Location{}, ErrBadDatabaseURL
	}
	path, _, _ = strings.Cut(path, "?")
	if path == "" {
		return Location{}, fmt.Errorf("%w: the SQLite path is empty", ErrBadDatabaseURL)
	}
	return Location{Path: path}, nil
}

// String describes the location for logs: the SQLite path, or the PostgreSQL
// host, port and database (never user or password).
func (l Location) String() string {
	if !l.Postgres {
		if abs, err := filepath.Abs(l.Path); err == nil {
			return "sqlite " + abs
		}
		return "sqlite " + l.Path
	}
	u, err := url.Parse(l.URL)
	if err != nil {
		return "postgres"
	}
	host := u.Host
	if host == "" {
		host = u.Query().Get("host")
	}
	return "postgres " + host + "/" + strings.TrimPrefix(u.Path, "/")
}
