package server

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// sweepEvery is how often tenantLimits forgets the tenants whose bucket is full.
const sweepEvery = time.Minute

// tenantLimits is a token bucket per tenant, in this instance: perSecond
// requests a second, in bursts of up to twice that. A full bucket is the same as
// a new one, so a sweep every minute drops the full ones, and the map holds only
// the tenants heard from in about the last minute.
type tenantLimits struct {
	perSecond int
	burst     int

	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
	lastSweep time.Time
}

// newTenantLimits limits each tenant to perSecond requests a second; nil (no
// limit) for perSecond <= 0.
func newTenantLimits(perSecond int) *tenantLimits {
	if perSecond <= 0 {
		return nil
	}
	return &tenantLimits{perSecond: perSecond, burst: 2 * perSecond, buckets: make(map[string]*rate.Limiter)}
}

// take counts one request of tenant at now. It answers 0 when the request may go
// ahead, else how long until it could; a refused request takes nothing.
func (l *tenantLimits) take(tenant string, now time.Time) time.Duration {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= sweepEvery {
		l.sweep(now)
	}
	b := l.buckets[tenant]
	if b == nil {
		b = rate.NewLimiter(rate.Limit(l.perSecond), l.burst)
		l.buckets[tenant] = b
	}
	if b.AllowN(now, 1) {
		return 0
	}
	missing := 1 - b.TokensAt(now)
	return time.Duration(math.Ceil(missing / float64(l.perSecond) * float64(time.Second)))
}

// sweep drops the full buckets.
func (l *tenantLimits) sweep(now time.Time) {
	for tenant, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, tenant)
		}
	}
	l.lastSweep = now
}

// tenants is how many buckets are kept (tests).
func (l *tenantLimits) tenants() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// retryAfterSeconds renders a wait as Retry-After does: whole seconds, rounded
// up, at least 1.
func retryAfterSeconds(wait time.Duration) int {
	return max(1, int(math.Ceil(wait.Seconds())))
}
