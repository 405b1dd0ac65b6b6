package hookferry_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	hookferry "github.com/hookferry/hookferry/clients/go"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"
)

var (
	sentAt = time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	msgID  = "evt_2Qq8"
	body   = []byte(`{"id":"evt_2Qq8","type":"order.created","timestamp":"2026-12-02T06:00:00Z","data":{"order_id":"1042","total":99.5}}`)
)

// newSecret returns a fresh "whsec_" secret and a v1 signer for it: the
// Standard Webhooks reference library, so the verifier is checked against
// signatures it did not produce itself.
func newSecret(t *testing.T) (string, func(id string, at time.Time, body []byte) string) {
	t.Helper()
	raw := make([]byte, 32)
	_, err := rand.Read(raw)
	require.NoError(t, err)
	secret := "whsec_" + base64.StdEncoding.EncodeToString(raw)
	signer, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	return secret, func(id string, at time.Time, body []byte) string {
		sig, err := signer.Sign(id, at, body)
		require.NoError(t, err)
		return sig
	}
}

// newKeyPair returns a fresh "whpk_" public key and a v1a signer with its
// private half, as hookferry signs an ASYMMETRIC webhook's deliveries.
func newKeyPair(t *testing.T) (string, func(id string, at time.Time, body []byte) string) {
	t.Helper()
	public, private, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return "whpk_" + base64.StdEncoding.EncodeToString(public), func(id string, at time.Time, body []byte) string {
		content := id + "." + strconv.FormatInt(at.Unix(), 10) + "." + string(body)
		return "v1a," + base64.StdEncoding.EncodeToString(ed25519.Sign(private, []byte(content)))
	}
}

func headers(id string, at time.Time, signature string) http.Header {
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", strconv.FormatInt(at.Unix(), 10))
	h.Set("webhook-signature", signature)
	return h
}

func verifier(t *testing.T, keys ...string) *hookferry.Verifier {
	t.Helper()
	v, err := hookferry.NewVerifier(keys...)
	require.NoError(t, err)
	v.Now = func() time.Time { return sentAt.Add(30 * time.Second) }
	return v
}

func TestVerifyDecodesTheEnvelope(t *testing.T) {
	t.Parallel()
	secret, sign := newSecret(t)
	env, err := verifier(t, secret).Verify(headers(msgID, sentAt, sign(msgID, sentAt, body)), body)
	require.NoError(t, err)
	require.Equal(t, hookferry.Envelope{
		ID:        "evt_2Qq8",
		Type:      "order.created",
		Timestamp: sentAt,
		Data:      []byte(`{"order_id":"1042","total":99.5}`),
	}, env)
}

func TestVerifySymmetricAndAsymmetric(t *testing.T) {
	t.Parallel()
	secret, signHMAC := newSecret(t)
	public, signEd := newKeyPair(t)
	otherSecret, _ := newSecret(t)
	otherPublic, _ := newKeyPair(t)
	for _, tc := range []struct {
		name      string
		keys      []string
		signature string
		ok        bool
	}{
		{"v1 with its whsec", []string{secret}, signHMAC(msgID, sentAt, body), true},
		{"v1a with its whpk", []string{public}, signEd(msgID, sentAt, body), true},
		{"v1 with another whsec", []string{otherSecret}, signHMAC(msgID, sentAt, body), false},
		{"v1a with another whpk", []string{otherPublic}, signEd(msgID, sentAt, body), false},
		{"v1a with only a whsec", []string{secret}, signEd(msgID, sentAt, body), false},
		{"v1 with only a whpk", []string{public}, signHMAC(msgID, sentAt, body), false},
		// A v1a signature relabelled v1 must not pass as an HMAC, nor the reverse.
		{"v1a bytes labelled v1", []string{secret, public}, "v1," + strings.TrimPrefix(signEd(msgID, sentAt, body), "v1a,"), false},
		{"v1 bytes labelled v1a", []string{secret, public}, "v1a," + strings.TrimPrefix(signHMAC(msgID, sentAt, body), "v1,"), false},
		{"mixed v1 and v1a, whpk given", []string{public}, signHMAC(msgID, sentAt, body) + " " + signEd(msgID, sentAt, body), true},
		{"mixed v1a and v1, whsec given", []string{secret}, signEd(msgID, sentAt, body) + " " + signHMAC(msgID, sentAt, body), true},
		{"unknown versions ignored", []string{secret}, "v2,AAAA v1b," + strings.TrimPrefix(signHMAC(msgID, sentAt, body), "v1,") + " " + signHMAC(msgID, sentAt, body), true},
		{"only unknown versions", []string{secret}, "v2," + strings.TrimPrefix(signHMAC(msgID, sentAt, body), "v1,"), false},
		{"malformed entries skipped", []string{secret}, "v1 v1,!!! ,,, " + signHMAC(msgID, sentAt, body), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := verifier(t, tc.keys...).Verify(headers(msgID, sentAt, tc.signature), body)
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, hookferry.ErrNoMatchingSignature)
		})
	}
}

