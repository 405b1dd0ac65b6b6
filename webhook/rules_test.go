package webhook_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hookferry/hookferry/webhook"
)

// requireRuleError asserts that err is a *webhook.RuleError with the given code
// and a message containing every one of contains.
func requireRuleError(t *testing.T, err error, code webhook.Code, contains ...string) *webhook.RuleError {
	t.Helper()
	require.Error(t, err)
	var re *webhook.RuleError
	require.True(t, errors.As(err, &re), "error %v (%T) is not a *webhook.RuleError", err, err)
	require.Equal(t, code, re.Code, "message: %s", re.Message)
	require.NotEmpty(t, re.Message)
	require.Equal(t, string(code)+": "+re.Message, re.Error())
	for _, s := range contains {
		require.Contains(t, re.Message, s)
	}
	return re
}

func TestRuleErrorError(t *testing.T) {
	t.Parallel()
	err := &webhook.RuleError{Code: webhook.CodeInvalidURL, Message: "url is empty"}
	require.Equal(t, "INVALID_URL: url is empty", err.Error())
}

func TestCheckURLRejectsNonHTTPS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw    string
		scheme string // as named in the message
	}{
		{"http://example.com/hook", "http"},
		{"HTTP://example.com/hook", "http"},
		{"HtTp://example.com", "http"},
		{"ftp://example.com/file", "ftp"},
		{"ws://example.com/socket", "ws"},
		{"wss://example.com/socket", "wss"},
		{"file:///etc/passwd", "file"},
		{"javascript:alert(1)", "javascript"},
		{"mailto:ops@example.com", "mailto"},
		{"httpss://example.com/", "httpss"},
		{"https+unix://example.com/", "https+unix"},
		// The scheme is judged before the host: a non-https URL to a private
		// host is still the https error, the more specific one for the caller.
		{"http://127.0.0.1/", "http"},
		{"http://localhost/", "http"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			t.Parallel()
			for _, allowPrivate := range []bool{false, true} {
				got, err := webhook.CheckURL(tt.raw, allowPrivate)
				requireRuleError(t, err, webhook.CodeURLNotHTTPS, `"`+tt.scheme+`"`)
				require.Empty(t, got)
			}
		})
	}
}

func TestCheckURLRejectsInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		raw      string
		contains string // a fragment of the message
	}{
		// Absence and shape.
		{"empty", "", "empty"},
		{"plain words", "not a url", "absolute"},
		{"host and path only", "example.com/hook", "absolute"},
		{"path only", "/hook", "absolute"},
		{"scheme-relative", "//example.com/hook", "absolute"},
		{"opaque", "https:example.com", "https://host/path"},
		{"scheme only", "https://", "host"},
		{"empty host with path", "https:///x", "host"},
		{"single slash", "https:/example.com", "host"},
		{"only a dot as host", "https://./", "host"},
		{"only a dot and port", "https://.:443/", "host"},

		// Hosts that resolvers read as IP addresses, and IPv6 forms that reach IPv4.
		{"short IPv4", "https://127.1/", "dotted IP"},
		{"decimal IPv4", "https://2130706433/", "dotted IP"},
		{"hex IPv4", "https://0x7f000001/", "dotted IP"},

		// Unparsable.
		{"missing scheme", ":foo", "does not parse"},
		{"space in host", "https://exa mple.com/", "does not parse"},
		{"bad escape in path", "https://example.com/%zz", "does not parse"},
		{"escape in host", "https://ex%2Fample.com/", "does not parse"},
		{"unclosed bracket", "https://[::1", "does not parse"},
		{"unclosed bracket http", "http://[::1", "does not parse"},
		{"non-numeric port", "https://example.com:port/", "does not parse"},
		{"negative port", "https://example.com:-1/", "does not parse"},
		{"NUL", "https://example.com/\x00", "does not parse"},
		{"DEL", "https://example.com/\x7f", "does not parse"},
		{"newline", "https://example.com/\nx", "does not parse"},
		{"name in brackets", "https://[example.com]/", "does not parse"},
		{"empty brackets", "https://[]/", "does not parse"},
		{"backslash user-info", "https://example.com\\@evil.com/", "does not parse"},

		// User information.
		{"user", "https://user@example.com/", "user information"},
		{"user and password", "https://user:secret@example.com/hook", "user information"},
		{"empty user", "https://@example.com/", "user information"},
		{"user without host", "https://user@/", "user information"},

		// Fragments, even empty ones.
		{"fragment", "https://example.com/hook#frag", "fragment"},
		{"empty fragment", "https://example.com/#", "fragment"},
		{"fragment after query", "https://example.com/p?q=1#x", "fragment"},
		{"empty fragment after query", "https://example.com/p?q#", "fragment"},

		// Length.
		{"one over the limit", "https://example.com/" + strings.Repeat("a", webhook.MaxURLLength-len("https://example.com/")+1), "2048"},
		{"far over the limit", "https://example.com/" + strings.Repeat("a", 10000), "2048"},
		{"over the limit and http", "http://example.com/" + strings.Repeat("a", 3000), "2048"},

		// Ports.
		{"port zero", "https://example.com:0/", "port"},
		{"port 65536", "https://example.com:65536/", "port"},
		{"port 99999", "https://example.com:99999/", "port"},
		{"six-digit port", "https://example.com:123456/", "port"},
		{"long zero port", "https://example.com:0000000443/", "port"},
		{"empty port", "https://example.com:/", "empty port"},
		{"empty port no path", "https://example.com:", "empty port"},
		{"IPv6 empty port", "https://[2001:db8::1]:/", "empty port"},
		{"IPv6 port too big", "https://[2001:db8::1]:99999/", "port"},

		// Host names.
		{"leading hyphen", "https://-example.com/", "valid host name"},
		{"trailing hyphen", "https://example-.com/", "valid host name"},
		{"empty label", "https://a..com/", "valid host name"},
		{"two trailing dots", "https://example.com../", "valid host name"},
		{"leading dot", "https://.example.com/", "valid host name"},
		{"label of 64", "https://" + strings.Repeat("a", 64) + ".com/", "valid host name"},
		{"name of 254", "https://" + longHostname(254) + "/", "valid host name"},
		{"bang in host", "https://a!b.com/", "valid host name"},
		{"dollar in host", "https://exa$mple.com/", "valid host name"},
		{"IPv6 zone", "https://[fe80::1%25eth0]/", "zone"},
		{"IPv6 zone public", "https://[2001:db8::1%25eth0]/", "zone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, allowPrivate := range []bool{false, true} {
				got, err := webhook.CheckURL(tt.raw, allowPrivate)
				requireRuleError(t, err, webhook.CodeInvalidURL, tt.contains)
				require.Empty(t, got)
			}
		})
	}
}

