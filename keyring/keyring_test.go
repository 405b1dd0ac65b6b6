package keyring_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hookferry/hookferry/keyring"
)

// knownKey is the base64 of the bytes 0, 1, …, 31; knownSealed is
// "whsec_known-answer" sealed under it by this package. Values already stored
// in databases must keep opening, so the format is pinned here.
const (
	knownKey    = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	knownID     = "630dcd29"
	knownPlain  = "whsec_known-answer"
	knownSealed = "enc:v1:630dcd29:W+1HTllmsP9IxGyB/f94MOGRkyd5vQIApFaDySHd4DTEyVlnpiOKXAJiMcXhKQ"
)

// newKey returns a fresh random key, base64 with padding.
func newKey(t testing.TB) string {
	t.Helper()
	k, err := keyring.Generate(nil)
	require.NoError(t, err)
	return k
}

// ring parses keys joined by commas.
func ring(t testing.TB, keys ...string) *keyring.Keyring {
	t.Helper()
	k, err := keyring.Parse(strings.Join(keys, ","))
	require.NoError(t, err)
	return k
}

// seal seals plain under k.
func seal(t testing.TB, k *keyring.Keyring, plain string) string {
	t.Helper()
	s, err := k.Seal(plain)
	require.NoError(t, err)
	return s
}

// bodyOf splits a sealed value into its "enc:v1:<id>:" head and decoded body.
func bodyOf(t testing.TB, sealed string) (head string, body []byte) {
	t.Helper()
	i := strings.LastIndexByte(sealed, ':')
	require.Positive(t, i)
	body, err := base64.RawStdEncoding.DecodeString(sealed[i+1:])
	require.NoError(t, err)
	return sealed[:i+1], body
}

func TestParseGood(t *testing.T) {
	t.Parallel()
	a, b, c := newKey(t), newKey(t), newKey(t)
	rawA := strings.TrimRight(a, "=")
	require.Len(t, rawA, 43)
	primary := ring(t, a).PrimaryID()
	for name, tc := range map[string]struct {
		list string
		keys []string // the ring Parse should give, in order
	}{
		"one":                    {a, []string{a}},
		"one raw base64":         {rawA, []string{a}},
		"comma":                  {a + "," + b + "," + c, []string{a, b, c}},
		"newline":                {a + "\n" + b + "\n" + c + "\n", []string{a, b, c}},
		"crlf":                   {a + "\r\n" + b + "\r\n", []string{a, b}},
		"spaces and tabs":        {"  " + a + " ,\t" + b + "\t, " + c + "  ", []string{a, b, c}},
		"empty fields":           {",," + a + ",,\n\n" + b + ",", []string{a, b}},
		"duplicates collapse":    {a + "," + b + "," + a + "\n" + b, []string{a, b}},
		"raw and padded collide": {a + "," + rawA, []string{a}},
		"mixed":                  {rawA + ",\n " + b + " \n" + c, []string{a, b, c}},
		"comment line":           {"# the keys\n" + a + "\n" + b, []string{a, b}},
		"comment with commas":    {"# the keys, newest first, one a line\n" + a + "\n  # old, rotate away\n" + b, []string{a, b}},
		"commented-out field":    {a + ",#" + c + "," + b, []string{a, b}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			k, err := keyring.Parse(tc.list)
			require.NoError(t, err)
			require.Equal(t, ring(t, tc.keys[0]).PrimaryID(), k.PrimaryID(), "the first key seals")
			if tc.keys[0] == a {
				require.Equal(t, primary, k.PrimaryID())
			}
			// Every listed key opens, and the ring holds no more keys than
			// those listed: a value sealed by each opens, a stranger's does not.
			for _, key := range tc.keys {
				got, err := k.Open(seal(t, ring(t, key), "s"))
				require.NoError(t, err)
				require.Equal(t, "s", got)
			}
			_, err = k.Open(seal(t, ring(t, newKey(t)), "s"))
			require.ErrorIs(t, err, keyring.ErrNoKey)
		})
	}
}