// While a secret is rotated hookferry signs with every valid key, newest first:
// a receiver holding either key accepts, whichever position its signature has.
func TestVerifyRotationOverlap(t *testing.T) {
	t.Parallel()
	oldSecret, signOld := newSecret(t)
	currentSecret, signNew := newSecret(t)
	oldPublic, signOldEd := newKeyPair(t)
	unrelated, _ := newSecret(t)
	both := signNew(msgID, sentAt, body) + " " + signOld(msgID, sentAt, body)
	for name, keys := range map[string][]string{
		"old key only":        {oldSecret},
		"new key only":        {currentSecret},
		"both keys":           {currentSecret, oldSecret},
		"unrelated, then old": {unrelated, oldSecret},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := verifier(t, keys...).Verify(headers(msgID, sentAt, both), body)
			require.NoError(t, err)
		})
	}
	// A change of signing from ASYMMETRIC to SYMMETRIC overlaps a v1 and a v1a key.
	mixed := signNew(msgID, sentAt, body) + " " + signOldEd(msgID, sentAt, body)
	_, err := verifier(t, oldPublic).Verify(headers(msgID, sentAt, mixed), body)
	require.NoError(t, err)
	_, err = verifier(t, unrelated).Verify(headers(msgID, sentAt, both), body)
	require.ErrorIs(t, err, hookferry.ErrNoMatchingSignature)
}

// Everything signed is checked: a change to the body, the id or the timestamp,
// or to the last byte of a signature, is refused.
func TestVerifyRefusesTampering(t *testing.T) {
	t.Parallel()
	secret, signHMAC := newSecret(t)
	public, signEd := newKeyPair(t)
	for _, kind := range []struct {
		key  string
		sign func(string, time.Time, []byte) string
	}{{secret, signHMAC}, {public, signEd}} {
		v := verifier(t, kind.key)
		sig := kind.sign(msgID, sentAt, body)
		_, err := v.Verify(headers(msgID, sentAt, sig), body)
		require.NoError(t, err, "the untampered delivery verifies")

		tamperedBody := []byte(strings.Replace(string(body), "99.5", "9.95", 1))
		_, err = v.Verify(headers(msgID, sentAt, sig), tamperedBody)
		require.ErrorIs(t, err, hookferry.ErrNoMatchingSignature, "body")
		_, err = v.Verify(headers(msgID+"x", sentAt, sig), body)
		require.ErrorIs(t, err, hookferry.ErrNoMatchingSignature, "id")
		_, err = v.Verify(headers(msgID, sentAt.Add(time.Second), sig), body)
		require.ErrorIs(t, err, hookferry.ErrNoMatchingSignature, "timestamp")

		version, encoded, _ := strings.Cut(sig, ",")
		raw, err := base64.StdEncoding.DecodeString(encoded)
		require.NoError(t, err)
		for _, i := range []int{0, len(raw) - 1} {
			flipped := append([]byte(nil), raw...)
			flipped[i] ^= 1
			_, err = v.Verify(headers(msgID, sentAt, version+","+base64.StdEncoding.EncodeToString(flipped)), body)
			require.ErrorIs(t, err, hookferry.ErrNoMatchingSignature, "signature byte %d", i)
		}
		// A truncated MAC or signature is no match either.
		_, err = v.Verify(headers(msgID, sentAt, version+","+base64.StdEncoding.EncodeToString(raw[:len(raw)-1])), body)
		require.ErrorIs(t, err, hookferry.ErrNoMatchingSignature, "truncated")
	}
}

