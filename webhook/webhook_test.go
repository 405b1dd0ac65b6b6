package webhook_test

import (
	"bytes"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hookferry/hookferry/webhook"
)

// idAlphabet is the documented lower-case Crockford base32 alphabet of ids.
const idAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

var idEncoding = base32.NewEncoding(idAlphabet).WithPadding(base32.NoPadding)

// decodeID checks an id's shape and returns the UUID it encodes.
func decodeID(t *testing.T, prefix, id string) []byte {
	t.Helper()
	require.True(t, strings.HasPrefix(id, prefix+"_"), "id %q lacks prefix %q", id, prefix+"_")
	body := strings.TrimPrefix(id, prefix+"_")
	require.Len(t, body, 26, "id %q", id)
	for _, c := range body {
		require.Contains(t, idAlphabet, string(c), "id %q", id)
	}
	u, err := idEncoding.DecodeString(body)
	require.NoError(t, err)
	require.Len(t, u, 16)
	require.Equal(t, byte(0x70), u[6]&0xf0, "UUID version 7")
	require.Equal(t, byte(0x80), u[8]&0xc0, "RFC 4122 variant")
	return u
}

// uuidMillis is the Unix millisecond timestamp of a UUIDv7.
func uuidMillis(u []byte) int64 {
	var b [8]byte
	copy(b[2:], u[:6])
	return int64(binary.BigEndian.Uint64(b[:]))
}

// randomTail is what a UUIDv7 made from data keeps of it: bytes 8..15, with the
// variant bits set.
func randomTail(data []byte) []byte {
	tail := slices.Clone(data[8:16])
	tail[0] = tail[0]&0x3f | 0x80
	return tail
}

func sequence(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

func TestNewIDShape(t *testing.T) {
	t.Parallel()
	for _, prefix := range []string{"wh", "evt", "dlv", "x"} {
		before := time.Now().UnixMilli()
		id, err := webhook.NewID(prefix, nil)
		after := time.Now().UnixMilli()
		require.NoError(t, err)
		u := decodeID(t, prefix, id)
		ms := uuidMillis(u)
		require.GreaterOrEqual(t, ms, before)
		// The sequence counter may run a little ahead of the clock.
		require.LessOrEqual(t, ms, after+1000)
	}
}

func TestNewIDUniqueAndOrdered(t *testing.T) {
	t.Parallel()
	const n = 20000
	ids := make([]string, 0, n)
	seen := make(map[string]bool, n)
	for range n {
		id, err := webhook.NewID("wh", nil)
		require.NoError(t, err)
		require.False(t, seen[id], "duplicate id %q", id)
		seen[id] = true
		ids = append(ids, id)
	}
	// Ids made one after the other sort in the order they were made.
	require.True(t, slices.IsSorted(ids))
}

func TestNewIDUniqueConcurrently(t *testing.T) {
	t.Parallel()
	const workers, each = 8, 2000
	var mu sync.Mutex
	seen := make(map[string]bool, workers*each)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			local := make([]string, 0, each)
			for range each {
				id, err := webhook.NewID("wh", nil)
				if err != nil {
					errs <- err
					return
				}
				local = append(local, id)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range local {
				if seen[id] {
					errs <- errors.New("duplicate id " + id)
					return
				}
				seen[id] = true
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, seen, workers*each)
}

func TestNewIDDeterministicReader(t *testing.T) {
	t.Parallel()
	data := sequence(16)
	a, err := webhook.NewID("wh", bytes.NewReader(data))
	require.NoError(t, err)
	b, err := webhook.NewID("wh", bytes.NewReader(data))
	require.NoError(t, err)

	ua, ub := decodeID(t, "wh", a), decodeID(t, "wh", b)
	// The random part comes from the reader, and only from it.
	require.Equal(t, randomTail(data), ua[8:])
	require.Equal(t, ua[8:], ub[8:])
	// The time part still orders the two.
	require.Less(t, a, b)

	// Different bytes, different random part.
	other := slices.Clone(data)
	other[15] ^= 0xff
	c, err := webhook.NewID("wh", bytes.NewReader(other))
	require.NoError(t, err)
	require.NotEqual(t, ua[8:], decodeID(t, "wh", c)[8:])
}

func TestNewIDReaderErrors(t *testing.T) {
	t.Parallel()
	boom := errors.New("entropy exhausted")
	for name, r := range map[string]io.Reader{
		"failing": iotest.ErrReader(boom),
		"empty":   bytes.NewReader(nil),
		"short":   bytes.NewReader(make([]byte, 15)),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			id, err := webhook.NewID("wh", r)
			require.Error(t, err)
			require.Contains(t, err.Error(), "new id")
			require.Empty(t, id)
		})
	}
	_, err := webhook.NewID("wh", iotest.ErrReader(boom))
	require.ErrorIs(t, err, boom)
}

func decodeSecret(t *testing.T, secret string) []byte {
	t.Helper()
	require.True(t, strings.HasPrefix(secret, "whsec_"), "secret %q", secret)
	key, err := base64.StdEncoding.Strict().DecodeString(strings.TrimPrefix(secret, "whsec_"))
	require.NoError(t, err)
	require.Len(t, key, 32)
	return key
}

