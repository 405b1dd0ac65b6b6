package webhook_test

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hookferry/hookferry/webhook"
)

var urlSeeds = []string{
	"",
	"https://example.com",
	"https://example.com/",
	"https://example.com/hook?x=1&y=2",
	"HTTPS://EXAMPLE.COM:443/Hook",
	"hTtPs://Example.Com.:443",
	"https://example.com:8443/hooks",
	"https://example.com:0443/",
	"https://example.com:00000/",
	"https://example.com:65535",
	"https://example.com:65536",
	"https://example.com:",
	"https://example.com/?",
	"https://example.com/#",
	"https://example.com/p#frag",
	"https://user:pass@example.com/",
	"https://@example.com/",
	"https://",
	"https:///x",
	"https:example.com",
	"https:/example.com",
	"//example.com/",
	"example.com",
	"/relative/path",
	"http://example.com/",
	"HTTP://example.com/",
	"ftp://example.com/",
	"javascript:alert(1)",
	"https://127.0.0.1/",
	"https://10.0.0.1/",
	"https://172.16.0.1/",
	"https://192.168.1.1/",
	"https://169.254.169.254/latest/meta-data",
	"https://0.0.0.0/",
	"https://100.64.0.1/",
	"https://224.0.0.1/",
	"https://[::1]/",
	"https://[::1]:8443",
	"https://[fe80::1]/",
	"https://[fe80::1%25eth0]/",
	"https://[fc00::1]/",
	"https://[::ffff:127.0.0.1]/",
	"https://[2001:DB8::1]:443/x",
	"https://[::]/",
	"https://[]/",
	"https://[example.com]/",
	"https://localhost/",
	"https://LOCALHOST./",
	"https://sub.localhost:8443/",
	"https://localhost.com/",
	"https://./",
	"https://example.com../",
	"https://-a.com/",
	"https://a_b.example.com/",
	"https://xn--bcher-kva.de/",
	"https://bücher.de/",
	"https://BÜCHER.DE/",
	"https://example.com/a%2Fb",
	"https://example.com/a b",
	"https://example.com/%zz",
	"https://example.com/%41",
	"https://exa mple.com/",
	"https://example.com\\@evil.com/",
	"https://example.com/\x00",
	"https://" + strings.Repeat("a", 63) + ".com/",
	"https://" + strings.Repeat("a", 64) + ".com/",
	"https://example.com/" + strings.Repeat("a", webhook.MaxURLLength-len("https://example.com/")),
	"https://example.com/" + strings.Repeat("a", webhook.MaxURLLength),
	// Found by FuzzCheckURL: normalising escapes the path ("[" -> "%5B", "ü" ->
	// "%C3%BC"), so a URL at the limit used to normalise to one over it.
	"https://example.com/" + strings.Repeat("a", webhook.MaxURLLength-len("https://example.com/")-1) + "[",
	"https://example.com/" + strings.Repeat("a", 1000) + "[" + strings.Repeat("a", webhook.MaxURLLength-len("https://example.com/")-1001),
	"https://example.com/" + strings.Repeat("ü", (webhook.MaxURLLength-len("https://example.com/"))/2),
	"https://example.com/" + strings.Repeat("a b", 600),
	// Issue 9: forms that resolve to a private host or to another webhook's.
	"https://１２７.０.０.１/",
	"https://ｌｏｃａｌｈｏｓｔ/",
	"https://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ/",
	"https://①②⑦.0.0.1/",
	"https://127。0。0。1/",
	"https://[::ffff:0:7f00:1]/",
	"https://[::ffff:0:a00:1]/",
	"https://exam\u00adple.com/",
	"https://exam\u200bple.com/",
	"https://ｅｘａｍｐｌｅ.com/",
	"https://xn--/",
	"https://a\u202eb.com/",
	"https://\u0627\u0031.com/",
	// Found by FuzzCheckURL: IDNA maps U+FFFD to xn--zn7c, which it refuses.
	"https://\x9a",
	"https://\ufffd.com/",
}

