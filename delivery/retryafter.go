package delivery

import (
	"net/http"
	"strings"
	"time"
)

// maxRetryAfter caps a receiver's Retry-After: past it the number is more
// likely a mistake than a plan, and it keeps the arithmetic far from overflow.
// The dispatcher caps it further, at its schedule's longest delay.
const maxRetryAfter = 30 * 24 * time.Hour

// parseRetryAfter reads a Retry-After value (RFC 9110 §10.2.3): delay-seconds
// (1*DIGIT) or an HTTP-date, the latter relative to now. Anything else, a
// date not after now, and 0 give 0; the result is never negative and at most
// maxRetryAfter.
func parseRetryAfter(value string, now time.Time) time.Duration {
	value = strings.Trim(value, " \t")
	if value == "" {
		return 0
	}
	if isDigits(value) {
		const maxSeconds = int64(maxRetryAfter / time.Second)
		var seconds int64
		for i := range len(value) {
			seconds = seconds*10 + int64(value[i]-'0')
			if seconds > maxSeconds {
				return maxRetryAfter // before the next digit could overflow
			}
		}
		return time.Duration(seconds) * time.Second
	}
	// IMF-fixdate, or the obsolete RFC 850 and asctime forms a recipient must
	// also accept.
	date, err := http.ParseTime(value)
	if err != nil {
		return 0
	}
	wait := date.Sub(now) // saturates rather than overflows
	switch {
	case wait <= 0:
		return 0
	case wait > maxRetryAfter:
		return maxRetryAfter
	}
	return wait
}

func isDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
