package store_test

import (
	"context"
	"testing"

	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/hookferry/hookferry/webhook"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
)

// TestTransactionSurvivesDeadlock: two transactions lock two webhook rows in
// opposite orders; PostgreSQL aborts the store's (its deadlock timeout is the
// shorter), and the store runs it again, so the caller sees no error.
func TestTransactionSurvivesDeadlock(t *testing.T) {
	t.Parallel()
	st, err := store.Open(ctx, storetest.PostgresURL(t), store.Options{Keys: storetest.Keys()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	alice := webhook.Owner{TenantID: "acme", UserID: "alice"}
	a := register(t, st, alice, "https://example.com/a").ID
	b := register(t, st, alice, "https://example.com/b").ID
	touch := func(tx *gorm.DB, id string) error {
		return tx.Exec("UPDATE webhooks SET updated_at = now() WHERE id = ?", id).Error
	}

	otherHas, storeHas := make(chan struct{}), make(chan struct{})
	otherDone := make(chan error, 1)
	otherFinished := make(chan struct{})
	go func() {
		defer close(otherFinished)
		otherDone <- st.GormDB().Transaction(func(tx *gorm.DB) error {
			if err := tx.Exec("SET LOCAL deadlock_timeout = '60s'").Error; err != nil {
				return err
			}
			if err := touch(tx, a); err != nil {
				return err
			}
			close(otherHas)
			<-storeHas
			return touch(tx, b) // waits for the store's lock on b
		})
	}()

	runs := 0
	err = st.Transaction(context.Background(), func(tx *gorm.DB) error {
		runs++
		if runs > 1 {
			<-otherFinished // the winner commits before this run begins
		}
		// Detected while this one waits: the other has long been waiting.
		if err := tx.Exec("SET LOCAL deadlock_timeout = '500ms'").Error; err != nil {
			return err
		}
		if err := touch(tx, b); err != nil {
			return err
		}
		if runs == 1 {
			<-otherHas
			close(storeHas)
		}
		return touch(tx, a) // first run: a deadlock, and this one its victim
	})
	require.NoError(t, err)
	require.NoError(t, <-otherDone)
	require.Equal(t, 2, runs, "the aborted run ran again, once")
}
