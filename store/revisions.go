package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"github.com/glebarez/sqlite"
	"gorm.io/gorm"
)

// RevisionsChannel signals that another process revoked tokens or erased data:
// whoever holds something on their behalf (cached tokens, claims) checks it.
const RevisionsChannel = "hookferry_revisions"

// revisions follows the revisions counter, which every revocation and erasure
// bumps in its own transaction. On PostgreSQL the bump comes with a NOTIFY, and
// the cache of tokens is trusted only while Listen is connected; on SQLite the
// other process (the CLI) cannot signal, so Sync reads the counter, on a
// connection of its own that never waits for the writer.
type revisions struct {
	mu        sync.Mutex
	reader    *sql.DB // SQLite
	seen      int64
	listening bool // PostgreSQL: Listen is connected, notifications arrive
}

func (s *Store) openRevisions(ctx context.Context) error {
	if s.postgres {
		return nil
	}
	db, err := gorm.Open(sqlite.Open(sqliteDSN(s.loc.Path, false)), &gorm.Config{})
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	reader, err := db.DB()
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	reader.SetMaxOpenConns(1)
	s.revisions.reader = reader
	return reader.QueryRowContext(ctx, "SELECT seq FROM revisions WHERE id = 1").Scan(&s.revisions.seen)
}

// Sync makes this process see the revocations and erasures other processes
// committed: after it returns, a token revoked before it was called is no
// longer accepted and RevisionsChannel's handlers have run. It is cheap: one
// read of a one-row table on SQLite, nothing on PostgreSQL (notifications).
func (s *Store) Sync(ctx context.Context) error {
	if s.postgres {
		return nil
	}
	s.revisions.mu.Lock()
	defer s.revisions.mu.Unlock()
	var seq int64
	if err := s.revisions.reader.QueryRowContext(ctx, "SELECT seq FROM revisions WHERE id = 1").Scan(&seq); err != nil {
		return fmt.Errorf("store.Sync: %w", err)
	}
	if seq == s.revisions.seen {
		return nil
	}
	s.revisions.seen = seq
	s.revised()
	return nil
}

// revised drops what another process may have invalidated.
func (s *Store) revised() {
	s.tokens.clear()
	s.signal(RevisionsChannel, "")
}

// bumpRevision records, in tx, that tokens were revoked or data erased.
func (s *Store) bumpRevision(tx *gorm.DB) error {
	if err := tx.Exec("UPDATE revisions SET seq = seq + 1 WHERE id = 1").Error; err != nil {
		return err
	}
	if s.postgres {
		return tx.Exec("SELECT pg_notify(?, '')", RevisionsChannel).Error
	}
	return nil
}

// trustCache says whether cached tokens may be used: on PostgreSQL only while
// notifications of revocations arrive.
func (s *Store) trustCache() bool {
	if !s.postgres {
		return true // Sync ran first
	}
	s.revisions.mu.Lock()
	defer s.revisions.mu.Unlock()
	return s.revisions.listening
}

func (s *Store) setListening(on bool) {
	s.revisions.mu.Lock()
	s.revisions.listening = on
	s.revisions.mu.Unlock()
	if on {
		// What was revoked while nobody listened is unknown: start afresh.
		s.revised()
	}
}