// privateHosts are refused unless the deployment allows private targets; each
// maps to its normalised URL when allowed.
var privateHosts = []struct {
	name       string
	raw        string
	normalized string
}{
	{"IPv4 loopback", "https://127.0.0.1/hook", "https://127.0.0.1/hook"},
	{"IPv4 loopback other", "https://127.255.255.254/", "https://127.255.255.254/"},
	{"IPv4 loopback trailing dot", "https://127.0.0.1./", "https://127.0.0.1/"},
	{"IPv4 10/8", "https://10.0.0.1/", "https://10.0.0.1/"},
	{"IPv4 172.16/12", "https://172.16.0.1/", "https://172.16.0.1/"},
	{"IPv4 172.31", "https://172.31.255.255/", "https://172.31.255.255/"},
	{"IPv4 192.168/16", "https://192.168.1.1:8443/x", "https://192.168.1.1:8443/x"},
	{"IPv4 link-local metadata", "https://169.254.169.254/latest/meta-data/", "https://169.254.169.254/latest/meta-data/"},
	{"IPv4 unspecified", "https://0.0.0.0/", "https://0.0.0.0/"},
	{"IPv4 shared address space", "https://100.64.0.1/", "https://100.64.0.1/"},
	{"IPv4 shared address space top", "https://100.127.255.254/", "https://100.127.255.254/"},
	{"IPv4 multicast", "https://224.0.0.1/", "https://224.0.0.1/"},
	{"IPv4 multicast high", "https://239.255.255.250/", "https://239.255.255.250/"},
	{"IPv6 loopback", "https://[::1]/", "https://[::1]/"},
	{"IPv6 loopback with port", "https://[::1]:8443", "https://[::1]:8443/"},
	{"IPv6 unspecified", "https://[::]/", "https://[::]/"},
	{"IPv6 link-local", "https://[fe80::1]/", "https://[fe80::1]/"},
	{"IPv6 link-local upper", "https://[FE80::1]:443/", "https://[fe80::1]/"},
	{"IPv6 unique local", "https://[fc00::1]/", "https://[fc00::1]/"},
	{"IPv6 unique local fd", "https://[fd12:3456::1]/", "https://[fd12:3456::1]/"},
	{"IPv6 multicast", "https://[ff02::1]/", "https://[ff02::1]/"},
	{"IPv4-mapped loopback", "https://[::ffff:127.0.0.1]/", "https://[::ffff:127.0.0.1]/"},
	{"IPv4-mapped private", "https://[::ffff:10.0.0.1]/", "https://[::ffff:10.0.0.1]/"},
	{"IPv4-mapped metadata", "https://[::ffff:169.254.169.254]/", "https://[::ffff:169.254.169.254]/"},
	{"localhost", "https://localhost/", "https://localhost/"},
	{"broadcast", "https://255.255.255.255/", "https://255.255.255.255/"},
	{"this network", "https://0.1.2.3/", "https://0.1.2.3/"},
	{"IPv4-compatible IPv6", "https://[::127.0.0.1]/", "https://[::127.0.0.1]/"},
	{"NAT64 loopback", "https://[64:ff9b::7f00:1]/", "https://[64:ff9b::7f00:1]/"},
	{"6to4 loopback", "https://[2002:7f00:1::]/", "https://[2002:7f00:1::]/"},
	{"localhost upper", "https://LOCALHOST/", "https://localhost/"},
	{"localhost trailing dot", "https://localhost./", "https://localhost/"},
	{"localhost port", "https://localhost:8443/hook", "https://localhost:8443/hook"},
	{"localhost default port", "https://LocalHost.:443/hook", "https://localhost/hook"},
	{"sub.localhost", "https://sub.localhost/", "https://sub.localhost/"},
	{"deep sub.localhost", "https://a.b.Localhost./", "https://a.b.localhost/"},
	// Judged as what IDNA maps them to (issue 9).
	{"full-width loopback", "https://１２７.０.０.１/", "https://127.0.0.1/"},
	{"ideographic full stops", "https://127。0。0。1/", "https://127.0.0.1/"},
	{"circled loopback", "https://①②⑦.⓪.⓪.①/", "https://127.0.0.1/"},
	{"full-width localhost", "https://ｌｏｃａｌｈｏｓｔ/", "https://localhost/"},
	{"circled localhost", "https://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ/", "https://localhost/"},
	{"soft hyphen in localhost", "https://local\u00adhost/", "https://localhost/"},
	{"IPv4-translated loopback", "https://[::ffff:0:7f00:1]/", "https://[::ffff:0:7f00:1]/"},
	{"IPv4-translated private", "https://[::ffff:0:a00:1]/", "https://[::ffff:0:a00:1]/"},
}

func TestCheckURLRefusesWhatIDNARefuses(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"https://xn--a/",             // bad Punycode
		"https://a\u202eb.example/",  // a bidi control
		"https://\u0627\u0031a.com/", // breaks the bidi rule
		"https://\u0301a.com/",       // a label starting with a combining mark
		"https://\ufffd.com/",        // maps to xn--zn7c, which IDNA refuses
		"https://a\x9a.com/",         // not UTF-8
	} {
		got, err := webhook.CheckURL(raw, true)
		requireRuleError(t, err, webhook.CodeInvalidURL, "not a valid host name")
		require.Empty(t, got, raw)
	}
}

