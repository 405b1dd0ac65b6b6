package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"gorm.io/gorm"
)

// revisions follows the revisions counter, which every revocation and erasure
// bumps in its own transaction. Another process (the CLI, another instance)
// has no way to reach this one in time, so Sync reads the counter before a
// cached token is trusted: on SQLite on a connection of its own that never
// waits for the writer. (Delivery attempts ask the database directly:
// Startable.)
type revisions struct {
	reader *sql.DB
	seen   int64 // the last value read; only the one read under way touches it

	// Concurrent Syncs share reads of the counter: a caller waits for the
	// next read that starts after it arrived (a read already under way may
	// have started before the revocation it must see), so under load there
	// is one read per read's duration, not one per request.
	rounds  sync.Mutex
	running bool
	next    *syncRound
}

// syncRound is one read of the counter and those waiting for it.
type syncRound struct {
	done chan struct{}
	err  error
}

func (s *Store) openRevisions(ctx context.Context) error {
	reader, own, err := s.dialect.openReader(s.db)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	s.revisions.reader, s.ownReader = reader, own
	return s.revisions.reader.QueryRowContext(ctx, "SELECT seq FROM revisions WHERE id = 1").Scan(&s.revisions.seen)
}

// Sync makes this process see the revocations and erasures other processes
// committed: after it returns, a token revoked before it was called is no
// longer accepted. It costs a read of a one-row table, shared by the callers
// of the moment.
func (s *Store) Sync(ctx context.Context) error {
	r := &s.revisions
	r.rounds.Lock()
	if r.running {
		if r.next == nil {
			r.next = &syncRound{done: make(chan struct{})}
		}
		round := r.next
		r.rounds.Unlock()
		select {
		case <-round.done:
			return round.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.running = true
	r.rounds.Unlock()
	err := s.readRevision()
	s.nextRound()
	return err
}

// nextRound reads for those who arrived during the last read, in a goroutine
// of its own so that no caller keeps reading for others, until none waits.
func (s *Store) nextRound() {
	r := &s.revisions
	r.rounds.Lock()
	defer r.rounds.Unlock()
	round := r.next
	r.next = nil
	if round == nil {
		r.running = false
		return
	}
	go func() {
		round.err = s.readRevision()
		close(round.done)
		s.nextRound()
	}()
}

// readRevision reads the counter and, if it moved, drops what another process
// may have invalidated. Not under ctx: others may be waiting for this read.
func (s *Store) readRevision() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var seq int64
	if err := s.revisions.reader.QueryRowContext(ctx, "SELECT seq FROM revisions WHERE id = 1").Scan(&seq); err != nil {
		return fmt.Errorf("store.Sync: %w", err)
	}
	moved := seq != s.revisions.seen
	s.revisions.seen = seq
	if moved {
		s.revised()
	}
	return nil
}

// revised drops the cached tokens: another process may have revoked some.
func (s *Store) revised() { s.tokens.clear() }

// bumpRevision records, in tx, that tokens were revoked or data erased.
func (s *Store) bumpRevision(tx *gorm.DB) error {
	return tx.Exec("UPDATE revisions SET seq = seq + 1 WHERE id = 1").Error
}
