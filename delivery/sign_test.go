package delivery

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookferry/hookferry/webhook"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"
)

func newSecret(t testing.TB) string {
	t.Helper()
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	return "whsec_" + base64.StdEncoding.EncodeToString(key)
}

func signedHeaders(id string, ts time.Time, sig string) http.Header {
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", fmt.Sprint(ts.Unix()))
	h.Set("webhook-signature", sig)
	return h
}

// The spec's own example signature comes without its secret, so the
// known answer is the one in the reference library's tests.
func TestSignKnownAnswer(t *testing.T) {
	t.Parallel()
	got, err := Sign([]string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, "msg_p5jXN8AQM9LWM0D4loKWxJek",
		time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	require.NoError(t, err)
	require.Equal(t, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", got)
}

// The spec's example of the signed content: "{msg_id}.{timestamp}.{payload}".
func TestSignSpecSignedContent(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef01234567")
	body := []byte(`{"type":"contact.created","timestamp":"2022-11-03T20:26:10.344522Z","data":{"id":"1f81eb52-5198-4599-803e-771906343485"}}`)
	content := `msg_2KWPBgLlAfxdpx2AI54pPJ85f4W.1674087231.{"type":"contact.created","timestamp":"2022-11-03T20:26:10.344522Z","data":{"id":"1f81eb52-5198-4599-803e-771906343485"}}`
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(content))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))

	got, err := Sign([]string{"whsec_" + base64.StdEncoding.EncodeToString(key)}, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
		time.Unix(1674087231, 0), body)
	require.NoError(t, err)
	require.Equal(t, want, got)
}

func TestSignVerifiedByReference(t *testing.T) {
	t.Parallel()
	bodies := [][]byte{nil, []byte(`{}`), []byte(`{"id":"evt_1","type":"order.created","data":{"a":"b.c"}}`), make([]byte, 100_000)}
	for i, body := range bodies {
		secret := newSecret(t)
		id := fmt.Sprintf("evt_%d", i)
		ts := time.Now().Add(-time.Minute)
		sig, err := Sign([]string{secret}, id, ts, body)
		require.NoError(t, err)

		wh, err := standardwebhooks.NewWebhook(secret)
		require.NoError(t, err)
		require.NoError(t, wh.Verify(body, signedHeaders(id, ts, sig)))

		// The signature covers id, timestamp and body.
		require.Error(t, wh.Verify(append([]byte("x"), body...), signedHeaders(id, ts, sig)))
		require.Error(t, wh.Verify(body, signedHeaders(id+"x", ts, sig)))
		require.Error(t, wh.Verify(body, signedHeaders(id, ts.Add(time.Second), sig)))
		other, err := standardwebhooks.NewWebhook(newSecret(t))
		require.NoError(t, err)
		require.Error(t, other.Verify(body, signedHeaders(id, ts, sig)))
	}
}

// TestSignEveryKeyNewestFirst: one signature per key, in the order given, so
// the reference verifier accepts the header with any of the keys; ed25519 keys
// sign "v1a," over the same content, verifiable with the public key.
func TestSignEveryKeyNewestFirst(t *testing.T) {
	t.Parallel()
	newest, older := newSecret(t), newSecret(t)
	private, err := webhook.NewSecret(webhook.SigningAsymmetric, nil)
	require.NoError(t, err)
	id, ts, body := "evt_rot", time.Now(), []byte(`{"a":1}`)

	sig, err := Sign([]string{private, newest, older}, id, ts, body)
	require.NoError(t, err)
	parts := strings.Split(sig, " ")
	require.Len(t, parts, 3, sig)
	require.True(t, strings.HasPrefix(parts[0], "v1a,"), sig)

	// Each part is the signature of its key alone.
	for i, key := range []string{newest, older} {
		one, err := Sign([]string{key}, id, ts, body)
		require.NoError(t, err)
		require.Equal(t, one, parts[i+1])
		wh, err := standardwebhooks.NewWebhook(key)
		require.NoError(t, err)
		require.NoError(t, wh.Verify(body, signedHeaders(id, ts, sig)), "key %d", i)
	}
	stranger, err := standardwebhooks.NewWebhook(newSecret(t))
	require.NoError(t, err)
	require.Error(t, stranger.Verify(body, signedHeaders(id, ts, sig)))

	// v1a: ed25519 over "id.timestamp.body", as the spec has it.
	public, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(webhook.VerificationKey(private), "whpk_"))
	require.NoError(t, err)
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(parts[0], "v1a,"))
	require.NoError(t, err)
	content := fmt.Sprintf("%s.%d.%s", id, ts.Unix(), body)
	require.True(t, ed25519.Verify(public, []byte(content), raw))
	require.False(t, ed25519.Verify(public, []byte(content+" "), raw))

	_, err = Sign(nil, id, ts, body)
	require.ErrorIs(t, err, ErrBadSecret)
}

func TestSignBadSecret(t *testing.T) {
	t.Parallel()
	for _, secret := range []string{
		"",
		"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", // no prefix
		"whsec_",                           // empty key
		"whsec_not*base64*at*all",
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", // bad length
		"WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"whsk_",
		"whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", // not 64 bytes
		"whsk_not*base64",
		"whpk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", // a public key signs nothing
	} {
		t.Run(secret, func(t *testing.T) {
			t.Parallel()
			sig, err := Sign([]string{secret}, "evt_1", time.Now(), []byte(`{}`))
			require.ErrorIs(t, err, ErrBadSecret)
			require.Empty(t, sig)
			if secret != "" {
				require.NotContains(t, err.Error(), secret)
			}
		})
	}
}

func BenchmarkSign(b *testing.B) {
	private, err := webhook.NewSecret(webhook.SigningAsymmetric, nil)
	require.NoError(b, err)
	body := []byte(`{"id":"evt_01jq3v7x8m9n0p1q2r3s4t5v6w","type":"order.created","timestamp":"2025-01-02T03:04:05Z","data":{"order":"ord_123","amount":4200,"currency":"EUR"}}`)
	for _, bc := range []struct {
		name string
		keys []string
	}{
		{"hmac", []string{newSecret(b)}},
		{"hmac-rotating", []string{newSecret(b), newSecret(b)}},
		{"ed25519", []string{private}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ts := time.Now()
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := Sign(bc.keys, "evt_01jq3v7x8m9n0p1q2r3s4t5v6w", ts, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