func TestCheckURLRejectsPrivateHosts(t *testing.T) {
	t.Parallel()
	for _, tt := range privateHosts {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := webhook.CheckURL(tt.raw, false)
			requireRuleError(t, err, webhook.CodeInvalidURL, "not a public address")
			require.Empty(t, got)
		})
	}
}

func TestCheckURLAllowsPrivateHostsWhenAllowed(t *testing.T) {
	t.Parallel()
	for _, tt := range privateHosts {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := webhook.CheckURL(tt.raw, true)
			require.NoError(t, err)
			require.Equal(t, tt.normalized, got)
			again, err := webhook.CheckURL(got, true)
			require.NoError(t, err)
			require.Equal(t, got, again)
		})
	}
}

func TestCheckURLAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		raw        string
		normalized string
	}{
		{"plain", "https://example.com/hook", "https://example.com/hook"},
		{"empty path becomes slash", "https://example.com", "https://example.com/"},
		{"lower-case scheme", "HTTPS://example.com/hook", "https://example.com/hook"},
		{"mixed-case scheme", "hTtPs://example.com/hook", "https://example.com/hook"},
		{"lower-case host", "https://Example.COM/hook", "https://example.com/hook"},
		{"path case kept", "https://example.com/Hooks/Orders", "https://example.com/Hooks/Orders"},
		{"query case kept", "https://example.com/h?Key=Value", "https://example.com/h?Key=Value"},
		{"default port dropped", "https://example.com:443/hook", "https://example.com/hook"},
		{"default port dropped no path", "https://example.com:443", "https://example.com/"},
		{"other port kept", "https://example.com:8443/hook", "https://example.com:8443/hook"},
		{"port 80 kept", "https://example.com:80/", "https://example.com:80/"},
		{"port 1", "https://example.com:1/", "https://example.com:1/"},
		{"port 65535", "https://example.com:65535/", "https://example.com:65535/"},
		{"trailing dot dropped", "https://example.com./hook", "https://example.com/hook"},
		{"trailing dot and default port", "https://Example.Com.:443", "https://example.com/"},
		{"trailing dot and other port", "https://example.com.:8443/x", "https://example.com:8443/x"},
		{"query kept", "https://example.com/hook?a=1&b=2", "https://example.com/hook?a=1&b=2"},
		{"query without path", "https://example.com?a=1", "https://example.com/?a=1"},
		{"empty query kept", "https://example.com/?", "https://example.com/?"},
		{"escaped space kept", "https://example.com/a%20b", "https://example.com/a%20b"},
		{"escapes kept as written", "https://example.com/%41", "https://example.com/%41"},
		{"escaped slash kept", "https://example.com/a%2Fb", "https://example.com/a%2Fb"},
		{"zero-padded default port dropped", "https://example.com:0443/", "https://example.com/"},
		{"zero-padded port normalised", "https://example.com:08443/", "https://example.com:8443/"},
		{"semicolon in path", "https://example.com/p;q", "https://example.com/p;q"},
		{"underscore in host", "https://ex_ample.com/", "https://ex_ample.com/"},
		{"hyphen inside label", "https://my-hooks.example.com/", "https://my-hooks.example.com/"},
		{"digits in labels", "https://api2.example123.com/", "https://api2.example123.com/"},
		{"single label", "https://intranet/", "https://intranet/"},
		{"punycode", "https://xn--bcher-kva.de/", "https://xn--bcher-kva.de/"},
		{"label of 63", "https://" + strings.Repeat("a", 63) + ".com/", "https://" + strings.Repeat("a", 63) + ".com/"},
		{"name of 253", "https://" + longHostname(253) + "/", "https://" + longHostname(253) + "/"},
		{"localhost.com is not localhost", "https://localhost.com/", "https://localhost.com/"},
		{"localhost as a label elsewhere", "https://localhost.example.com/", "https://localhost.example.com/"},
		{"public IPv4", "https://93.184.216.34/hook", "https://93.184.216.34/hook"},
		{"public IPv4 trailing dot", "https://93.184.216.34.:443/", "https://93.184.216.34/"},
		{"just outside shared space", "https://100.128.0.1/", "https://100.128.0.1/"},
		{"just below shared space", "https://100.63.255.255/", "https://100.63.255.255/"},
		{"172.15 is public", "https://172.15.0.1/", "https://172.15.0.1/"},
		{"172.32 is public", "https://172.32.0.1/", "https://172.32.0.1/"},
		{"public IPv6", "https://[2606:4700::1111]/", "https://[2606:4700::1111]/"},
		{"public IPv6 upper, default port", "https://[2001:DB8::1]:443/x", "https://[2001:db8::1]/x"},
		{"public IPv6 other port", "https://[2001:db8::1]:8443", "https://[2001:db8::1]:8443/"},
		{"IPv4-mapped public", "https://[::ffff:8.8.8.8]/", "https://[::ffff:8.8.8.8]/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, allowPrivate := range []bool{false, true} {
				got, err := webhook.CheckURL(tt.raw, allowPrivate)
				require.NoError(t, err)
				require.Equal(t, tt.normalized, got)

				// Normalising is idempotent.
				again, err := webhook.CheckURL(got, allowPrivate)
				require.NoError(t, err)
				require.Equal(t, got, again)
			}
		})
	}
}

