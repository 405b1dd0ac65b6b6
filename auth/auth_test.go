package auth_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"

	"github.com/hookferry/hookferry/auth"
)

func TestParsePermission(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want auth.Permission
	}{
		{"WEBHOOK_MANAGEMENT", auth.PermissionWebhookManagement},
		{"webhook_management", auth.PermissionWebhookManagement},
		{"Webhook_Management", auth.PermissionWebhookManagement},
		{"  WEBHOOK_MANAGEMENT\n", auth.PermissionWebhookManagement},
		{"EVENTS_PUBLISH", auth.PermissionEventsPublish},
		{"events_publish", auth.PermissionEventsPublish},
		{"eVeNtS_pUbLiSh", auth.PermissionEventsPublish},
		{"\tevents_publish ", auth.PermissionEventsPublish},
		{"PORTAL_SESSIONS", auth.PermissionPortalSessions},
		{"portal_sessions", auth.PermissionPortalSessions},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := auth.ParsePermission(tt.in)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestParsePermissionUnknown(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"",
		" ",
		"ADMIN",
		"WEBHOOK",
		"WEBHOOK-MANAGEMENT",
		"WEBHOOK MANAGEMENT",
		"WEBHOOK_MANAGEMENTS",
		"EVENTS_PUBLISH,WEBHOOK_MANAGEMENT",
		"EVENTS_PUBLISH_",
		"*",
	} {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			got, err := auth.ParsePermission(in)
			require.Error(t, err)
			require.Empty(t, got)
			msg := err.Error()
			require.Contains(t, msg, "unknown permission")
			require.Contains(t, msg, `"`+in+`"`, "the message quotes the input")
			require.Contains(t, msg, string(auth.PermissionWebhookManagement), "the message lists the known ones")
			require.Contains(t, msg, string(auth.PermissionEventsPublish))
		})
	}
}

// tokenEncoding is the token's documented body: unpadded lower-case base32.
var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func decodeToken(t *testing.T, token string) []byte {
	t.Helper()
	require.True(t, strings.HasPrefix(token, auth.TokenPrefix), "token %q", token)
	require.Equal(t, "hf_", auth.TokenPrefix)
	body := strings.TrimPrefix(token, auth.TokenPrefix)
	require.Len(t, body, 52) // 256 bits in 5-bit characters
	raw, err := tokenEncoding.DecodeString(body)
	require.NoError(t, err)
	require.Len(t, raw, 32)
	return raw
}

func TestNewToken(t *testing.T) {
	t.Parallel()
	token, err := auth.NewToken(nil)
	require.NoError(t, err)
	decodeToken(t, token)
	require.Equal(t, strings.ToLower(token), token)
	require.NotContains(t, token, "=")
}

func TestNewTokenUnique(t *testing.T) {
	t.Parallel()
	const workers, each = 4, 2500
	results := make(chan []string, workers)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			tokens := make([]string, 0, each)
			for range each {
				token, err := auth.NewToken(nil)
				if err != nil {
					errs <- err
					return
				}
				tokens = append(tokens, token)
			}
			results <- tokens
		})
	}
	wg.Wait()
	close(results)
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	seen := make(map[string]bool, workers*each)
	for tokens := range results {
		for _, token := range tokens {
			require.False(t, seen[token], "duplicate token %q", token)
			seen[token] = true
		}
	}
	require.Len(t, seen, workers*each)
}

func TestNewTokenDeterministicReader(t *testing.T) {
	t.Parallel()
	data := make([]byte, 32)
	for i := range data {
		data[i] = byte(i * 11)
	}
	a, err := auth.NewToken(bytes.NewReader(data))
	require.NoError(t, err)
	b, err := auth.NewToken(bytes.NewReader(data))
	require.NoError(t, err)
	require.Equal(t, a, b)
	require.Equal(t, data, decodeToken(t, a))
	require.Equal(t, "hf_"+tokenEncoding.EncodeToString(data), a)

	seeded := func(seed byte) string {
		var s [32]byte
		s[0] = seed
		token, err := auth.NewToken(rand.NewChaCha8(s))
		require.NoError(t, err)
		return token
	}
	require.Equal(t, seeded(1), seeded(1))
	require.NotEqual(t, seeded(1), seeded(2))

	// All zero bytes still make a well-formed token.
	zero, err := auth.NewToken(bytes.NewReader(make([]byte, 32)))
	require.NoError(t, err)
	require.Equal(t, "hf_"+strings.Repeat("a", 52), zero)
}

func TestNewTokenReaderErrors(t *testing.T) {
	t.Parallel()
	boom := errors.New("entropy exhausted")
	for name, r := range map[string]io.Reader{
		"failing": iotest.ErrReader(boom),
		"empty":   bytes.NewReader(nil),
		"short":   bytes.NewReader(make([]byte, 31)),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			token, err := auth.NewToken(r)
			require.Error(t, err)
			require.Contains(t, err.Error(), "new token")
			require.Empty(t, token)
		})
	}
	_, err := auth.NewToken(iotest.ErrReader(boom))
	require.ErrorIs(t, err, boom)
}

