-- Each webhook's due deliveries in order: a claim that must skip webhooks
-- (their share is taken) takes the others' oldest due rows from here, one
-- webhook at a time, instead of walking everybody's due rows past them.

-- +goose Up
CREATE INDEX ix_deliveries_webhook_due ON deliveries (webhook_id, next_attempt_at, id) WHERE status = 'PENDING';

-- +goose Down
DROP INDEX ix_deliveries_webhook_due;
