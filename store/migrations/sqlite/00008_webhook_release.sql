-- A pause holds, and an unpause releases, a webhook's pending deliveries a
-- batch per transaction. While an unpause's release is under way,
-- release_due_at is the due time the held deliveries take (the unpause's);
-- while a pause's hold is, holding is true. Either lets any instance finish
-- the work after a crash.

-- +goose Up
ALTER TABLE webhooks ADD COLUMN release_due_at datetime;
ALTER TABLE webhooks ADD COLUMN holding boolean NOT NULL DEFAULT FALSE;
CREATE INDEX ix_webhooks_releasing ON webhooks (id) WHERE release_due_at IS NOT NULL;
CREATE INDEX ix_webhooks_holding ON webhooks (id) WHERE holding;

-- +goose Down
DROP INDEX ix_webhooks_holding;
DROP INDEX ix_webhooks_releasing;
ALTER TABLE webhooks DROP COLUMN holding;
ALTER TABLE webhooks DROP COLUMN release_due_at;