func TestCheckURLLengthLimit(t *testing.T) {
	t.Parallel()
	prefix := "https://example.com/"
	exact := prefix + strings.Repeat("a", webhook.MaxURLLength-len(prefix))
	require.Len(t, exact, webhook.MaxURLLength)
	got, err := webhook.CheckURL(exact, false)
	require.NoError(t, err)
	require.Equal(t, exact, got)

	_, err = webhook.CheckURL(exact+"a", false)
	requireRuleError(t, err, webhook.CodeInvalidURL, "longer than 2048")

	// The normalised form is bounded too: escaping can lengthen a URL that is
	// within the limit as given.
	for _, raw := range []string{
		prefix + strings.Repeat("ü", (webhook.MaxURLLength-len(prefix))/2), // "ü" -> "%C3%BC"
		prefix + strings.Repeat("a b", 600),                                // " " -> "%20"
	} {
		require.LessOrEqual(t, len(raw), webhook.MaxURLLength)
		got, err := webhook.CheckURL(raw, false)
		requireRuleError(t, err, webhook.CodeInvalidURL, "longer than 2048", "normalised")
		require.Empty(t, got)
	}
	// Escaping that stays within the limit is fine, and stable.
	raw := prefix + strings.Repeat("a", webhook.MaxURLLength-len(prefix)-3) + " "
	got, err = webhook.CheckURL(raw, false)
	require.NoError(t, err)
	require.Len(t, got, webhook.MaxURLLength)
	require.True(t, strings.HasSuffix(got, "a%20"), got)
	again, err := webhook.CheckURL(got, false)
	require.NoError(t, err)
	require.Equal(t, got, again)
}

