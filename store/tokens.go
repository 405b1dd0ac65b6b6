package store

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/hookferry/hookferry/auth"
	"github.com/hookferry/hookferry/webhook"
	"gorm.io/gorm"
)

// Token is what is known of a token: never the token itself.
type Token struct {
	ID          string
	TenantID    string
	UserID      string
	Permissions []auth.Permission
	CreatedAt   time.Time
	RevokedAt   *time.Time
	ExpiresAt   *time.Time // nil: never
}

// CreateToken makes a new token for (tenant, user) with perms and stores only
// its hash. The token is returned once, here.
func (s *Store) CreateToken(ctx context.Context, tenantID, userID string, perms []auth.Permission) (_ Token, secret string, err error) {
	defer wrap(&err, "store.CreateToken(%s/%s)", tenantID, userID)
	return s.createToken(ctx, tenantID, userID, perms, nil)
}

// CreateExpiringToken is CreateToken for a token that Authenticate refuses
// from expiresAt on, such as a portal session's.
func (s *Store) CreateExpiringToken(ctx context.Context, tenantID, userID string, perms []auth.Permission, expiresAt time.Time) (_ Token, secret string, err error) {
	defer wrap(&err, "store.CreateExpiringToken(%s/%s)", tenantID, userID)
	at := expiresAt.UTC().Truncate(time.Microsecond)
	return s.createToken(ctx, tenantID, userID, perms, &at)
}

func (s *Store) createToken(ctx context.Context, tenantID, userID string, perms []auth.Permission, expiresAt *time.Time) (_ Token, secret string, err error) {
	id, err := webhook.NewID("tok", s.random)
	if err != nil {
		return Token{}, "", err
	}
	secret, err = auth.NewToken(s.random)
	if err != nil {
		return Token{}, "", err
	}
	names := make([]string, len(perms))
	for i, p := range perms {
		names[i] = string(p)
	}
	row := tokenRow{
		ID: id, Hash: auth.HashToken(secret), TenantID: tenantID, UserID: userID,
		Permissions: strings.Join(names, ","), CreatedAt: s.clock(), ExpiresAt: expiresAt,
	}
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		return Token{}, "", err
	}
	return row.toToken(), secret, nil
}

// tokenCacheTTL is how long a resolved token is trusted without asking the
// database again. Revocations do not wait for it: they clear the cache of
// every process (see revisions).
const tokenCacheTTL = 30 * time.Second

// tokenCacheSize bounds the cache; when full it starts over.
const tokenCacheSize = 10000

type tokenCache struct {
	mu      sync.Mutex
	entries map[string]cachedToken // by token hash
}

type cachedToken struct {
	principal auth.Principal
	until     time.Time
}

func (c *tokenCache) clear() {
	c.mu.Lock()
	c.entries = nil
	c.mu.Unlock()
}

// Authenticate resolves a bearer token to its principal, or ErrTokenUnauthorized.
// Tokens found are cached for tokenCacheTTL, never past their expiry: every
// request carries one, and the lookup would otherwise be a query per request. A
// revocation by any process clears the cache before the next request is
// answered (Sync). An expired token is refused like a revoked one.
func (s *Store) Authenticate(ctx context.Context, secret string) (_ auth.Principal, err error) {
	if err := s.Sync(ctx); err != nil {
		return auth.Principal{}, err
	}
	hash := auth.HashToken(secret)
	now := s.now()
	s.tokens.mu.Lock()
	if e, ok := s.tokens.entries[hash]; ok && now.Before(e.until) {
		s.tokens.mu.Unlock()
		return e.principal, nil
	}
	s.tokens.mu.Unlock()
	var row tokenRow
	err = s.db.WithContext(ctx).
		Where("hash = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)", hash, now.UTC()).
		Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return auth.Principal{}, ErrTokenUnauthorized
	}
	if err != nil {
		return auth.Principal{}, err
	}
	t := row.toToken()
	p := auth.Principal{TokenID: t.ID, TenantID: t.TenantID, UserID: t.UserID, Permissions: t.Permissions}
	s.tokens.mu.Lock()
	if s.tokens.entries == nil || len(s.tokens.entries) >= tokenCacheSize {
		s.tokens.entries = make(map[string]cachedToken)
	}
	until := now.Add(tokenCacheTTL)
	if t.ExpiresAt != nil && t.ExpiresAt.Before(until) {
		until = *t.ExpiresAt
	}
	s.tokens.entries[hash] = cachedToken{principal: p, until: until}
	s.tokens.mu.Unlock()
	return p, nil
}

// HasTokens reports whether any token exists (revoked or not).
func (s *Store) HasTokens(ctx context.Context) (bool, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&tokenRow{}).Limit(1).Count(&n).Error
	return n > 0, err
}

// ListTokens returns every token, oldest first.
func (s *Store) ListTokens(ctx context.Context) (_ []Token, err error) {
	defer wrap(&err, "store.ListTokens")
	var rows []tokenRow
	if err := s.db.WithContext(ctx).Order("created_at, id").Find(&rows).Error; err != nil {
		return nil, err
	}
	out := make([]Token, len(rows))
	for i, r := range rows {
		out[i] = r.toToken()
	}
	return out, nil
}

// RevokeToken revokes the token whose id, or whose secret, is idOrSecret.
// Revoking a revoked token changes nothing; an unknown one is ErrNotFound.
func (s *Store) RevokeToken(ctx context.Context, idOrSecret string) (_ Token, err error) {
	defer wrap(&err, "store.RevokeToken")
	var row tokenRow
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("id = ? OR hash = ?", idOrSecret, auth.HashToken(idOrSecret)).Take(&row).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return ErrNotFound
			}
			return err
		}
		if row.RevokedAt != nil {
			return nil
		}
		now := s.clock()
		row.RevokedAt = &now
		if err := tx.Model(&tokenRow{ID: row.ID}).Update("revoked_at", now).Error; err != nil {
			return err
		}
		return s.bumpRevision(tx)
	})
	return row.toToken(), err
}

func (r tokenRow) toToken() Token {
	t := Token{ID: r.ID, TenantID: r.TenantID, UserID: r.UserID, CreatedAt: r.CreatedAt.UTC(), RevokedAt: utcPtr(r.RevokedAt), ExpiresAt: utcPtr(r.ExpiresAt)}
	for _, p := range strings.Split(r.Permissions, ",") {
		if p != "" {
			t.Permissions = append(t.Permissions, auth.Permission(p))
		}
	}
	return t
}