func TestParseBad(t *testing.T) {
	t.Parallel()
	good := newKey(t)
	short := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x5a}, 31))
	long := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xa5}, 33))
	aes128 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x3c}, 16))
	urlKey := base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xff}, 16))
	require.True(t, strings.ContainsAny(urlKey, "-_"), urlKey)
	for name, tc := range map[string]struct {
		list string
		bad  string // the offending text, which must not appear in the error ("" none)
	}{
		"empty":              {"", ""},
		"only separators":    {" , \n,\r\n\t ", ""},
		"only comment":       {"# no keys here\n", ""},
		"not base64":         {"this is not base64!!", "this is not base64!!"},
		"not base64 second":  {good + ",%%%%" + good[4:], "%%%%" + good[4:]},
		"too short":          {short, short},
		"too long":           {long, long},
		"AES-128 length":     {aes128, aes128},
		"bad after good":     {good + "\n" + short, short},
		"bad before good":    {long + "," + good, long},
		"base64url alphabet": {urlKey, urlKey},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			k, err := keyring.Parse(tc.list)
			require.Error(t, err)
			require.Nil(t, k)
			msg := err.Error()
			require.Contains(t, msg, "keyring:")
			require.NotContains(t, msg, good, "the error must not show a key")
			if tc.bad != "" {
				require.NotContains(t, msg, tc.bad, "the error must not show the bad input: it may be a real key")
				require.NotContains(t, msg, strings.TrimRight(tc.bad, "=")[:16], "nor a piece of it")
			}
		})
	}
}

func TestParseErrorNumbersTheKey(t *testing.T) {
	t.Parallel()
	good := newKey(t)
	_, err := keyring.Parse(good + "," + good + ",nope")
	require.ErrorContains(t, err, "key 3")
	_, err = keyring.Parse("# keys\n" + good + "\nnope")
	require.ErrorContains(t, err, "key 2", "comment lines are not keys")
}

func TestPrimaryID(t *testing.T) {
	t.Parallel()
	k := ring(t, knownKey)
	require.Equal(t, knownID, k.PrimaryID())
	require.Regexp(t, `^[0-9a-f]{8}$`, ring(t, newKey(t)).PrimaryID())
}

func TestSealOpenRoundTrip(t *testing.T) {
	t.Parallel()
	k := ring(t, newKey(t), newKey(t))
	for _, plain := range []string{
		"",
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"with:colons:and enc:v1:inside",
		"unicode ✓ \x00 nul and \xff invalid utf-8",
		strings.Repeat("long secret ", 10_000),
	} {
		sealed := seal(t, k, plain)
		require.True(t, keyring.IsSealed(sealed))
		require.True(t, k.SealedByPrimary(sealed))
		require.Regexp(t, `^enc:v1:`+regexp.QuoteMeta(k.PrimaryID())+`:[A-Za-z0-9+/]*$`, sealed)
		if len(plain) > 3 {
			require.NotContains(t, sealed, plain, "the secret is encrypted")
		}
		got, err := k.Open(sealed)
		require.NoError(t, err)
		require.Equal(t, plain, got)
	}
}

func TestOpenKnownValue(t *testing.T) {
	t.Parallel()
	got, err := ring(t, knownKey).Open(knownSealed)
	require.NoError(t, err, "values sealed by earlier versions must keep opening")
	require.Equal(t, knownPlain, got)
	got, err = ring(t, newKey(t), knownKey).Open(knownSealed)
	require.NoError(t, err)
	require.Equal(t, knownPlain, got)
}

func TestSealTwiceDiffers(t *testing.T) {
	t.Parallel()
	k := ring(t, newKey(t))
	seen := map[string]bool{}
	nonces := map[string]bool{}
	for range 100 {
		s := seal(t, k, "same secret")
		require.False(t, seen[s], "a random nonce each time")
		seen[s] = true
		_, body := bodyOf(t, s)
		require.Greater(t, len(body), 12)
		require.False(t, nonces[string(body[:12])], "a nonce is never reused")
		nonces[string(body[:12])] = true
	}
}

func TestOpenWithSealingKeyAtAnyPosition(t *testing.T) {
	t.Parallel()
	sealer := newKey(t)
	sealed := seal(t, ring(t, sealer), "rotate me")
	others := []string{newKey(t), newKey(t), newKey(t)}
	for pos := 0; pos <= len(others); pos++ {
		keys := append(append(append([]string{}, others[:pos]...), sealer), others[pos:]...)
		k := ring(t, keys...)
		got, err := k.Open(sealed)
		require.NoError(t, err, "sealing key at position %d", pos)
		require.Equal(t, "rotate me", got)
		require.Equal(t, pos == 0, k.SealedByPrimary(sealed), "position %d", pos)
	}
}

func TestOpenWithoutTheKey(t *testing.T) {
	t.Parallel()
	sealer := newKey(t)
	sealed := seal(t, ring(t, sealer), "lost")
	for _, k := range []*keyring.Keyring{
		ring(t, newKey(t)),
		ring(t, newKey(t), newKey(t), newKey(t)),
	} {
		got, err := k.Open(sealed)
		require.Error(t, err)
		require.True(t, errors.Is(err, keyring.ErrNoKey), "got %v", err)
		require.Empty(t, got)
		require.Contains(t, err.Error(), ring(t, sealer).PrimaryID(), "names the missing key")
		require.NotContains(t, err.Error(), sealer)
	}
}

