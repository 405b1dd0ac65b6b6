package store

import (
	"context"
	"errors"
	"time"
)

// STUB: the bodies land with the store work; signatures are fixed.

// PruneCounts is what a prune removed.
type PruneCounts struct{ Deliveries, Attempts, Events int64 }

// Prune removes, in bounded batches, the deliveries DELIVERED or FAILED longer
// than olderThan ago, their attempts, and the events older than that which no
// longer have a delivery. PENDING deliveries and their events always stay.
func (s *Store) Prune(ctx context.Context, olderThan time.Duration) (PruneCounts, error) {
	return PruneCounts{}, errors.New("not implemented")
}

// EraseCounts is what an erasure removed.
type EraseCounts struct{ Webhooks, Deliveries, Attempts, Tokens, Events int64 }

// Erase removes every webhook, delivery, attempt and token of (tenant, user),
// or of the whole tenant and its events when userID is "".
func (s *Store) Erase(ctx context.Context, tenantID, userID string) (EraseCounts, error) {
	return EraseCounts{}, errors.New("not implemented")
}

// RotateKeys re-seals every signing secret under the first key of the ring and
// returns how many it re-sealed.
func (s *Store) RotateKeys(ctx context.Context) (int64, error) {
	return 0, errors.New("not implemented")
}

// HasTokens reports whether any token exists (revoked or not).
func (s *Store) HasTokens(ctx context.Context) (bool, error) { return false, errors.New("not implemented") }

// Ready reports whether the database answers and accepts writes.
func (s *Store) Ready(ctx context.Context) error { return s.Ping(ctx) }

// MigrationState is one migration and whether the database has it.
type MigrationState struct {
	Version   int64
	Name      string
	Applied   bool
	AppliedAt time.Time
}

// SchemaStatus is where a database's schema stands.
type SchemaStatus struct {
	Current    int64 // the newest version applied; 0 for none
	Latest     int64 // the newest this build knows
	Migrations []MigrationState
}

// Status reads the schema version of the database at databaseURL without
// changing anything.
func Status(ctx context.Context, databaseURL string) (SchemaStatus, error) {
	return SchemaStatus{}, errors.New("not implemented")
}