func TestHashToken(t *testing.T) {
	t.Parallel()
	// Known SHA-256 values.
	require.Equal(t, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", auth.HashToken(""))
	require.Equal(t, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", auth.HashToken("abc"))

	for _, token := range []string{"", "hf_", "hf_abc", "HF_ABC", strings.Repeat("z", 10000), "hf_ünïcode"} {
		h := auth.HashToken(token)
		require.Len(t, h, 64)
		require.Equal(t, strings.ToLower(h), h)
		_, err := hex.DecodeString(h)
		require.NoError(t, err)
		sum := sha256.Sum256([]byte(token))
		require.Equal(t, hex.EncodeToString(sum[:]), h)
		require.Equal(t, h, auth.HashToken(token), "stable")
	}

	// Tokens that differ hash differently; the hash is not the token.
	a, err := auth.NewToken(nil)
	require.NoError(t, err)
	b, err := auth.NewToken(nil)
	require.NoError(t, err)
	require.NotEqual(t, auth.HashToken(a), auth.HashToken(b))
	require.NotContains(t, auth.HashToken(a), strings.TrimPrefix(a, auth.TokenPrefix))
	require.NotEqual(t, auth.HashToken("hf_abc"), auth.HashToken("HF_ABC"))
}

func TestPrincipalCan(t *testing.T) {
	t.Parallel()
	both := []auth.Permission{auth.PermissionWebhookManagement, auth.PermissionEventsPublish}
	tests := []struct {
		name  string
		perms []auth.Permission
		ask   auth.Permission
		want  bool
	}{
		{"none", nil, auth.PermissionWebhookManagement, false},
		{"empty", []auth.Permission{}, auth.PermissionEventsPublish, false},
		{"management has management", []auth.Permission{auth.PermissionWebhookManagement}, auth.PermissionWebhookManagement, true},
		{"management lacks publish", []auth.Permission{auth.PermissionWebhookManagement}, auth.PermissionEventsPublish, false},
		{"publish has publish", []auth.Permission{auth.PermissionEventsPublish}, auth.PermissionEventsPublish, true},
		{"publish lacks management", []auth.Permission{auth.PermissionEventsPublish}, auth.PermissionWebhookManagement, false},
		{"both: management", both, auth.PermissionWebhookManagement, true},
		{"both: publish", both, auth.PermissionEventsPublish, true},
		{"case matters", []auth.Permission{"webhook_management"}, auth.PermissionWebhookManagement, false},
		{"empty permission never held", both, "", false},
		{"unknown permission", both, "ADMIN", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := auth.Principal{TokenID: "tok", TenantID: "t", UserID: "u", Permissions: tt.perms}
			require.Equal(t, tt.want, p.Can(tt.ask))
		})
	}
	require.False(t, auth.Principal{}.Can(auth.PermissionWebhookManagement))
}

type otherKey struct{}

func TestPrincipalContext(t *testing.T) {
	t.Parallel()
	p := auth.Principal{
		TokenID: "tok_1", TenantID: "tenant", UserID: "user",
		Permissions: []auth.Permission{auth.PermissionEventsPublish},
	}

	_, ok := auth.PrincipalFrom(context.Background())
	require.False(t, ok)

	ctx := auth.WithPrincipal(context.Background(), p)
	got, ok := auth.PrincipalFrom(ctx)
	require.True(t, ok)
	require.Equal(t, p, got)
	require.True(t, got.Can(auth.PermissionEventsPublish))

	// Survives derived contexts.
	derived, cancel := context.WithCancel(context.WithValue(ctx, otherKey{}, "x"))
	defer cancel()
	got, ok = auth.PrincipalFrom(derived)
	require.True(t, ok)
	require.Equal(t, p, got)

	// The innermost principal wins; the outer context is untouched.
	q := auth.Principal{TenantID: "other", UserID: "someone"}
	inner := auth.WithPrincipal(ctx, q)
	got, ok = auth.PrincipalFrom(inner)
	require.True(t, ok)
	require.Equal(t, q, got)
	got, ok = auth.PrincipalFrom(ctx)
	require.True(t, ok)
	require.Equal(t, p, got)

	// A principal stored under some other key is not found.
	foreign := context.WithValue(context.Background(), otherKey{}, p)
	//lint:ignore SA1029 deliberately a plain string key that looks like ours
	foreign = context.WithValue(foreign, "principal", p)
	_, ok = auth.PrincipalFrom(foreign)
	require.False(t, ok)

	// The zero principal is still a principal.
	got, ok = auth.PrincipalFrom(auth.WithPrincipal(context.Background(), auth.Principal{}))
	require.True(t, ok)
	require.Equal(t, auth.Principal{}, got)
}