func TestOpenRejectsDamage(t *testing.T) {
	t.Parallel()
	a, b := newKey(t), newKey(t)
	k := ring(t, a, b)
	idA, idB := ring(t, a).PrimaryID(), ring(t, b).PrimaryID()
	sealed := seal(t, k, "whsec_tamper-target")
	head, body := bodyOf(t, sealed)
	reseal := func(body []byte) string { return head + base64.RawStdEncoding.EncodeToString(body) }

	cases := map[string]string{
		"empty":              "",
		"plain secret":       "whsec_not-sealed",
		"prefix only":        "enc:v1:",
		"no body separator":  "enc:v1:" + idA,
		"empty body":         "enc:v1:" + idA + ":",
		"empty id":           "enc:v1::" + sealed[len(head):],
		"other version":      strings.Replace(sealed, "enc:v1:", "enc:v2:", 1),
		"no prefix":          strings.TrimPrefix(sealed, "enc:v1:"),
		"upper-case prefix":  strings.Replace(sealed, "enc:v1:", "ENC:V1:", 1),
		"body not base64":    head + "!!!!not-base64!!!!",
		"padded body":        sealed + "==",
		"truncated to nonce": reseal(body[:12]),
		"shorter than nonce": reseal(body[:5]),
		"truncated tag":      reseal(body[:len(body)-1]),
		"truncated text":     sealed[:len(sealed)-10],
		"extra byte":         reseal(append(append([]byte{}, body...), 0)),
		"id of other key":    strings.Replace(sealed, idA, idB, 1),
		"id missing a digit": strings.Replace(sealed, idA, idA[:7], 1),
		"trailing colon":     sealed + ":",
		"leading space":      " " + sealed,
	}
	for i := range body {
		flipped := append([]byte{}, body...)
		flipped[i] ^= 0x01
		cases[fmt.Sprintf("flipped byte %d", i)] = reseal(flipped)
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var (
				got string
				err error
			)
			require.NotPanics(t, func() { got, err = k.Open(in) })
			require.Error(t, err)
			require.Empty(t, got)
			require.NotContains(t, err.Error(), "whsec_tamper-target")
		})
	}
}

func TestOpenRejectsChangedKeyID(t *testing.T) {
	t.Parallel()
	a := newKey(t)
	k := ring(t, a)
	sealed := seal(t, k, "mine")
	id := k.PrimaryID()
	for _, other := range []string{"00000000", ring(t, newKey(t)).PrimaryID(), strings.ToUpper(id)} {
		if other == id {
			continue
		}
		changed := strings.Replace(sealed, ":"+id+":", ":"+other+":", 1)
		require.NotEqual(t, sealed, changed)
		got, err := k.Open(changed)
		require.ErrorIs(t, err, keyring.ErrNoKey, "id %s", other)
		require.Empty(t, got)
		require.False(t, k.SealedByPrimary(changed))
	}
}

func TestSealedByPrimaryAndIsSealed(t *testing.T) {
	t.Parallel()
	a, b := newKey(t), newKey(t)
	ab, ba := ring(t, a, b), ring(t, b, a)
	byA := seal(t, ab, "x")
	byB := seal(t, ba, "x")

	require.True(t, ab.SealedByPrimary(byA))
	require.False(t, ab.SealedByPrimary(byB))
	require.True(t, ba.SealedByPrimary(byB))
	require.False(t, ba.SealedByPrimary(byA))
	for _, s := range []string{"", "whsec_x", "enc:v1:", "enc:v1:" + ab.PrimaryID(), strings.TrimPrefix(byA, "enc:v1:")} {
		require.False(t, ab.SealedByPrimary(s), "%q", s)
	}
	// A prefix of the id is not the id, nor is the id with more after it.
	require.False(t, ab.SealedByPrimary("enc:v1:"+ab.PrimaryID()[:4]+":AAAA"))
	require.False(t, ab.SealedByPrimary("enc:v1:"+ab.PrimaryID()+"0:AAAA"))

	require.True(t, keyring.IsSealed(byA))
	require.True(t, keyring.IsSealed(byB))
	require.True(t, keyring.IsSealed("enc:v1:"))
	for _, s := range []string{"", "whsec_x", "enc:v1", "enc:v2:x:y", "ENC:V1:x:y", " enc:v1:x:y"} {
		require.False(t, keyring.IsSealed(s), "%q", s)
	}
}

