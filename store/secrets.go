package store

import (
	"context"
	"fmt"

	"github.com/hookferry/hookferry/keyring"
)

// Signing secrets are stored sealed by the keyring (AES-256-GCM); they are
// opened only to sign or to be shown to their owner.

func (s *Store) sealSecret(plain string) (string, error) { return s.keys.Seal(plain) }

func (s *Store) openSecret(stored string) (string, error) {
	plain, err := s.keys.Open(stored)
	if err != nil {
		return "", fmt.Errorf("signing secret: %w", err)
	}
	return plain, nil
}

// checkKeys fails when the newest stored secret cannot be opened: a wrong or
// missing key is better refused at start-up than met at every attempt.
func (s *Store) checkKeys(ctx context.Context) error {
	var rows []webhookRow
	if err := s.db.WithContext(ctx).Select("id", "secret").Order("created_at DESC").Limit(1).Find(&rows).Error; err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if len(rows) == 0 {
		return nil
	}
	if _, err := s.openSecret(rows[0].Secret); err != nil {
		return fmt.Errorf("store: the encryption keys given cannot open the signing secrets in %s (%w); give the key they were sealed with (HOOKFERRY_ENCRYPTION_KEYS, HOOKFERRY_ENCRYPTION_KEYS_FILE or the hookferry.key beside a SQLite database)", s.loc, err)
	}
	return nil
}

// resealBatch bounds the webhooks re-sealed per transaction.
const resealBatch = 500

// sealPlainSecrets seals the secrets that a release before secrets at rest
// stored in plain text. It then empties the WAL (SQLite), so that no copy of
// a plain secret stays on disk (secure_delete zeroes what the updates free).
func (s *Store) sealPlainSecrets(ctx context.Context) (err error) {
	defer wrap(&err, "store.sealPlainSecrets")
	n, err := s.reseal(ctx, func(stored string) bool { return !keyring.IsSealed(stored) }, func(stored string) (string, error) { return stored, nil })
	if err != nil || n == 0 {
		return err
	}
	if s.log != nil {
		s.log.Info("store: encrypted the signing secrets stored in plain text", "webhooks", n)
	}
	return s.dialect.truncateWAL(ctx, s.db)
}

// RotateKeys re-seals every signing secret under the first key of the ring and
// returns how many it re-sealed; a secret sealed by a key no longer in the ring
// is an error (nothing is lost: the batches done so far are under the new key).
func (s *Store) RotateKeys(ctx context.Context) (_ int64, err error) {
	defer wrap(&err, "store.RotateKeys")
	return s.reseal(ctx, func(stored string) bool { return !s.keys.SealedByPrimary(stored) }, s.openSecret)
}

// reseal rewrites, batch by batch, the secrets that need it, as open reads them.
func (s *Store) reseal(ctx context.Context, needs func(string) bool, open func(string) (string, error)) (int64, error) {
	var total int64
	after := ""
	for {
		var rows []webhookRow
		if err := s.db.WithContext(ctx).Select("id", "secret").Where("id > ?", after).Order("id").Limit(resealBatch).Find(&rows).Error; err != nil {
			return total, err
		}
		if len(rows) == 0 {
			return total, nil
		}
		after = rows[len(rows)-1].ID
		type change struct{ id, old, sealed string }
		var changes []change
		for _, r := range rows {
			if !needs(r.Secret) {
				continue
			}
			plain, err := open(r.Secret)
			if err != nil {
				return total, fmt.Errorf("webhook %s: %w", r.ID, err)
			}
			sealed, err := s.sealSecret(plain)
			if err != nil {
				return total, err
			}
			changes = append(changes, change{r.ID, r.Secret, sealed})
		}
		if len(changes) == 0 {
			continue
		}
		tx := s.db.WithContext(ctx).Begin()
		for _, c := range changes {
			// Only if unchanged meanwhile (a concurrent rotation).
			res := tx.Model(&webhookRow{}).Where("id = ? AND secret = ?", c.id, c.old).Update("secret", c.sealed)
			if res.Error != nil {
				tx.Rollback()
				return total, res.Error
			}
			total += res.RowsAffected
		}
		if err := tx.Commit().Error; err != nil {
			return total, err
		}
	}
}
