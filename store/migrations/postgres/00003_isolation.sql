-- Ordered webhooks, and the index that finds a webhook's oldest pending
-- delivery (the head an ordered webhook delivers next).

-- +goose Up
ALTER TABLE webhooks ADD COLUMN ordered boolean NOT NULL DEFAULT false;
CREATE INDEX ix_deliveries_pending ON deliveries(webhook_id, id) WHERE status = 'PENDING';

-- +goose Down
DROP INDEX ix_deliveries_pending;
ALTER TABLE webhooks DROP COLUMN ordered;
