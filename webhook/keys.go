package webhook

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"time"
)

// Signing is how a webhook's deliveries are signed, per Standard Webhooks.
type Signing string

const (
	// SigningSymmetric: HMAC-SHA256 with a shared secret "whsec_…", signatures "v1,…".
	SigningSymmetric Signing = "SYMMETRIC"
	// SigningAsymmetric: ed25519 with a private key "whsk_…", signatures
	// "v1a,…"; the receiver verifies with the public key "whpk_…".
	SigningAsymmetric Signing = "ASYMMETRIC"
)

// The prefixes Standard Webhooks gives the serialised keys.
const (
	SymmetricPrefix  = "whsec_"
	PrivateKeyPrefix = "whsk_"
	PublicKeyPrefix  = "whpk_"
)

// DefaultPreviousTTL is how long a replaced key signs on when the rotation
// says nothing; at most MaxPreviousKeys replaced keys sign beside the current
// one. (openapi.yaml bounds the ttl a rotation may ask for.)
const (
	DefaultPreviousTTL = 24 * time.Hour
	MaxPreviousKeys    = 5
)

// PreviousKey is a signing key replaced by a rotation that still signs until
// ExpiresAt.
type PreviousKey struct {
	Secret    string    `json:"secret"`
	ExpiresAt time.Time `json:"expires_at"`
}

// NewSecret makes a fresh signing key of the given kind: "whsec_" + base64 of
// 32 random bytes, or "whsk_" + base64 of an ed25519 private key (64 bytes:
// seed and public key, as crypto/ed25519 and libsodium hold it).
func NewSecret(signing Signing, random io.Reader) (string, error) {
	if random == nil {
		random = rand.Reader
	}
	switch signing {
	case SigningSymmetric, "":
		key := make([]byte, secretBytes)
		if _, err := io.ReadFull(random, key); err != nil {
			return "", fmt.Errorf("webhook secret: %w", err)
		}
		return SymmetricPrefix + base64.StdEncoding.EncodeToString(key), nil
	case SigningAsymmetric:
		seed := make([]byte, ed25519.SeedSize)
		if _, err := io.ReadFull(random, seed); err != nil {
			return "", fmt.Errorf("webhook key: %w", err)
		}
		return PrivateKeyPrefix + base64.StdEncoding.EncodeToString(ed25519.NewKeyFromSeed(seed)), nil
	default:
		return "", fmt.Errorf("webhook: unknown signing %q", signing)
	}
}

// SigningOf names the kind of a signing key by its prefix.
func SigningOf(secret string) Signing {
	if strings.HasPrefix(secret, PrivateKeyPrefix) {
		return SigningAsymmetric
	}
	return SigningSymmetric
}

// VerificationKey is what a receiver verifies the signatures of secret with:
// the shared secret itself, or the public key "whpk_…" of a private key. It
// never returns a private key: one it cannot parse gives "".
func VerificationKey(secret string) string {
	encoded, ok := strings.CutPrefix(secret, PrivateKeyPrefix)
	if !ok {
		return secret
	}
	raw, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil || len(raw) != ed25519.PrivateKeySize {
		return ""
	}
	public := ed25519.PrivateKey(raw).Public().(ed25519.PublicKey)
	return PublicKeyPrefix + base64.StdEncoding.EncodeToString(public)
}

// Signing is the kind of the webhook's current key.
func (w Webhook) Signing() Signing { return SigningOf(w.Secret) }

// SigningKeys are the keys that sign an attempt made at now, newest first:
// current, then the previous ones (newest first) that have not expired.
func SigningKeys(current string, previous []PreviousKey, now time.Time) []string {
	keys := make([]string, 1, 1+len(previous))
	keys[0] = current
	for _, p := range previous {
		if now.Before(p.ExpiresAt) {
			keys = append(keys, p.Secret)
		}
	}
	return keys
}

// PreviousKeysExpireAt is when the last previous key still signing at now
// stops, or nil when none does.
func (w Webhook) PreviousKeysExpireAt(now time.Time) *time.Time {
	var last *time.Time
	for i, p := range w.PreviousKeys {
		if now.Before(p.ExpiresAt) && (last == nil || p.ExpiresAt.After(*last)) {
			last = &w.PreviousKeys[i].ExpiresAt
		}
	}
	return last
}

// Rotate gives w a new key of kind signing; the current one signs on for ttl
// (none when ttl is 0) beside the previous keys that have not expired, newest
// first, the oldest dropped beyond MaxPreviousKeys. ttl must not be negative.
func (w *Webhook) Rotate(signing Signing, ttl time.Duration, now time.Time, random io.Reader) error {
	secret, err := NewSecret(signing, random)
	if err != nil {
		return err
	}
	previous := make([]PreviousKey, 0, MaxPreviousKeys)
	if ttl > 0 {
		previous = append(previous, PreviousKey{Secret: w.Secret, ExpiresAt: now.Add(ttl).UTC().Truncate(time.Microsecond)})
	}
	for _, p := range w.PreviousKeys {
		if len(previous) == MaxPreviousKeys {
			break
		}
		if now.Before(p.ExpiresAt) {
			previous = append(previous, p)
		}
	}
	w.Secret, w.PreviousKeys = secret, previous
	return nil
}
