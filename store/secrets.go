package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hookferry/hookferry/keyring"
	"github.com/hookferry/hookferry/webhook"
	"gorm.io/gorm"
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

// sealPrevious seals the keys a rotation replaced, as one value; none is "".
func (s *Store) sealPrevious(keys []webhook.PreviousKey) (string, error) {
	if len(keys) == 0 {
		return "", nil
	}
	plain, err := json.Marshal(keys)
	if err != nil {
		return "", err
	}
	return s.sealSecret(string(plain))
}

// openPrevious opens what sealPrevious sealed.
func (s *Store) openPrevious(stored string) ([]webhook.PreviousKey, error) {
	if stored == "" {
		return nil, nil
	}
	plain, err := s.openSecret(stored)
	if err != nil {
		return nil, err
	}
	var keys []webhook.PreviousKey
	if err := json.Unmarshal([]byte(plain), &keys); err != nil {
		// The message of a JSON syntax error quotes no input.
		return nil, fmt.Errorf("previous signing keys: %w", err)
	}
	return keys, nil
}

// writeKeys stores w's current and previous keys, sealed.
func (s *Store) writeKeys(tx *gorm.DB, w webhook.Webhook) error {
	secret, err := s.sealSecret(w.Secret)
	if err != nil {
		return err
	}
	previous, err := s.sealPrevious(w.PreviousKeys)
	if err != nil {
		return err
	}
	return tx.Model(&webhookRow{ID: w.ID}).Updates(map[string]any{
		"secret": secret, "previous_secrets": previous, "updated_at": w.UpdatedAt,
	}).Error
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

// reseal rewrites, batch by batch, the secrets that need it (the current key
// and the sealed previous keys of each webhook), as open reads them.
func (s *Store) reseal(ctx context.Context, needs func(string) bool, open func(string) (string, error)) (int64, error) {
	var total int64
	after := ""
	// again seals what open read; "" (no previous keys) stays "".
	again := func(stored string) (string, bool, error) {
		if stored == "" || !needs(stored) {
			return stored, false, nil
		}
		plain, err := open(stored)
		if err != nil {
			return "", false, err
		}
		sealed, err := s.sealSecret(plain)
		return sealed, err == nil, err
	}
	for {
		var rows []webhookRow
		if err := s.db.WithContext(ctx).Select("id", "secret", "previous_secrets").Where("id > ?", after).Order("id").Limit(resealBatch).Find(&rows).Error; err != nil {
			return total, err
		}
		if len(rows) == 0 {
			return total, nil
		}
		after = rows[len(rows)-1].ID
		type change struct{ old, sealed webhookRow }
		var changes []change
		for _, r := range rows {
			secret, changed, err := again(r.Secret)
			if err != nil {
				return total, fmt.Errorf("webhook %s: %w", r.ID, err)
			}
			previous, changedPrevious, err := again(r.PreviousSecrets)
			if err != nil {
				return total, fmt.Errorf("webhook %s: previous keys: %w", r.ID, err)
			}
			if changed || changedPrevious {
				changes = append(changes, change{r, webhookRow{Secret: secret, PreviousSecrets: previous}})
			}
		}
		if len(changes) == 0 {
			continue
		}
		tx := s.db.WithContext(ctx).Begin()
		for _, c := range changes {
			// Only if unchanged meanwhile (a concurrent rotation).
			res := tx.Model(&webhookRow{}).Where("id = ? AND secret = ? AND previous_secrets = ?", c.old.ID, c.old.Secret, c.old.PreviousSecrets).
				Updates(map[string]any{"secret": c.sealed.Secret, "previous_secrets": c.sealed.PreviousSecrets})
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