func TestVerifyTolerance(t *testing.T) {
	t.Parallel()
	secret, sign := newSecret(t)
	for _, tc := range []struct {
		name      string
		tolerance time.Duration
		offset    time.Duration // receiver's clock minus webhook-timestamp
		want      error
	}{
		{"just inside, late", 0, 5 * time.Minute, nil},
		{"just inside, early", 0, -5 * time.Minute, nil},
		{"too old", 0, 5*time.Minute + time.Second, hookferry.ErrTimestampTooOld},
		{"too new", 0, -5*time.Minute - time.Second, hookferry.ErrTimestampTooNew},
		{"configured wider", time.Hour, 59 * time.Minute, nil},
		{"configured narrower, old", 10 * time.Second, 11 * time.Second, hookferry.ErrTimestampTooOld},
		{"configured narrower, new", 10 * time.Second, -11 * time.Second, hookferry.ErrTimestampTooNew},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v, err := hookferry.NewVerifier(secret)
			require.NoError(t, err)
			require.Equal(t, hookferry.DefaultTolerance, v.Tolerance)
			if tc.tolerance != 0 {
				v.Tolerance = tc.tolerance
			}
			v.Now = func() time.Time { return sentAt.Add(tc.offset) }
			// Validly signed: only the clock decides.
			_, err = v.Verify(headers(msgID, sentAt, sign(msgID, sentAt, body)), body)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.want)
		})
	}
}

func TestVerifyRefusesBadHeaders(t *testing.T) {
	t.Parallel()
	secret, sign := newSecret(t)
	v := verifier(t, secret)
	good := headers(msgID, sentAt, sign(msgID, sentAt, body))
	for _, name := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
		h := good.Clone()
		h.Del(name)
		_, err := v.Verify(h, body)
		require.ErrorIs(t, err, hookferry.ErrMissingHeader, name)
		require.ErrorContains(t, err, name)
	}
	for _, stamp := range []string{"soon", "1.5", "0x10", "-"} {
		h := good.Clone()
		h.Set("webhook-timestamp", stamp)
		_, err := v.Verify(h, body)
		require.ErrorIs(t, err, hookferry.ErrInvalidTimestamp, stamp)
	}
	_, err := v.Verify(good, body[:len(body)-1])
	require.ErrorIs(t, err, hookferry.ErrNoMatchingSignature, "a truncated body fails the signature before decoding")

	// A validly signed body that is not an envelope is refused after verifying.
	notJSON := []byte("not json")
	_, err = v.Verify(headers(msgID, sentAt, sign(msgID, sentAt, notJSON)), notJSON)
	require.ErrorIs(t, err, hookferry.ErrInvalidEnvelope)
	require.NoError(t, v.VerifySignature(headers(msgID, sentAt, sign(msgID, sentAt, notJSON)), notJSON))
}

func TestNewVerifierRefusesBadKeysWithoutEchoingThem(t *testing.T) {
	t.Parallel()
	_, private, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	for _, key := range []string{
		"",
		"whsec_",
		"whsec_not base64!",
		"c2VjcmV0LWJ1dC1ubwtwcmVmaXg=", // base64 without a prefix
		"whpk_" + base64.StdEncoding.EncodeToString(make([]byte, 31)),
		"whsk_" + base64.StdEncoding.EncodeToString(private), // a private key belongs to the sender
		"whpk_" + base64.StdEncoding.EncodeToString(private),
	} {
		_, err := hookferry.NewVerifier(key)
		require.ErrorIs(t, err, hookferry.ErrInvalidKey, "%.8s…", key)
		if len(key) > len("whsec_") {
			require.NotContains(t, err.Error(), key[len(key)-8:], "the error echoes the key")
		}
	}
	_, err = hookferry.NewVerifier()
	require.ErrorIs(t, err, hookferry.ErrInvalidKey)
}

// No error of Verify carries a key or a signature, whatever went wrong.
func TestVerifyErrorsDoNotEchoSecrets(t *testing.T) {
	t.Parallel()
	secret, sign := newSecret(t)
	other, _ := newSecret(t)
	sig := sign(msgID, sentAt, body)
	v := verifier(t, other)
	_, err := v.Verify(headers(msgID, sentAt, sig), body)
	require.ErrorIs(t, err, hookferry.ErrNoMatchingSignature)
	for _, s := range []string{secret[6:], other[6:], sig[3:]} {
		require.NotContains(t, err.Error(), s)
	}
	require.Equal(t, "hookferry: no matching signature: 1 v1 and 0 v1a signatures, 1 whsec_ and 0 whpk_ keys", err.Error())
}
