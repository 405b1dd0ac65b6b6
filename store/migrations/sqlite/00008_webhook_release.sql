-- An unpause releases the held deliveries a batch per transaction: while
-- some are still held, release_due_at is the due time they take (the
-- unpause's), so that any instance can finish the release after a crash.

-- +goose Up
ALTER TABLE webhooks ADD COLUMN release_due_at datetime;
CREATE INDEX ix_webhooks_releasing ON webhooks (id) WHERE release_due_at IS NOT NULL;

-- +goose Down
DROP INDEX ix_webhooks_releasing;
ALTER TABLE webhooks DROP COLUMN release_due_at;
