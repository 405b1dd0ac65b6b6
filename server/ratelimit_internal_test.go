package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestTenantLimitsForgetIdleTenants: the buckets of tenants that went quiet are
// dropped at the next sweep, so the map does not grow with every tenant ever
// seen; a bucket still refilling is kept, with what it has spent.
func TestTenantLimitsForgetIdleTenants(t *testing.T) {
	t.Parallel()
	l := newTenantLimits(5)
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for i := range 1000 {
		require.Zero(t, l.take(fmt.Sprintf("tenant-%d", i), t0))
	}
	require.Equal(t, 1000, l.tenants())

	// Just before the sweep, acme spends its burst of 10.
	busy := t0.Add(sweepEvery - time.Second)
	for range 10 {
		require.Zero(t, l.take("acme", busy))
	}
	require.Equal(t, 200*time.Millisecond, l.take("acme", busy))

	// The next request after a minute sweeps: the 1000 full buckets go, acme's
	// (2 of 10 tokens back) stays.
	sweep := t0.Add(sweepEvery + time.Millisecond)
	require.Zero(t, l.take("acme", sweep))
	require.Equal(t, 1, l.tenants())
	for range 4 { // 5.005 tokens came back in 1.001 s; one is spent
		require.Zero(t, l.take("acme", sweep))
	}
	require.Positive(t, l.take("acme", sweep), "acme's bucket kept what it had spent")
}

func TestRetryAfterSeconds(t *testing.T) {
	t.Parallel()
	for wait, want := range map[time.Duration]int{
		time.Nanosecond: 1, 200 * time.Millisecond: 1, time.Second: 1,
		time.Second + time.Nanosecond: 2, 6500 * time.Millisecond: 7,
	} {
		require.Equal(t, want, retryAfterSeconds(wait), wait)
	}
}

func TestNoLimit(t *testing.T) {
	t.Parallel()
	l := newTenantLimits(0)
	require.Nil(t, l)
	require.Zero(t, l.take("acme", time.Now()))
}
