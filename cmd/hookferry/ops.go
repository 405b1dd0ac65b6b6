package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hookferry/hookferry/keyring"
	"github.com/hookferry/hookferry/store"
)

// migrateCmd is `hookferry migrate`.
type migrateCmd struct {
	Up     migrateUpCmd     `cmd:"" help:"Apply every pending schema migration (under a lock; safe while other instances run)."`
	Status migrateStatusCmd `cmd:"" help:"Show which schema migrations the database has, without changing anything."`
}

type migrateUpCmd struct{}

func (migrateUpCmd) Run(ctx context.Context, out console, db *storeFlags) error {
	st, err := db.open(ctx, out, store.MigrateApply)
	if err != nil {
		return err
	}
	defer st.Close()
	applied := st.Applied()
	if len(applied) == 0 {
		_, err = fmt.Fprintln(out.stdout, "no pending migrations: the schema is up to date")
		return err
	}
	versions := make([]string, len(applied))
	for i, v := range applied {
		versions[i] = fmt.Sprint(v)
	}
	_, err = fmt.Fprintf(out.stdout, "applied %d migrations: %s\n", len(applied), strings.Join(versions, ", "))
	return err
}

type migrateStatusCmd struct{}

func (migrateStatusCmd) Run(ctx context.Context, out console, db *storeFlags) error {
	if _, err := parseLocation(db.DatabaseURL); err != nil {
		return err
	}
	s, err := store.Status(ctx, db.DatabaseURL)
	if err != nil {
		return err
	}
	pending := 0
	for _, m := range s.Migrations {
		if !m.Applied {
			pending++
		}
	}
	state := "up to date"
	if pending > 0 {
		state = fmt.Sprintf("%d pending; hookferry migrate up applies them", pending)
	}
	fmt.Fprintf(out.stdout, "schema version %d of %d (%s)\n", s.Current, s.Latest, state)
	tw := tabwriter.NewWriter(out.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tNAME\tAPPLIED")
	for _, m := range s.Migrations {
		applied := "pending"
		if m.Applied {
			applied = m.AppliedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\n", m.Version, m.Name, applied)
	}
	return tw.Flush()
}

// pruneCmd is `hookferry prune`.
type pruneCmd struct {
	OlderThan time.Duration `name:"older-than" env:"HOOKFERRY_RETENTION" default:"720h" placeholder:"D" help:"Remove DELIVERED and FAILED deliveries finished longer ago than this, their attempts, and the events left without deliveries; PENDING deliveries stay (default: ${default})."`
}

func (c *pruneCmd) Validate() error {
	if c.OlderThan < 0 {
		return usagef("--older-than must not be negative")
	}
	return nil
}

func (c *pruneCmd) Run(ctx context.Context, out console, db *storeFlags) error {
	if c.OlderThan == 0 {
		// As in serve: a retention of 0 keeps everything.
		_, err := fmt.Fprintln(out.stdout, "the retention is 0 (keep everything): nothing pruned")
		return err
	}
	return db.with(ctx, out, func(st *store.Store) error {
		n, err := st.Prune(ctx, c.OlderThan)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out.stdout, "pruned %d deliveries, %d attempts, %d events\n", n.Deliveries, n.Attempts, n.Events)
		return err
	})
}

// eraseCmd is `hookferry erase`.
type eraseCmd struct {
	Tenant string `required:"" placeholder:"T" help:"The tenant whose data to erase."`
	User   string `placeholder:"U" help:"Only this user's webhooks, deliveries, attempts and tokens; unset erases the whole tenant, its events included."`
}

func (c *eraseCmd) Validate() error {
	if strings.TrimSpace(c.Tenant) == "" {
		return usagef("--tenant must not be blank")
	}
	return nil
}

func (c *eraseCmd) Run(ctx context.Context, out console, db *storeFlags) error {
	return db.with(ctx, out, func(st *store.Store) error {
		n, err := st.Erase(ctx, c.Tenant, c.User)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out.stdout, "erased %d webhooks, %d deliveries, %d attempts, %d tokens, %d events\n",
			n.Webhooks, n.Deliveries, n.Attempts, n.Tokens, n.Events)
		return err
	})
}

// keysCmd is `hookferry keys`.
type keysCmd struct {
	Generate keysGenerateCmd `cmd:"" help:"Print a new random encryption key (base64 of 32 bytes); needs no database."`
	Rotate   keysRotateCmd   `cmd:"" help:"Re-encrypt every webhook signing secret under the first configured key; prints how many."`
}

type keysGenerateCmd struct{}

func (keysGenerateCmd) Run(out console) error {
	key, err := keyring.Generate(nil)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out.stdout, key)
	return err
}

type keysRotateCmd struct{}

func (keysRotateCmd) Run(ctx context.Context, out console, db *storeFlags) error {
	return db.with(ctx, out, func(st *store.Store) error {
		n, err := st.RotateKeys(ctx)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out.stdout, "re-encrypted %d secrets under the first key\n", n)
		return err
	})
}