func TestLoadFile(t *testing.T) {
	t.Parallel()
	a, b := newKey(t), newKey(t)
	dir := t.TempDir()

	path := filepath.Join(dir, "keys")
	content := "# hookferry encryption keys, newest first: back them up with the database.\n" +
		a + "\n" +
		"  # the old key, kept until `hookferry keys rotate` has run\n" +
		b + "\n"
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	k, err := keyring.LoadFile(path)
	require.NoError(t, err)
	require.Equal(t, ring(t, a).PrimaryID(), k.PrimaryID())
	for _, key := range []string{a, b} {
		got, err := k.Open(seal(t, ring(t, key), "from file"))
		require.NoError(t, err)
		require.Equal(t, "from file", got)
	}

	// The file is not there: the error names it.
	missing := filepath.Join(dir, "missing")
	_, err = keyring.LoadFile(missing)
	require.ErrorIs(t, err, os.ErrNotExist)
	require.ErrorContains(t, err, missing)

	// A bad key: the error names the file, not the key.
	bad := filepath.Join(dir, "bad")
	short := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 20))
	require.NoError(t, os.WriteFile(bad, []byte("# keys\n"+a+"\n"+short+"\n"), 0o600))
	_, err = keyring.LoadFile(bad)
	require.ErrorContains(t, err, bad)
	require.NotContains(t, err.Error(), short)
	require.NotContains(t, err.Error(), a)

	// Only comments: no key.
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("# nothing yet\n\n"), 0o600))
	_, err = keyring.LoadFile(empty)
	require.ErrorContains(t, err, "no key")
}

func TestGenerate(t *testing.T) {
	t.Parallel()
	a, err := keyring.Generate(nil)
	require.NoError(t, err)
	b, err := keyring.Generate(nil)
	require.NoError(t, err)
	require.NotEqual(t, a, b)
	require.Regexp(t, `^[A-Za-z0-9+/]{43}=$`, a)
	for _, key := range []string{a, b} {
		raw, err := base64.StdEncoding.DecodeString(key)
		require.NoError(t, err)
		require.Len(t, raw, keyring.KeySize)
		k, err := keyring.Parse(key)
		require.NoError(t, err)
		got, err := k.Open(seal(t, k, "generated"))
		require.NoError(t, err)
		require.Equal(t, "generated", got)
	}
	require.NotEqual(t, ring(t, a).PrimaryID(), ring(t, b).PrimaryID())

	// A given reader is used as is.
	fixed := make([]byte, keyring.KeySize)
	for i := range fixed {
		fixed[i] = byte(i)
	}
	got, err := keyring.Generate(bytes.NewReader(fixed))
	require.NoError(t, err)
	require.Equal(t, knownKey, got)

	// A reader that runs dry is an error, not a short key.
	_, err = keyring.Generate(bytes.NewReader(make([]byte, keyring.KeySize-1)))
	require.Error(t, err)
}

func FuzzOpen(f *testing.F) {
	a, b := newKey(f), newKey(f)
	k := ring(f, a, b)
	other := ring(f, newKey(f))
	for _, plain := range []string{"", "whsec_seed", "with:colon", strings.Repeat("z", 300)} {
		f.Add(seal(f, k, plain))
		f.Add(seal(f, ring(f, b), plain))
		f.Add(seal(f, other, plain))
	}
	sealed := seal(f, k, "whsec_seed")
	for _, s := range []string{
		"", "enc:v1:", "enc:v1:deadbeef:", "enc:v1:" + k.PrimaryID() + ":",
		"enc:v1:" + k.PrimaryID() + ":AAAA", "enc:v1:" + k.PrimaryID(), "enc:v1:::",
		sealed[:len(sealed)-1], sealed + "A", sealed + "\n", "whsec_plain",
		"\x00\xff\xfe garbage \u2603", "enc:v1:\xff:\xff", knownSealed,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		plain, err := k.Open(in)
		if err != nil {
			require.Empty(t, plain)
			return
		}
		require.True(t, keyring.IsSealed(in), "only sealed values open: %q", in)
		again, err := k.Seal(plain)
		require.NoError(t, err)
		got, err := k.Open(again)
		require.NoError(t, err)
		require.Equal(t, plain, got)
	})
}

func FuzzParse(f *testing.F) {
	a, b := newKey(f), newKey(f)
	for _, s := range []string{
		"", ",", "\n", a, strings.TrimRight(a, "="), a + "," + b, a + "\n" + b + "\n",
		" " + a + " , " + a, "# comment\n" + a, "# a, b\n" + b, "not base64", a[:20],
		a + "," + a[:43], knownKey, "=" + a, a + "==",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		k, err := keyring.Parse(list)
		if err != nil {
			require.Nil(t, k)
			return
		}
		require.Regexp(t, `^[0-9a-f]{8}$`, k.PrimaryID())
		for _, plain := range []string{"", "whsec_fuzz"} {
			sealed, err := k.Seal(plain)
			require.NoError(t, err)
			require.True(t, k.SealedByPrimary(sealed))
			got, err := k.Open(sealed)
			require.NoError(t, err)
			require.Equal(t, plain, got)
		}
	})
}
