package delivery

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var retryAfterNow = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

var retryAfterCases = []struct {
	value string
	want  time.Duration
}{
	{"", 0},
	{"0", 0},
	{"1", time.Second},
	{"120", 2 * time.Minute},
	{" 120\t", 2 * time.Minute}, // optional whitespace
	{"007", 7 * time.Second},
	{"2592000", maxRetryAfter}, // 30 days exactly
	{"2592001", maxRetryAfter},
	{"99999999999999999999999999999999", maxRetryAfter}, // past int64: clamped, not wrapped
	{"9223372036854775807", maxRetryAfter},
	{"92233720368547770000", maxRetryAfter}, // wraps to 3h18m40s if checked only after the loop (found by fuzzing)
	{"-1", 0},
	{"-99999999999999999999", 0},
	{"+5", 0},
	{"1.5", 0},
	{"1e3", 0},
	{"120 s", 0},
	{"1 2", 0},
	{"0x10", 0},
	{"soon", 0},
	{"１２", 0}, // fullwidth digits are not DIGIT
	// HTTP-dates, relative to retryAfterNow.
	{"Thu, 02 Jan 2025 03:05:35 GMT", 90 * time.Second},
	{"Thursday, 02-Jan-25 03:05:35 GMT", 90 * time.Second}, // RFC 850
	{"Thu Jan  2 03:05:35 2025", 90 * time.Second},         // asctime
	{"Thu, 02 Jan 2025 03:04:05 GMT", 0},                   // now
	{"Thu, 02 Jan 2025 03:04:04 GMT", 0},                   // past
	{"Sat, 01 Jan 2000 00:00:00 GMT", 0},
	{"Fri, 31 Dec 9999 23:59:59 GMT", maxRetryAfter},
	{"Thu, 02 Jan 2025 03:05:35 PST", 0}, // HTTP-dates are GMT
	{"Thu, 02 Jan 2025 03:05:35", 0},
	{"Thu, 32 Jan 2025 03:05:35 GMT", 0},
	{"2025-01-02T03:05:35Z", 0}, // RFC 3339 is not an HTTP-date
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	for _, c := range retryAfterCases {
		require.Equal(t, c.want, parseRetryAfter(c.value, retryAfterNow), "%q", c.value)
	}
	// A date is read against the clock given, wall time or not.
	date := retryAfterNow.Add(time.Hour).Format(http.TimeFormat)
	require.Equal(t, time.Hour, parseRetryAfter(date, retryAfterNow))
	require.Equal(t, 30*time.Minute, parseRetryAfter(date, retryAfterNow.Add(30*time.Minute).In(time.FixedZone("X", 3600))))
	require.Equal(t, maxRetryAfter, parseRetryAfter(date, time.Unix(-1<<62, 0)), "a difference past Duration saturates")
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, c := range retryAfterCases {
		f.Add(c.value, retryAfterNow.Unix())
	}
	f.Add("Thu, 02 Jan 2025 03:05:35 GMT", int64(-1<<62))
	f.Add("Thu, 02 Jan 2025 03:05:35 GMT", int64(1<<62))
	f.Fuzz(func(t *testing.T, value string, nowUnix int64) {
		got := parseRetryAfter(value, time.Unix(nowUnix, 0))
		if got < 0 || got > maxRetryAfter {
			t.Fatalf("parseRetryAfter(%q) = %v, outside [0, %v]", value, got, maxRetryAfter)
		}
		// delay-seconds read as a number, up to the clamp.
		trimmed := strings.Trim(value, " \t")
		if trimmed == "" || !isDigits(trimmed) {
			return
		}
		want := maxRetryAfter
		if n, err := strconv.ParseInt(trimmed, 10, 64); err == nil && n <= int64(maxRetryAfter/time.Second) {
			want = time.Duration(n) * time.Second
		}
		if got != want {
			t.Fatalf("parseRetryAfter(%q) = %v, want %v", value, got, want)
		}
	})
}