func TestCheckURLSpellingsNormaliseEqual(t *testing.T) {
	t.Parallel()
	groups := [][]string{
		{
			"https://example.com",
			"https://example.com/",
			"HTTPS://EXAMPLE.COM",
			"https://example.com:443",
			"https://example.com:443/",
			"https://Example.Com.:443/",
			"hTTpS://eXaMpLe.CoM.",
			// Issue 9: IDNA drops soft hyphens and zero-width spaces and
			// folds width, so these are the same webhook.
			"https://exam\u00adple.com/",
			"https://exam\u200bple.com/",
			"https://ｅｘａｍｐｌｅ.ｃｏｍ/",
			"https://ⓔⓧⓐⓜⓟⓛⓔ.com/",
		},
		{
			"https://example.com:8443/hooks?x=1",
			"HTTPS://EXAMPLE.COM:8443/hooks?x=1",
			"https://example.com.:8443/hooks?x=1",
		},
		{
			"https://hooks.example.com/orders",
			"https://HOOKS.example.com:443/orders",
			"Https://hooks.EXAMPLE.com./orders",
		},
		{
			"https://[2001:db8::1]/",
			"https://[2001:DB8::1]:443",
		},
		{
			"https://bücher.de/",
			"https://BÜCHER.DE/",
			"https://Bücher.de.:443",
		},
	}
	var firsts []string
	for _, group := range groups {
		want, err := webhook.CheckURL(group[0], false)
		require.NoError(t, err)
		for _, raw := range group[1:] {
			got, err := webhook.CheckURL(raw, false)
			require.NoError(t, err, raw)
			require.Equal(t, want, got, "%q and %q must normalise equal", group[0], raw)
		}
		firsts = append(firsts, want)
	}
	// Different URLs stay different.
	distinct := append(firsts,
		"https://example.com/Hooks", // path case matters
		"https://example.com/hooks",
		"https://example.com:8443/",
		"https://example.com/?a=1",
		"https://example.com/?a=2",
		"https://www.example.com/",
	)
	seen := map[string]string{}
	for _, raw := range distinct {
		got, err := webhook.CheckURL(raw, false)
		require.NoError(t, err, raw)
		prev, dup := seen[got]
		require.False(t, dup, "%q and %q both normalise to %q", prev, raw, got)
		seen[got] = raw
	}
}

func TestIsPublicAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr   string
		public bool
	}{
		{"8.8.8.8", true},
		{"1.1.1.1", true},
		{"93.184.216.34", true},
		{"100.63.255.255", true},
		{"100.128.0.0", true},
		{"172.15.255.255", true},
		{"172.32.0.0", true},
		{"192.167.255.255", true},
		{"192.169.0.0", true},
		{"2606:4700::1111", true},
		{"2001:4860:4860::8888", true},
		{"::ffff:8.8.8.8", true},

		{"127.0.0.1", false},
		{"127.1.2.3", false},
		{"10.0.0.1", false},
		{"10.255.255.255", false},
		{"172.16.0.1", false},
		{"172.31.255.255", false},
		{"192.168.1.1", false},
		{"169.254.169.254", false},
		{"0.0.0.0", false},
		{"100.64.0.1", false},
		{"100.127.255.255", false},
		{"224.0.0.1", false},
		{"239.255.255.255", false},
		{"::1", false},
		{"::", false},
		{"fe80::1", false},
		{"fc00::1", false},
		{"fdff:ffff::1", false},
		{"ff01::1", false}, // interface-local multicast
		{"ff02::1", false}, // link-local multicast
		{"ff0e::1", false}, // global multicast
		{"::ffff:127.0.0.1", false},
		{"::ffff:10.0.0.1", false},
		{"::ffff:100.64.0.1", false},
		{"::ffff:0.0.0.0", false},
		{"fe80::1%eth0", false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.public, webhook.IsPublicAddr(netip.MustParseAddr(tt.addr)))
		})
	}
	t.Run("zero value", func(t *testing.T) {
		t.Parallel()
		require.False(t, webhook.IsPublicAddr(netip.Addr{}))
	})
}

// longHostname returns a valid host name of exactly n bytes (n >= 3).
func longHostname(n int) string {
	var labels []string
	for n > 0 {
		size := min(63, n)
		if n-size == 1 { // a lone dot would remain: shorten this label
			size--
		}
		labels = append(labels, strings.Repeat("a", size))
		n -= size
		if n > 0 {
			n-- // the dot
		}
	}
	return strings.Join(labels, ".")
}

func TestLongHostname(t *testing.T) {
	t.Parallel()
	for _, n := range []int{3, 63, 64, 65, 127, 128, 253, 254} {
		h := longHostname(n)
		require.Len(t, h, n)
		for _, label := range strings.Split(h, ".") {
			require.NotEmpty(t, label)
			require.LessOrEqual(t, len(label), 63)
		}
	}
}