func TestNew(t *testing.T) {
	t.Parallel()
	owner := webhook.Owner{TenantID: "tenant-1", UserID: "user-1"}
	eventTypes := []string{"order.created", "payment.failed"}
	now := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("CEST", 2*60*60))

	w, err := webhook.New(owner, "HTTPS://Example.com:443/hook", "https://example.com/hook", eventTypes, webhook.SigningSymmetric, now, nil)
	require.NoError(t, err)

	decodeID(t, "wh", w.ID)
	decodeSecret(t, w.Secret)
	require.Equal(t, owner, w.Owner)
	require.Equal(t, "https://example.com/hook", w.URL, "the stored URL is the normalised one")
	require.Equal(t, "https://example.com/hook", w.NormalizedURL)
	require.Equal(t, eventTypes, w.EventTypes)
	require.Equal(t, webhook.StatusActive, w.Status)
	require.Empty(t, w.PauseReason)
	require.Nil(t, w.PausedAt)
	require.Nil(t, w.LastUnpausedAt)
	require.Zero(t, w.BufferedEvents)

	want := time.Date(2024, 5, 6, 5, 8, 9, 123456000, time.UTC)
	require.Equal(t, want, w.CreatedAt)
	require.Equal(t, want, w.UpdatedAt)
	require.Equal(t, time.UTC, w.CreatedAt.Location())
	require.Equal(t, time.UTC, w.UpdatedAt.Location())
}

func TestNewSortsEventTypes(t *testing.T) {
	t.Parallel()
	in := []string{"payment.failed", "invoice.paid", "order.created"}
	w, err := webhook.New(webhook.Owner{}, "https://example.com/", "https://example.com/", in, webhook.SigningSymmetric, time.Now(), nil)
	require.NoError(t, err)
	require.Equal(t, []string{"invoice.paid", "order.created", "payment.failed"}, w.EventTypes)
	// The caller's slice is neither reordered nor shared.
	require.Equal(t, []string{"payment.failed", "invoice.paid", "order.created"}, in)
	w.EventTypes[0] = "changed"
	require.Equal(t, "payment.failed", in[0])
}

func TestNewSecretFromReader(t *testing.T) {
	t.Parallel()
	data := sequence(48)
	w, err := webhook.New(webhook.Owner{}, "https://example.com/", "https://example.com/", []string{"a"}, webhook.SigningSymmetric, time.Unix(0, 0), bytes.NewReader(data))
	require.NoError(t, err)
	// The id takes the first 16 bytes, the signing key the next 32.
	require.Equal(t, randomTail(data[:16]), decodeID(t, "wh", w.ID)[8:])
	require.Equal(t, data[16:48], decodeSecret(t, w.Secret))
	require.Equal(t, "whsec_"+base64.StdEncoding.EncodeToString(data[16:48]), w.Secret)
}

func TestNewDeterministicReader(t *testing.T) {
	t.Parallel()
	build := func(seed byte) webhook.Webhook {
		var s [32]byte
		s[0] = seed
		w, err := webhook.New(webhook.Owner{TenantID: "t", UserID: "u"}, "https://example.com/", "https://example.com/",
			[]string{"order.created"}, webhook.SigningSymmetric, time.Unix(1700000000, 0), rand.NewChaCha8(s))
		require.NoError(t, err)
		return w
	}
	a, b, c := build(1), build(1), build(2)
	require.Equal(t, a.Secret, b.Secret)
	require.Equal(t, a.CreatedAt, b.CreatedAt)
	require.Equal(t, decodeID(t, "wh", a.ID)[8:], decodeID(t, "wh", b.ID)[8:])
	require.NotEqual(t, a.ID, b.ID, "ids stay unique even from the same bytes")
	require.NotEqual(t, a.Secret, c.Secret)
	require.NotEqual(t, decodeID(t, "wh", a.ID)[8:], decodeID(t, "wh", c.ID)[8:])
}

func TestNewUnique(t *testing.T) {
	t.Parallel()
	const n = 2000
	ids := make(map[string]bool, n)
	secrets := make(map[string]bool, n)
	for range n {
		w, err := webhook.New(webhook.Owner{}, "https://example.com/", "https://example.com/", []string{"a"}, webhook.SigningSymmetric, time.Now(), nil)
		require.NoError(t, err)
		require.False(t, ids[w.ID], "duplicate id")
		require.False(t, secrets[w.Secret], "duplicate secret")
		ids[w.ID], secrets[w.Secret] = true, true
	}
}

func TestNewReaderErrors(t *testing.T) {
	t.Parallel()
	boom := errors.New("entropy exhausted")
	tests := []struct {
		name     string
		r        io.Reader
		contains string
	}{
		{"failing", iotest.ErrReader(boom), "new id"},
		{"enough for the id only", bytes.NewReader(make([]byte, 16)), "webhook secret"},
		{"one byte short of the key", bytes.NewReader(make([]byte, 47)), "webhook secret"},
		{"failing after the id", io.MultiReader(bytes.NewReader(make([]byte, 16)), iotest.ErrReader(boom)), "webhook secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w, err := webhook.New(webhook.Owner{}, "https://example.com/", "https://example.com/", []string{"a"}, webhook.SigningSymmetric, time.Now(), tt.r)
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.contains)
			require.Equal(t, webhook.Webhook{}, w)
		})
	}
}
