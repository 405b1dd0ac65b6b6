package webhook

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Code names a broken rule; the values are the API's error codes.
type Code string

// The codes of the rules a registration must follow.
const (
	CodeInvalidURL          Code = "INVALID_URL"
	CodeURLNotHTTPS         Code = "INVALID_URL_IS_NOT_USING_HTTPS"
	CodeInvalidSubscription Code = "INVALID_SUBSCRIPTION"
)

// RuleError says which rule an input broke and how, in words fit for the caller.
type RuleError struct {
	Code    Code
	Message string
}

func (e *RuleError) Error() string { return string(e.Code) + ": " + e.Message }

func ruleErrorf(code Code, format string, args ...any) *RuleError {
	return &RuleError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// MaxURLLength bounds a webhook URL, in bytes.
const MaxURLLength = 2048

// CheckURL checks a webhook URL against the rules of registration and returns its
// normalised form (lower-case scheme, host mapped with IDNA to its ASCII form,
// default port dropped), on which duplicates are judged and which is stored. Loopback, private, link-local, unspecified and
// multicast IP literals, and localhost, are refused unless allowPrivate is set.
func CheckURL(raw string, allowPrivate bool) (string, error) {
	if raw == "" {
		return "", ruleErrorf(CodeInvalidURL, "url is empty")
	}
	if len(raw) > MaxURLLength {
		return "", ruleErrorf(CodeInvalidURL, "url is longer than %d characters", MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", ruleErrorf(CodeInvalidURL, "url does not parse: %s", describeParseError(err))
	}
	if !u.IsAbs() {
		return "", ruleErrorf(CodeInvalidURL, "url must be absolute")
	}
	if !strings.EqualFold(u.Scheme, "https") {
		return "", ruleErrorf(CodeURLNotHTTPS, "url must use https, not %q", strings.ToLower(u.Scheme))
	}
	if u.Opaque != "" {
		return "", ruleErrorf(CodeInvalidURL, "url must be of the form https://host/path")
	}
	if u.User != nil {
		return "", ruleErrorf(CodeInvalidURL, "url must not contain user information")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return "", ruleErrorf(CodeInvalidURL, "url must not contain a fragment")
	}
	host := u.Hostname()
	if host == "" {
		return "", ruleErrorf(CodeInvalidURL, "url must name a host")
	}
	if port := u.Port(); port != "" {
		if n, ok := parsePort(port); !ok || n == 0 {
			return "", ruleErrorf(CodeInvalidURL, "url port %q is not a port number", port)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return "", ruleErrorf(CodeInvalidURL, "url has an empty port")
	}
	if !strings.Contains(host, ":") { // not an IPv6 literal
		ascii, err := toASCII(host)
		if err != nil {
			return "", ruleErrorf(CodeInvalidURL, "url host %q is not a valid host name: %s", host, describeIDNAError(err))
		}
		host = ascii
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "" {
		return "", ruleErrorf(CodeInvalidURL, "url must name a host")
	}
	if addr, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		if addr.Zone() != "" {
			return "", ruleErrorf(CodeInvalidURL, "url host must not carry an IPv6 zone")
		}
		if !allowPrivate && !IsPublicAddr(addr) {
			return "", ruleErrorf(CodeInvalidURL, "url host %s is not a public address", addr)
		}
	} else {
		if !allowPrivate && (host == "localhost" || strings.HasSuffix(host, ".localhost")) {
			return "", ruleErrorf(CodeInvalidURL, "url host %s is not a public address", host)
		}
		if numericHost(host) {
			return "", ruleErrorf(CodeInvalidURL, "url host %q is neither a host name nor a dotted IP address", host)
		}
		if !validHostname(host) {
			return "", ruleErrorf(CodeInvalidURL, "url host %q is not a valid host name", host)
		}
	}
	normalized := normalize(u, host)
	if len(normalized) > MaxURLLength {
		return "", ruleErrorf(CodeInvalidURL, "url is longer than %d characters once normalised", MaxURLLength)
	}
	return normalized, nil
}

// hostProfile maps a host as a resolver would (UTS #46 for lookup: width and
// compatibility forms folded, soft hyphens and zero-width characters dropped,
// labels to Punycode), so that the private-address and duplicate checks judge
// what the name resolves to. Underscores stay allowed, as they are in DNS.
var hostProfile = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.ValidateLabels(true), idna.StrictDomainName(false))

// toASCII maps host with hostProfile, and refuses a host whose mapping is not
// its own mapping (such as U+FFFD, whose Punycode form IDNA refuses), so that
// a normalised URL passes CheckURL again.
func toASCII(host string) (string, error) {
	if !utf8.ValidString(host) {
		return "", errors.New("it is not valid UTF-8")
	}
	ascii, err := hostProfile.ToASCII(host)
	if err != nil {
		return "", err
	}
	if again, err := hostProfile.ToASCII(ascii); err != nil || again != ascii {
		return "", fmt.Errorf("its mapping %q does not map to itself", ascii)
	}
	return ascii, nil
}

func describeIDNAError(err error) string {
	msg := err.Error()
	return strings.TrimPrefix(msg, "idna: ")
}

// IsPublicAddr reports whether addr may receive deliveries from a deployment
// that does not allow private targets.
func IsPublicAddr(addr netip.Addr) bool {
	addr = addr.Unmap()
	if !addr.IsValid() || addr.IsLoopback() || addr.IsPrivate() || addr.IsUnspecified() ||
		addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast() || addr.IsInterfaceLocalMulticast() || addr.IsMulticast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(addr) {
			return false
		}
	}
	// IPv6 forms that embed an IPv4 address reach that address.
	if embedded, ok := embeddedIPv4(addr); ok {
		return IsPublicAddr(embedded)
	}
	return true
}

// nonPublic lists the ranges, beyond the standard library's predicates, that are
// not routable on the Internet.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),     // "this network"
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT (RFC 6598)
	netip.MustParsePrefix("192.0.0.0/24"),  // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved, and broadcast
	netip.MustParsePrefix("::/96"),         // IPv4-compatible (deprecated)
	netip.MustParsePrefix("100::/64"),      // discard
}