func FuzzCheckURL(f *testing.F) {
	for _, s := range urlSeeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, raw string, allowPrivate bool) {
		normalized, err := webhook.CheckURL(raw, allowPrivate)
		if err != nil {
			var re *webhook.RuleError
			if !errors.As(err, &re) {
				t.Fatalf("CheckURL(%q): error %v is a %T, not a *webhook.RuleError", raw, err, err)
			}
			if re.Code != webhook.CodeInvalidURL && re.Code != webhook.CodeURLNotHTTPS {
				t.Fatalf("CheckURL(%q): code %q", raw, re.Code)
			}
			if re.Message == "" {
				t.Fatalf("CheckURL(%q): empty message", raw)
			}
			if normalized != "" {
				t.Fatalf("CheckURL(%q): error %v and a result %q", raw, err, normalized)
			}
			if allowPrivate {
				// Allowing private targets only ever accepts more.
				if _, err2 := webhook.CheckURL(raw, false); err2 == nil {
					t.Fatalf("CheckURL(%q) passes without private targets but fails with them: %v", raw, err)
				}
			}
			return
		}

		// CheckURL bounds the normalised form too, so that it passes again.
		if len(normalized) > webhook.MaxURLLength {
			t.Fatalf("CheckURL(%q) (%d bytes) normalises to %d bytes", raw, len(raw), len(normalized))
		}
		u, perr := url.Parse(normalized)
		if perr != nil {
			t.Fatalf("CheckURL(%q) = %q, which does not parse: %v", raw, normalized, perr)
		}
		if u.Scheme != "https" || !strings.HasPrefix(normalized, "https://") {
			t.Fatalf("CheckURL(%q) = %q: scheme %q", raw, normalized, u.Scheme)
		}
		if u.Host == "" || u.Hostname() == "" {
			t.Fatalf("CheckURL(%q) = %q: no host", raw, normalized)
		}
		if u.User != nil {
			t.Fatalf("CheckURL(%q) = %q: user-info", raw, normalized)
		}
		if u.Fragment != "" || strings.Contains(normalized, "#") {
			t.Fatalf("CheckURL(%q) = %q: fragment", raw, normalized)
		}
		if u.Port() == "443" {
			t.Fatalf("CheckURL(%q) = %q: default port kept", raw, normalized)
		}
		if u.Path == "" {
			t.Fatalf("CheckURL(%q) = %q: empty path", raw, normalized)
		}
		host := u.Hostname()
		if host != strings.ToLower(host) || strings.HasSuffix(host, ".") {
			t.Fatalf("CheckURL(%q) = %q: host %q not normalised", raw, normalized, host)
		}
		if !allowPrivate {
			if addr, err := netip.ParseAddr(host); err == nil && !webhook.IsPublicAddr(addr) {
				t.Fatalf("CheckURL(%q) = %q: private address accepted", raw, normalized)
			}
			if host == "localhost" || strings.HasSuffix(host, ".localhost") {
				t.Fatalf("CheckURL(%q) = %q: localhost accepted", raw, normalized)
			}
			// What passes without private targets passes with them, the same.
			if n2, err := webhook.CheckURL(raw, true); err != nil || n2 != normalized {
				t.Fatalf("CheckURL(%q, true) = %q, %v; with false: %q", raw, n2, err, normalized)
			}
		}

		// Idempotence: the normalised URL is valid and its own normal form.
		again, err := webhook.CheckURL(normalized, allowPrivate)
		if err != nil {
			t.Fatalf("CheckURL(%q) = %q, which fails CheckURL: %v", raw, normalized, err)
		}
		if again != normalized {
			t.Fatalf("CheckURL(%q) = %q, which normalises to %q", raw, normalized, again)
		}
	})
}

var subscriptionSeeds = []string{
	"",
	"order.created",
	"order.created,payment.failed",
	"order.created,order.created",
	"order.created,payment.failed,order.created",
	"order.exploded",
	"Order.Created",
	" order.created",
	"order.created,",
	",",
	",,,",
	strings.Join(defaultNames, ","),
	strings.Join(defaultNames, ",") + ",order.created",
	strings.Repeat("order.created,", 100) + "order.created",
	strings.Repeat("x", webhook.MaxEventTypeLength+1),
	strings.Repeat("x", webhook.MaxEventTypeLength),
	"order.created," + strings.Repeat("y", 1000),
	"\x00",
	"order.créated",
	"order.created\n",
}

var indexInMessage = regexp.MustCompile(`^subscription\.event_types\[(\d+)\]`)

func FuzzCheckSubscription(f *testing.F) {
	for _, s := range subscriptionSeeds {
		f.Add(s)
	}
	catalog := webhook.DefaultCatalog()
	f.Fuzz(func(t *testing.T, s string) {
		var list []string
		if s != "" {
			list = strings.Split(s, ",")
		}
		err := catalog.CheckSubscription(list)

		// An independent statement of the rule.
		fault := -1 // index of the first bad entry
		seen := map[string]bool{}
		for i, name := range list {
			if !catalog.Has(name) || seen[name] {
				fault = i
				break
			}
			seen[name] = true
		}
		valid := len(list) >= 1 && len(list) <= webhook.MaxSubscriptionSize && fault < 0

		if err == nil {
			if !valid {
				t.Fatalf("CheckSubscription(%q) passes", list)
			}
			return
		}
		if valid {
			t.Fatalf("CheckSubscription(%q) = %v, want nil", list, err)
		}
		var re *webhook.RuleError
		if !errors.As(err, &re) {
			t.Fatalf("CheckSubscription(%q): error %v is a %T, not a *webhook.RuleError", list, err, err)
		}
		if re.Code != webhook.CodeInvalidSubscription {
			t.Fatalf("CheckSubscription(%q): code %q", list, re.Code)
		}
		if re.Message == "" {
			t.Fatalf("CheckSubscription(%q): empty message", list)
		}
		switch {
		case len(list) == 0:
			if !strings.Contains(re.Message, "at least one") {
				t.Fatalf("CheckSubscription(%q): message %q", list, re.Message)
			}
		case len(list) > webhook.MaxSubscriptionSize:
			if !strings.Contains(re.Message, strconv.Itoa(len(list))) || !strings.Contains(re.Message, strconv.Itoa(webhook.MaxSubscriptionSize)) {
				t.Fatalf("CheckSubscription(%d entries): message %q", len(list), re.Message)
			}
		default:
			// The message names the first bad entry: its index, and its name
			// unless the name is too long to repeat.
			m := indexInMessage.FindStringSubmatch(re.Message)
			if m == nil {
				t.Fatalf("CheckSubscription(%q): message %q names no entry", list, re.Message)
			}
			i, _ := strconv.Atoi(m[1])
			if i != fault {
				t.Fatalf("CheckSubscription(%q): message %q names entry %d, the first bad one is %d", list, re.Message, i, fault)
			}
			if len(list[i]) <= webhook.MaxEventTypeLength && !strings.Contains(re.Message, fmt.Sprintf("%q", list[i])) {
				t.Fatalf("CheckSubscription(%q): message %q does not name %q", list, re.Message, list[i])
			}
			if len(re.Message) > 1024 {
				t.Fatalf("CheckSubscription(%q): message of %d bytes", list, len(re.Message))
			}
		}
	})
}
