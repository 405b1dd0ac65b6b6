package store

import (
	"context"

	"gorm.io/gorm"
)

// GormDB is the store's database handle, for tests that look at rows the API
// does not show or set up states it cannot reach.
func (s *Store) GormDB() *gorm.DB { return s.db }

// Transaction runs fn as the store runs its own transactions.
func (s *Store) Transaction(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return s.transaction(ctx, fn)
}

// Settle runs a round of the releaser now: holds, then releases.
func (s *Store) Settle(ctx context.Context) error { return s.settle(ctx) }
