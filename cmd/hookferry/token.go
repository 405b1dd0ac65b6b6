package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hookferry/hookferry/auth"
	"github.com/hookferry/hookferry/store"
)

// tokenCmd is `hookferry token`.
type tokenCmd struct {
	Create tokenCreateCmd `cmd:"" help:"Create an API token; prints it alone on stdout (only its hash is stored)."`
	List   tokenListCmd   `cmd:"" help:"List the tokens (never the tokens themselves)."`
	Revoke tokenRevokeCmd `cmd:"" help:"Revoke a token by its id or by the token."`
}

type tokenCreateCmd struct {
	Tenant     string   `required:"" placeholder:"T" help:"Tenant id (at most 255 bytes)."`
	User       string   `required:"" placeholder:"U" help:"User id (at most 255 bytes)."`
	Permission []string `required:"" placeholder:"P" help:"WEBHOOK_MANAGEMENT, EVENTS_PUBLISH or PORTAL_SESSIONS; repeat for several."`
}

func (c *tokenCreateCmd) Validate() error {
	switch {
	case strings.TrimSpace(c.Tenant) == "" || strings.TrimSpace(c.User) == "":
		return usagef("--tenant and --user must not be blank")
	case len(c.Tenant) > 255 || len(c.User) > 255:
		return usagef("--tenant and --user are at most 255 bytes")
	}
	for _, n := range c.Permission {
		if _, err := auth.ParsePermission(n); err != nil {
			return usageError{err}
		}
	}
	return nil
}

func (c *tokenCreateCmd) Run(ctx context.Context, out console, db *storeFlags) error {
	var perms []auth.Permission
	for _, n := range c.Permission {
		p, err := auth.ParsePermission(n)
		if err != nil {
			return usageError{err}
		}
		if !slices.Contains(perms, p) {
			perms = append(perms, p)
		}
	}
	return db.with(ctx, out, func(st *store.Store) error {
		_, secret, err := st.CreateToken(ctx, c.Tenant, c.User, perms)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(out.stdout, secret)
		return err
	})
}

type tokenListCmd struct{}

func (tokenListCmd) Run(ctx context.Context, out console, db *storeFlags) error {
	return db.with(ctx, out, func(st *store.Store) error {
		tokens, err := st.ListTokens(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTENANT\tUSER\tPERMISSIONS\tCREATED\tREVOKED\tEXPIRES")
		for _, t := range tokens {
			perms := make([]string, len(t.Permissions))
			for i, p := range t.Permissions {
				perms[i] = string(p)
			}
			revoked := "-"
			if t.RevokedAt != nil {
				revoked = t.RevokedAt.Format(time.RFC3339)
			}
			expires := "-" // a portal session's token expires; others never do
			if t.ExpiresAt != nil {
				expires = t.ExpiresAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.TenantID, t.UserID, strings.Join(perms, ","), t.CreatedAt.Format(time.RFC3339), revoked, expires)
		}
		return tw.Flush()
	})
}

type tokenRevokeCmd struct {
	IDOrToken string `arg:"" name:"id-or-token" placeholder:"ID_OR_TOKEN" help:"The token's id (tok_…) or the token itself (hf_…)."`
}

func (c *tokenRevokeCmd) Run(ctx context.Context, out console, db *storeFlags) error {
	return db.with(ctx, out, func(st *store.Store) error {
		t, err := st.RevokeToken(ctx, c.IDOrToken)
		if errors.Is(err, store.ErrNotFound) {
			return errors.New("no token has this id or value")
		}
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out.stdout, "revoked %s (tenant %s, user %s)\n", t.ID, t.TenantID, t.UserID)
		return err
	})
}
