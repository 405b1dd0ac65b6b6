package webhook_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hookferry/hookferry/webhook"
)

func TestNewSecretKinds(t *testing.T) {
	t.Parallel()
	sym, err := webhook.NewSecret(webhook.SigningSymmetric, nil)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(sym, "whsec_"), sym)
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sym, "whsec_"))
	require.NoError(t, err)
	require.Len(t, key, 32)
	require.Equal(t, webhook.SigningSymmetric, webhook.SigningOf(sym))
	require.Equal(t, sym, webhook.VerificationKey(sym), "a shared secret is its own verification key")

	private, err := webhook.NewSecret(webhook.SigningAsymmetric, nil)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(private, "whsk_"), private)
	require.Equal(t, webhook.SigningAsymmetric, webhook.SigningOf(private))
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(private, "whsk_"))
	require.NoError(t, err)
	require.Len(t, raw, ed25519.PrivateKeySize)

	// The verification key is the public half, and verifies what the private
	// key signs.
	public := webhook.VerificationKey(private)
	require.True(t, strings.HasPrefix(public, "whpk_"), public)
	pub, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(public, "whpk_"))
	require.NoError(t, err)
	require.Len(t, pub, ed25519.PublicKeySize)
	msg := []byte("evt_1.1700000000.{}")
	require.True(t, ed25519.Verify(pub, msg, ed25519.Sign(ed25519.PrivateKey(raw), msg)))
	require.NotContains(t, public, strings.TrimPrefix(private, "whsk_"))

	// A private key that does not parse never shows as itself.
	require.Empty(t, webhook.VerificationKey("whsk_AAAA"))
	require.Empty(t, webhook.VerificationKey("whsk_***"))

	_, err = webhook.NewSecret("RSA", nil)
	require.Error(t, err)
}

func TestRotate(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	w := webhook.Webhook{Secret: "whsec_AAAA"}

	// The current key becomes the newest previous one, for ttl.
	require.NoError(t, w.Rotate(webhook.SigningSymmetric, time.Hour, now, nil))
	require.True(t, strings.HasPrefix(w.Secret, "whsec_"))
	require.NotEqual(t, "whsec_AAAA", w.Secret)
	require.Equal(t, []webhook.PreviousKey{{Secret: "whsec_AAAA", ExpiresAt: now.Add(time.Hour)}}, w.PreviousKeys)
	require.Equal(t, []string{w.Secret, "whsec_AAAA"}, webhook.SigningKeys(w.Secret, w.PreviousKeys, now))
	require.Equal(t, []string{w.Secret, "whsec_AAAA"}, webhook.SigningKeys(w.Secret, w.PreviousKeys, now.Add(time.Hour-time.Microsecond)))
	require.Equal(t, []string{w.Secret}, webhook.SigningKeys(w.Secret, w.PreviousKeys, now.Add(time.Hour)), "a key stops at its expiry")
	require.Equal(t, now.Add(time.Hour), *w.PreviousKeysExpireAt(now))
	require.Nil(t, w.PreviousKeysExpireAt(now.Add(time.Hour)))

	// Newest first; at most five previous keys, the oldest dropped.
	var keys []string
	for i := range 7 {
		keys = append([]string{w.Secret}, keys...)
		require.NoError(t, w.Rotate(webhook.SigningSymmetric, time.Duration(10-i)*time.Hour, now, nil))
	}
	require.Len(t, w.PreviousKeys, webhook.MaxPreviousKeys)
	for i, p := range w.PreviousKeys {
		require.Equal(t, keys[i], p.Secret, "previous key %d", i)
	}
	require.Equal(t, append([]string{w.Secret}, keys[:5]...), webhook.SigningKeys(w.Secret, w.PreviousKeys, now))
	// The last to expire is the one rotated out first among those kept.
	require.Equal(t, now.Add(8*time.Hour), *w.PreviousKeysExpireAt(now))

	// Expired keys are dropped by the next rotation; ttl 0 keeps no previous key.
	later := now.Add(6*time.Hour + time.Minute)
	current := w.Secret
	require.NoError(t, w.Rotate(webhook.SigningSymmetric, 0, later, nil))
	require.NotEqual(t, current, w.Secret)
	for _, p := range w.PreviousKeys {
		require.True(t, later.Before(p.ExpiresAt), "expired key kept")
		require.NotEqual(t, current, p.Secret, "ttl 0 keeps the replaced key")
	}
	require.Len(t, w.PreviousKeys, 2, "the keys of ttl 8 h and 7 h are left")

	// A rotation may change the kind: the old key signs on beside the new one.
	require.NoError(t, w.Rotate(webhook.SigningAsymmetric, time.Hour, later, nil))
	require.Equal(t, webhook.SigningAsymmetric, w.Signing())
	require.Equal(t, webhook.SigningSymmetric, webhook.SigningOf(w.PreviousKeys[0].Secret))
}
