// Package keyring seals webhook signing secrets for storage: AES-256-GCM under
// the first key of a keyring, opened by whichever key of the ring sealed it.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// KeySize is the length of a key in bytes (AES-256).
const KeySize = 32

// prefix starts every sealed value: "enc:v1:<key id>:<base64 of nonce and ciphertext>".
const prefix = "enc:v1:"

// Keyring holds the keys: the first seals, any opens.
type Keyring struct {
	keys []key
}

type key struct {
	id   string // the first 8 hex digits of the key's SHA-256: which key sealed a value
	aead cipher.AEAD
}

// ErrNoKey is a sealed value whose key is not in the ring.
var ErrNoKey = errors.New("keyring: the key that sealed this value is not configured")

// Parse reads a comma (or newline) separated list of base64 keys of 32 bytes.
// A line whose first non-blank character is '#' is a comment, commas and all;
// so is a field that starts with '#'.
func Parse(list string) (*Keyring, error) {
	var k Keyring
	seen := map[string]bool{}
	var fields []string
	for _, line := range strings.FieldsFunc(list, func(r rune) bool { return r == '\n' || r == '\r' }) {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, field := range strings.Split(line, ",") {
			if field = strings.TrimSpace(field); field != "" && !strings.HasPrefix(field, "#") {
				fields = append(fields, field)
			}
		}
	}
	for i, field := range fields {
		raw, err := base64.StdEncoding.DecodeString(field)
		if err != nil {
			raw, err = base64.RawStdEncoding.DecodeString(field)
		}
		if err != nil || len(raw) != KeySize {
			return nil, fmt.Errorf("keyring: key %d is not the base64 of %d bytes (make one with: hookferry keys generate)", i+1, KeySize)
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("keyring: key %d: %w", i+1, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("keyring: key %d: %w", i+1, err)
		}
		sum := sha256.Sum256(raw)
		id := hex.EncodeToString(sum[:4])
		if seen[id] {
			continue
		}
		seen[id] = true
		k.keys = append(k.keys, key{id: id, aead: aead})
	}
	if len(k.keys) == 0 {
		return nil, errors.New("keyring: no key given (make one with: hookferry keys generate)")
	}
	return &k, nil
}

// LoadFile reads a keyring from a file of keys, one per line (or a comma list).
func LoadFile(path string) (*Keyring, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	k, err := Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return k, nil
}

// Generate returns a new random key, base64-encoded; r nil means crypto/rand.
func Generate(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	b := make([]byte, KeySize)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("keyring: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// PrimaryID names the key that seals: the first 8 hex digits of its SHA-256.
func (k *Keyring) PrimaryID() string { return k.keys[0].id }

// Seal encrypts plain under the first key, with a random nonce; the result is
// printable and names the key.
func (k *Keyring) Seal(plain string) (string, error) {
	first := k.keys[0]
	nonce := make([]byte, first.aead.NonceSize(), first.aead.NonceSize()+len(plain)+first.aead.Overhead())
	if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
		return "", fmt.Errorf("keyring: %w", err)
	}
	out := first.aead.Seal(nonce, nonce, []byte(plain), []byte(first.id))
	return prefix + first.id + ":" + base64.RawStdEncoding.EncodeToString(out), nil
}

// Open decrypts a value made by Seal with any key of the ring.
func (k *Keyring) Open(sealed string) (string, error) {
	id, body, ok := strings.Cut(strings.TrimPrefix(sealed, prefix), ":")
	if !IsSealed(sealed) || !ok {
		return "", errors.New("keyring: not a sealed value")
	}
	for _, key := range k.keys {
		if key.id != id {
			continue
		}
		raw, err := base64.RawStdEncoding.DecodeString(body)
		if err != nil || len(raw) < key.aead.NonceSize() {
			return "", errors.New("keyring: corrupt sealed value")
		}
		n := key.aead.NonceSize()
		plain, err := key.aead.Open(nil, raw[:n], raw[n:], []byte(id))
		if err != nil {
			return "", errors.New("keyring: sealed value fails authentication")
		}
		return string(plain), nil
	}
	return "", fmt.Errorf("%w (key id %s)", ErrNoKey, id)
}

// SealedByPrimary reports whether sealed was made with the first key, so that
// rotation can skip it.
func (k *Keyring) SealedByPrimary(sealed string) bool {
	return strings.HasPrefix(sealed, prefix+k.keys[0].id+":")
}

// IsSealed reports whether s looks like a value made by Seal.
func IsSealed(s string) bool { return strings.HasPrefix(s, prefix) }
