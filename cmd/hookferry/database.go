package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hookferry/hookferry/keyring"
	"github.com/hookferry/hookferry/store"
)

// storeFlags are the settings of every command that opens the database.
type storeFlags struct {
	DatabaseURL        string `name:"database-url" env:"HOOKFERRY_DATABASE_URL" placeholder:"URL" help:"The database: sqlite:PATH, file:PATH, postgres://… or postgresql://…; unset means the SQLite file hookferry.db in the working directory."`
	EncryptionKeysFile string `name:"encryption-keys-file" env:"HOOKFERRY_ENCRYPTION_KEYS_FILE" placeholder:"PATH" help:"File of the base64 keys that encrypt the webhooks' signing secrets, one a line, the first encrypts (or set HOOKFERRY_ENCRYPTION_KEYS to a comma list of keys; never both). Unset on SQLite: hookferry.key beside the database, created on first use."`
	Migrate            bool   `name:"migrate" env:"HOOKFERRY_MIGRATE" default:"true" negatable:"" help:"Apply pending schema migrations on start; --no-migrate (false) refuses to run on a schema that is behind instead."`
}

// errPostgresNeedsKey is PostgreSQL without a key: there is no safe place to
// make one on our own.
var errPostgresNeedsKey = usagef("PostgreSQL needs an encryption key for the webhooks' signing secrets: " +
	"make one with `hookferry keys generate`, keep it safe, and set HOOKFERRY_ENCRYPTION_KEYS to it " +
	"(or HOOKFERRY_ENCRYPTION_KEYS_FILE to a file that holds it)")

// keyFileName is the key file made beside a SQLite database that has no key configured.
const keyFileName = "hookferry.key"

// resolvedKeys is the keyring and where it came from.
type resolvedKeys struct {
	Keys *keyring.Keyring
	// File is the key file read or created; "" when the keys came from the environment.
	File string
	// Created is true when this call made File.
	Created bool
	// ExistingDatabase is true when File was made beside a database that already existed.
	ExistingDatabase bool
}

// resolveKeys finds the keyring of the database at loc: the comma list, else
// the file, else (SQLite only) hookferry.key beside the database file,
// created on first use.
func resolveKeys(loc store.Location, list, file string) (resolvedKeys, error) {
	switch {
	case list != "" && file != "":
		return resolvedKeys{}, usagef("set HOOKFERRY_ENCRYPTION_KEYS or HOOKFERRY_ENCRYPTION_KEYS_FILE, not both")
	case list != "":
		k, err := keyring.Parse(list)
		if err != nil {
			return resolvedKeys{}, usageError{fmt.Errorf("HOOKFERRY_ENCRYPTION_KEYS: %w", err)}
		}
		return resolvedKeys{Keys: k}, nil
	case file != "":
		k, err := keyring.LoadFile(file)
		if err != nil {
			return resolvedKeys{}, usageError{fmt.Errorf("HOOKFERRY_ENCRYPTION_KEYS_FILE: %w", err)}
		}
		return resolvedKeys{Keys: k, File: file}, nil
	case loc.Postgres:
		return resolvedKeys{}, errPostgresNeedsKey
	}
	path := filepath.Join(filepath.Dir(loc.Path), keyFileName)
	created, err := createKeyFile(path)
	if err != nil {
		return resolvedKeys{}, err
	}
	k, err := keyring.LoadFile(path)
	if err != nil {
		return resolvedKeys{}, err
	}
	r := resolvedKeys{Keys: k, File: path, Created: created}
	if created {
		_, statErr := os.Stat(loc.Path)
		r.ExistingDatabase = statErr == nil
	}
	return r, nil
}

// createKeyFile makes path with a new key, mode 0600, unless it exists. The
// key is written to a temporary file first and then linked into place: the
// link, like O_EXCL, fails when path exists, so of two processes starting at
// once exactly one creates the key and the other reads that same key, never
// a half-written file.
func createKeyFile(path string) (created bool, err error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	}
	key, err := keyring.Generate(nil)
	if err != nil {
		return false, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+keyFileName+".*")
	if err != nil {
		return false, fmt.Errorf("create the key file %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file 0600; Chmod states it rather than relying on that.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return false, fmt.Errorf("create the key file %s: %w", path, err)
	}
	_, err = io.WriteString(tmp, "# hookferry encryption key: back it up with the database; without it the webhooks' signing secrets cannot be read.\n"+key+"\n")
	if err == nil {
		err = tmp.Sync()
	}
	if closeErr := tmp.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return false, fmt.Errorf("create the key file %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil // another process made it meanwhile: use theirs
		}
		return false, fmt.Errorf("create the key file %s: %w", path, err)
	}
	return true, nil
}

// parseLocation reads the database URL before anything is created; a bad one
// is a usage error that names the accepted forms, never the password.
func parseLocation(databaseURL string) (store.Location, error) {
	loc, err := store.ParseDatabaseURL(databaseURL)
	if err != nil {
		return store.Location{}, usageError{err}
	}
	return loc, nil
}

func (f *storeFlags) migrateMode() store.MigrateMode {
	if f.Migrate {
		return store.MigrateApply
	}
	return store.MigrateRequire
}

// encryptionKeys is HOOKFERRY_ENCRYPTION_KEYS, read from the environment only.
func encryptionKeys() string {
	v, _ := lookupEnv("HOOKFERRY_ENCRYPTION_KEYS")
	return v
}

// with runs use on the store of a CLI command, opened as HOOKFERRY_MIGRATE says.
func (f *storeFlags) with(ctx context.Context, out console, use func(*store.Store) error) error {
	st, err := f.open(ctx, out, f.migrateMode())
	if err != nil {
		return err
	}
	defer st.Close()
	return use(st)
}

// open opens the store for a CLI command: the URL is checked, the keys
// resolved (a key file made on the way is reported on stderr), then the store
// opened with mode.
func (f *storeFlags) open(ctx context.Context, out console, mode store.MigrateMode) (*store.Store, error) {
	loc, err := parseLocation(f.DatabaseURL)
	if err != nil {
		return nil, err
	}
	keys, err := resolveKeys(loc, encryptionKeys(), f.EncryptionKeysFile)
	if err != nil {
		return nil, err
	}
	if keys.Created {
		fmt.Fprintf(out.stderr, "hookferry: created the encryption key file %s; back it up with the database\n", keys.File)
	}
	return store.Open(ctx, f.DatabaseURL, store.Options{Keys: keys.Keys, Migrate: mode})
}