var (
	nat64 = []netip.Prefix{netip.MustParsePrefix("64:ff9b::/96"), netip.MustParsePrefix("64:ff9b:1::/48")}
	// IPv4-translated addresses (RFC 2765, ::ffff:0:a.b.c.d) reach a.b.c.d, as
	// IPv4-mapped ones (::ffff:a.b.c.d, handled by Unmap) do.
	translated = netip.MustParsePrefix("::ffff:0:0:0/96")
	sixToFour  = netip.MustParsePrefix("2002::/16")
)

func embeddedIPv4(addr netip.Addr) (netip.Addr, bool) {
	if !addr.Is6() {
		return netip.Addr{}, false
	}
	b := addr.As16()
	for _, p := range append(nat64, translated) {
		if p.Contains(addr) {
			return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
		}
	}
	if sixToFour.Contains(addr) {
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), true
	}
	return netip.Addr{}, false
}

func normalize(u *url.URL, host string) string {
	n := *u
	n.Scheme = "https"
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if n, _ := parsePort(u.Port()); n != 0 && n != 443 {
		host = net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(n))
	}
	n.Host = host
	if n.Path == "" {
		n.Path = "/"
	}
	// RawPath stays: it keeps escapes such as %2F that Path alone would lose.
	return n.String()
}

func parsePort(s string) (int, bool) {
	if len(s) > 5 {
		return 0, false
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n <= 65535
}

// validHostname accepts DNS names (letters, digits, hyphens, underscores, dots;
// labels of 1 to 63 characters) and internationalised names already in Unicode.
func validHostname(host string) bool {
	if len(host) > 253 {
		return false
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return false
		}
		for _, c := range label {
			if c == '-' || c == '_' || c > 0x7f || ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') {
				continue
			}
			return false
		}
	}
	return true
}

// numericHost spots hosts such as 127.1, 2130706433 or 0x7f000001 that resolvers
// read as IP addresses: no top-level domain is numeric.
func numericHost(host string) bool {
	labels := strings.Split(host, ".")
	last := labels[len(labels)-1]
	if last == "" {
		return false
	}
	return strings.HasPrefix(last, "0x") || strings.Trim(last, "0123456789") == ""
}

func describeParseError(err error) string {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err.Error()
	}
	return err.Error()
}
