// Package auth is hookferry's identity: bearer tokens, the principal a token
// resolves to, and the permissions it carries.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Permission grants a family of operations.
type Permission string

// The permissions a token can carry.
const (
	PermissionWebhookManagement Permission = "WEBHOOK_MANAGEMENT"
	PermissionEventsPublish     Permission = "EVENTS_PUBLISH"
	// PermissionPortalSessions mints portal sessions for the tenant's users;
	// a tenant's backend holds it.
	PermissionPortalSessions Permission = "PORTAL_SESSIONS"
)

// ParsePermission accepts the name of a known permission.
func ParsePermission(s string) (Permission, error) {
	// Fold ASCII only: strings.ToUpper would take look-alikes such as "ſ" for "S".
	upper := []byte(strings.TrimSpace(s))
	for i, c := range upper {
		if 'a' <= c && c <= 'z' {
			upper[i] = c - 'a' + 'A'
		}
	}
	switch p := Permission(upper); p {
	case PermissionWebhookManagement, PermissionEventsPublish, PermissionPortalSessions:
		return p, nil
	}
	return "", fmt.Errorf("unknown permission %q (known: %s, %s, %s)", s, PermissionWebhookManagement, PermissionEventsPublish, PermissionPortalSessions)
}

// Principal is who a request acts for.
type Principal struct {
	TokenID     string
	TenantID    string
	UserID      string
	Permissions []Permission
}

// Can reports whether the principal holds permission p.
func (p Principal) Can(perm Permission) bool { return slices.Contains(p.Permissions, perm) }

type principalKey struct{}

// WithPrincipal returns a context that carries p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal the context carries, if any.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// TokenPrefix starts every token, so that scanners can recognise a leaked one.
const TokenPrefix = "hf_"

var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewToken returns a fresh opaque token: the prefix and 32 random bytes.
func NewToken(random io.Reader) (string, error) {
	if random == nil {
		random = rand.Reader
	}
	b := make([]byte, 32)
	if _, err := io.ReadFull(random, b); err != nil {
		return "", fmt.Errorf("new token: %w", err)
	}
	return TokenPrefix + tokenEncoding.EncodeToString(b), nil
}

// HashToken is what is stored of a token. Tokens carry 256 bits of entropy, so
// one SHA-256 suffices; lookups go by this hash, so a comparison of the secret
// itself never happens and cannot leak timing.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
