package hookferry

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks headers of every delivery.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// DefaultTolerance is how far a delivery's webhook-timestamp may be from the
// receiver's clock, either way, before Verify refuses it as a possible replay.
const DefaultTolerance = 5 * time.Minute

// The key prefixes of Standard Webhooks: a shared HMAC secret, or the public
// half of an ed25519 key pair.
const (
	SymmetricKeyPrefix = "whsec_"
	PublicKeyPrefix    = "whpk_"
)

// The errors of NewVerifier and Verify. Each is wrapped with context that names
// headers, versions and counts, never a key or a signature.
var (
	// ErrInvalidKey: a key is neither "whsec_" + base64 nor "whpk_" + the
	// base64 of a 32-byte ed25519 public key.
	ErrInvalidKey = errors.New("hookferry: invalid verification key")
	// ErrMissingHeader: webhook-id, webhook-timestamp or webhook-signature is
	// absent or empty.
	ErrMissingHeader = errors.New("hookferry: missing webhook header")
	// ErrInvalidTimestamp: webhook-timestamp is not a number of Unix seconds.
	ErrInvalidTimestamp = errors.New("hookferry: invalid webhook-timestamp")
	// ErrTimestampTooOld: webhook-timestamp is further in the past than the tolerance.
	ErrTimestampTooOld = errors.New("hookferry: webhook-timestamp too old")
	// ErrTimestampTooNew: webhook-timestamp is further in the future than the tolerance.
	ErrTimestampTooNew = errors.New("hookferry: webhook-timestamp too new")
	// ErrNoMatchingSignature: no signature of the header verifies with any key.
	ErrNoMatchingSignature = errors.New("hookferry: no matching signature")
	// ErrInvalidEnvelope: the body verified but is not a JSON envelope.
	ErrInvalidEnvelope = errors.New("hookferry: invalid envelope")
)

// Envelope is the body of every delivery. ID is the event's id, equal to the
// webhook-id header; Timestamp is when it was published; Data holds exactly the
// bytes the producer sent.
type Envelope struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// Verifier checks the Standard Webhooks signature of deliveries against one or
// more keys: several while a webhook's secret is rotated (the old and the new
// key each verify the deliveries signed during the overlap).
type Verifier struct {
	// Tolerance is how far webhook-timestamp may be from Now, either way.
	// NewVerifier sets DefaultTolerance.
	Tolerance time.Duration
	// Now is the receiver's clock; NewVerifier sets time.Now.
	Now func() time.Time

	secrets    [][]byte            // "whsec_" keys, for "v1," signatures
	publicKeys []ed25519.PublicKey // "whpk_" keys, for "v1a," signatures
}

// NewVerifier returns a Verifier for the given keys, each "whsec_…" (the
// secret of a SYMMETRIC webhook) or "whpk_…" (the public key of an ASYMMETRIC
// one), as the API shows them in authentication.secret.
func NewVerifier(keys ...string) (*Verifier, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no key given", ErrInvalidKey)
	}
	v := &Verifier{Tolerance: DefaultTolerance, Now: time.Now}
	for i, key := range keys {
		switch {
		case strings.HasPrefix(key, SymmetricKeyPrefix):
			secret, err := base64.StdEncoding.DecodeString(key[len(SymmetricKeyPrefix):])
			if err != nil || len(secret) == 0 {
				return nil, fmt.Errorf("%w: key %d: %s is not followed by base64", ErrInvalidKey, i, SymmetricKeyPrefix)
			}
			v.secrets = append(v.secrets, secret)
		case strings.HasPrefix(key, PublicKeyPrefix):
			public, err := base64.StdEncoding.DecodeString(key[len(PublicKeyPrefix):])
			if err != nil || len(public) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("%w: key %d: %s is not followed by the base64 of %d bytes", ErrInvalidKey, i, PublicKeyPrefix, ed25519.PublicKeySize)
			}
			v.publicKeys = append(v.publicKeys, ed25519.PublicKey(public))
		default:
			// Never echo the key: it may be a secret pasted in the wrong place.
			return nil, fmt.Errorf("%w: key %d: want the prefix %s or %s", ErrInvalidKey, i, SymmetricKeyPrefix, PublicKeyPrefix)
		}
	}
	return v, nil
}

