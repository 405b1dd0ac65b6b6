package store

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// txAttempts bounds how often transaction runs a transaction the database
// aborted as retryable; txBackoff is the wait before the second run, doubled
// before each later one, which lets the transaction that won go first.
const (
	txAttempts = 4
	txBackoff  = 5 * time.Millisecond
)

// transaction runs fn in a transaction, and runs it again when the database
// aborted it as a deadlock victim or a serialization failure (the dialect's
// retryable), so that the caller never sees an error that is nobody's fault.
// fn must read what it changes inside the transaction and keep no state from
// an aborted run, as every function of this package given to it does.
func (s *Store) transaction(ctx context.Context, fn func(tx *gorm.DB) error) error {
	wait := txBackoff
	for attempt := 1; ; attempt++ {
		err := s.db.WithContext(ctx).Transaction(fn)
		if err == nil || attempt == txAttempts || !s.dialect.retryable(err) {
			return err
		}
		select {
		case <-time.After(wait):
			wait *= 2
		case <-ctx.Done():
			return err
		}
	}
}

// relaxedTransaction is transaction for claims and outcomes, whose commit
// need not wait for the disk: losing the last of them in a crash means
// deliveries sent again (at least once), never an event lost. Publishes
// always commit synchronously.
func (s *Store) relaxedTransaction(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return s.transaction(withRelaxedCommit(ctx), func(tx *gorm.DB) error {
		if err := s.dialect.relaxCommit(tx); err != nil {
			return err
		}
		return fn(tx)
	})
}
