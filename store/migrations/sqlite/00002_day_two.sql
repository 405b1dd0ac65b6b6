-- Retention, erasure and immediate revocation.

-- +goose Up
-- When a delivery became DELIVERED or FAILED: retention counts from here.
ALTER TABLE deliveries ADD COLUMN finished_at datetime;
UPDATE deliveries SET finished_at = COALESCE(delivered_at,
	(SELECT MAX(a.attempted_at) FROM attempts a WHERE a.delivery_id = deliveries.id), created_at)
	WHERE status <> 'PENDING';
CREATE INDEX ix_deliveries_finished ON deliveries(finished_at) WHERE status <> 'PENDING';
-- Events without deliveries are pruned by age.
CREATE INDEX ix_events_created ON events(created_at);
CREATE INDEX ix_tokens_owner ON tokens(tenant_id, user_id);
-- A counter bumped by every revocation and erasure, so that other processes
-- on the same database notice them at their next request.
CREATE TABLE revisions (id integer PRIMARY KEY CHECK (id = 1), seq integer NOT NULL);
INSERT INTO revisions (id, seq) VALUES (1, 0);