// Verify checks the delivery's headers and body, then decodes the body. It
// accepts when any signature of webhook-signature verifies with any key and
// webhook-timestamp is within the tolerance; signatures of versions other than
// v1 and v1a are ignored. Only a verified body is decoded.
func (v *Verifier) Verify(header http.Header, body []byte) (Envelope, error) {
	if err := v.VerifySignature(header, body); err != nil {
		return Envelope{}, err
	}
	var env Envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return Envelope{}, fmt.Errorf("%w: %v", ErrInvalidEnvelope, err)
	}
	return env, nil
}

// VerifySignature is Verify without decoding the body.
func (v *Verifier) VerifySignature(header http.Header, body []byte) error {
	id, stamp, signatures := header.Get(HeaderID), header.Get(HeaderTimestamp), header.Get(HeaderSignature)
	for _, h := range [...]struct{ name, value string }{{HeaderID, id}, {HeaderTimestamp, stamp}, {HeaderSignature, signatures}} {
		if h.value == "" {
			return fmt.Errorf("%w: %s", ErrMissingHeader, h.name)
		}
	}
	seconds, err := strconv.ParseInt(stamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrInvalidTimestamp, stamp)
	}
	now := v.now()
	sent := time.Unix(seconds, 0)
	tolerance := v.Tolerance
	switch {
	case sent.Before(now.Add(-tolerance)):
		return fmt.Errorf("%w: %s, %s before the receiver's clock (tolerance %s)", ErrTimestampTooOld, stamp, now.Sub(sent).Round(time.Second), tolerance)
	case sent.After(now.Add(tolerance)):
		return fmt.Errorf("%w: %s, %s after the receiver's clock (tolerance %s)", ErrTimestampTooNew, stamp, sent.Sub(now).Round(time.Second), tolerance)
	}

	// The signed content, exactly as the header carries id and timestamp.
	content := make([]byte, 0, len(id)+len(stamp)+2+len(body))
	content = append(append(append(append(content, id...), '.'), stamp...), '.')
	content = append(content, body...)

	var macs [][]byte // one per secret, computed at the first v1 signature
	parsed := parseSignatures(signatures)
	counts := map[string]int{}
	for _, sig := range parsed {
		counts[sig.version]++
		switch sig.version {
		case versionHMAC:
			if macs == nil {
				macs = make([][]byte, len(v.secrets))
				for i, secret := range v.secrets {
					h := hmac.New(sha256.New, secret)
					h.Write(content)
					macs[i] = h.Sum(nil)
				}
			}
			for _, want := range macs {
				if hmac.Equal(sig.value, want) {
					return nil
				}
			}
		case versionEd25519:
			for _, public := range v.publicKeys {
				if ed25519.Verify(public, content, sig.value) {
					return nil
				}
			}
		}
	}
	return fmt.Errorf("%w: %d %s and %d %s signatures, %d %s and %d %s keys",
		ErrNoMatchingSignature, counts[versionHMAC], versionHMAC, counts[versionEd25519], versionEd25519,
		len(v.secrets), SymmetricKeyPrefix, len(v.publicKeys), PublicKeyPrefix)
}

func (v *Verifier) now() time.Time {
	if v.Now == nil {
		return time.Now()
	}
	return v.Now()
}

// The signature versions of Standard Webhooks that Verify knows.
const (
	versionHMAC    = "v1"  // HMAC-SHA256 with a "whsec_" secret
	versionEd25519 = "v1a" // ed25519 with a "whpk_" public key
)

type signature struct {
	version string // versionHMAC or versionEd25519
	value   []byte
}

// parseSignatures splits a webhook-signature header: space-separated
// "version,base64" entries. Entries of unknown versions, without a comma or
// with bad base64 are dropped: a sender may add versions this code does not
// know, and a malformed entry verifies nothing.
func parseSignatures(header string) []signature {
	var out []signature
	for _, entry := range strings.Fields(header) {
		version, encoded, ok := strings.Cut(entry, ",")
		if !ok || (version != versionHMAC && version != versionEd25519) {
			continue
		}
		value, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil || len(value) == 0 {
			continue
		}
		out = append(out, signature{version: version, value: value})
	}
	return out
}
