package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hookferry/hookferry/auth"
	"github.com/hookferry/hookferry/store"
)

func tokenCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("token needs a subcommand: create, list or revoke")
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("token "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	e := &envFlags{fs: fs}
	var databaseURL, tenant, user string
	var perms stringList
	databaseFlag(e, &databaseURL)
	if sub == "create" {
		fs.StringVar(&tenant, "tenant", "", "tenant id (required)")
		fs.StringVar(&user, "user", "", "user id (required)")
		fs.Var(&perms, "permission", "WEBHOOK_MANAGEMENT or EVENTS_PUBLISH; repeat for several (at least one)")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	open := func() (*store.Store, error) { return store.Open(ctx, databaseURL, store.Options{}) }
	switch sub {
	case "create":
		return tokenCreate(ctx, open, fs, tenant, user, perms, stdout)
	case "list":
		if fs.NArg() > 0 {
			return usagef("token list takes no arguments")
		}
		return tokenList(ctx, open, stdout)
	case "revoke":
		if fs.NArg() != 1 {
			return usagef("token revoke needs one ID_OR_TOKEN")
		}
		return tokenRevoke(ctx, open, fs.Arg(0), stdout)
	default:
		return usagef("unknown token subcommand %q (create, list, revoke)", sub)
	}
}

func tokenCreate(ctx context.Context, open func() (*store.Store, error), fs *flag.FlagSet, tenant, user string, names []string, stdout io.Writer) error {
	switch {
	case fs.NArg() > 0:
		return usagef("unexpected argument %q", fs.Arg(0))
	case strings.TrimSpace(tenant) == "" || strings.TrimSpace(user) == "":
		return usagef("--tenant and --user are required")
	case len(tenant) > 255 || len(user) > 255:
		return usagef("--tenant and --user are at most 255 bytes")
	case len(names) == 0:
		return usagef("at least one --permission is required (WEBHOOK_MANAGEMENT, EVENTS_PUBLISH)")
	}
	var perms []auth.Permission
	for _, n := range names {
		p, err := auth.ParsePermission(n)
		if err != nil {
			return usageError{err}
		}
		if !slices.Contains(perms, p) {
			perms = append(perms, p)
		}
	}
	st, err := open()
	if err != nil {
		return err
	}
	defer st.Close()
	_, secret, err := st.CreateToken(ctx, tenant, user, perms)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, secret)
	return err
}

func tokenList(ctx context.Context, open func() (*store.Store, error), stdout io.Writer) error {
	st, err := open()
	if err != nil {
		return err
	}
	defer st.Close()
	tokens, err := st.ListTokens(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTENANT\tUSER\tPERMISSIONS\tCREATED\tREVOKED")
	for _, t := range tokens {
		perms := make([]string, len(t.Permissions))
		for i, p := range t.Permissions {
			perms[i] = string(p)
		}
		revoked := "-"
		if t.RevokedAt != nil {
			revoked = t.RevokedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.TenantID, t.UserID, strings.Join(perms, ","), t.CreatedAt.Format(time.RFC3339), revoked)
	}
	return tw.Flush()
}

func tokenRevoke(ctx context.Context, open func() (*store.Store, error), idOrToken string, stdout io.Writer) error {
	st, err := open()
	if err != nil {
		return err
	}
	defer st.Close()
	t, err := st.RevokeToken(ctx, idOrToken)
	if errors.Is(err, store.ErrNotFound) {
		return errors.New("no token has this id or value")
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "revoked %s (tenant %s, user %s)\n", t.ID, t.TenantID, t.UserID)
	return err
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }
