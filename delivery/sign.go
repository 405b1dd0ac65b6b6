// Package delivery sends events to webhooks: it signs each request per the
// Standard Webhooks spec and makes one attempt through a client that reaches
// only public addresses.
package delivery

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// secretPrefix marks a Standard Webhooks symmetric signing secret.
const secretPrefix = "whsec_"

// ErrBadSecret reports a signing secret that is not "whsec_" followed by a
// non-empty base64 key. Its message never contains the secret.
var ErrBadSecret = errors.New("bad signing secret")

// Sign returns the Standard Webhooks signature header value for one attempt:
// "v1," + base64(HMAC-SHA256(key, msgID + "." + unix seconds + "." + body)),
// where secret is "whsec_" + base64(key).
func Sign(secret, msgID string, timestamp time.Time, body []byte) (string, error) {
	key, err := decodeSecret(secret)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, key)
	// One buffer for the id and timestamp parts keeps signing to a few allocations.
	head := make([]byte, 0, len(msgID)+24)
	head = append(head, msgID...)
	head = append(head, '.')
	head = strconv.AppendInt(head, timestamp.Unix(), 10)
	head = append(head, '.')
	mac.Write(head)
	mac.Write(body)
	var sum [sha256.Size]byte
	out := make([]byte, 3+base64.StdEncoding.EncodedLen(sha256.Size))
	copy(out, "v1,")
	base64.StdEncoding.Encode(out[3:], mac.Sum(sum[:0]))
	return string(out), nil
}

func decodeSecret(secret string) ([]byte, error) {
	encoded, ok := strings.CutPrefix(secret, secretPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: missing %q prefix", ErrBadSecret, secretPrefix)
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
