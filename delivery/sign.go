// Package delivery sends events to webhooks: it signs each request per the
// Standard Webhooks spec and makes one attempt through a client that reaches
// only public addresses.
package delivery

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hookferry/hookferry/webhook"
)

// ErrBadSecret reports a signing key that is neither "whsec_" followed by a
// non-empty base64 key nor "whsk_" followed by the base64 of an ed25519
// private key. Its message never contains the key.
var ErrBadSecret = errors.New("bad signing secret")

// Sign returns the Standard Webhooks signature header value for one attempt:
// one signature per key, in the order given (newest first), separated by
// spaces. Each signs msgID + "." + unix seconds + "." + body: a "whsec_" key
// with HMAC-SHA256 ("v1," + base64 of the MAC), a "whsk_" key with ed25519
// ("v1a," + base64 of the signature).
func Sign(keys []string, msgID string, timestamp time.Time, body []byte) (string, error) {
	if len(keys) == 0 {
		return "", fmt.Errorf("%w: no key", ErrBadSecret)
	}
	// One buffer for the id and timestamp parts keeps signing to a few allocations.
	head := make([]byte, 0, len(msgID)+24)
	head = append(head, msgID...)
	head = append(head, '.')
	head = strconv.AppendInt(head, timestamp.Unix(), 10)
	head = append(head, '.')
	var out []byte
	var content []byte // head + body, built only for an ed25519 key
	for i, key := range keys {
		if i > 0 {
			out = append(out, ' ')
		}
		switch {
		case strings.HasPrefix(key, webhook.PrivateKeyPrefix):
			private, err := decodePrivateKey(key)
			if err != nil {
				return "", err
			}
			if content == nil {
				content = append(append(make([]byte, 0, len(head)+len(body)), head...), body...)
			}
			out = append(out, "v1a,"...)
			out = base64.StdEncoding.AppendEncode(out, ed25519.Sign(private, content))
		default:
			secret, err := decodeSecret(key)
			if err != nil {
				return "", err
			}
			mac := hmac.New(sha256.New, secret)
			mac.Write(head)
			mac.Write(body)
			var sum [sha256.Size]byte
			out = append(out, "v1,"...)
			out = base64.StdEncoding.AppendEncode(out, mac.Sum(sum[:0]))
		}
	}
	return string(out), nil
}

func decodeSecret(secret string) ([]byte, error) {
	encoded, ok := strings.CutPrefix(secret, webhook.SymmetricPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: missing %q or %q prefix", ErrBadSecret, webhook.SymmetricPrefix, webhook.PrivateKeyPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		// base64's error names only the offset of the bad byte, never the input.
		return nil, fmt.Errorf("%w: %v", ErrBadSecret, err)
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("%w: empty key", ErrBadSecret)
	}
	return key, nil
}

func decodePrivateKey(secret string) (ed25519.PrivateKey, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, webhook.PrivateKeyPrefix))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSecret, err)
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: an ed25519 private key has %d bytes, not %d", ErrBadSecret, ed25519.PrivateKeySize, len(key))
	}
	return ed25519.PrivateKey(key), nil
}
