-- Each webhook's count of PENDING deliveries (buffered_events), kept by
-- triggers on deliveries so that no statement can forget it: reading it is a
-- row, not a count of a backlog that may be millions long. SQLite has one
-- writer, so one row per webhook (shard 0).

-- +goose Up
CREATE TABLE webhook_backlog (
	webhook_id text NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
	shard integer NOT NULL,
	n integer NOT NULL,
	PRIMARY KEY (webhook_id, shard)
) WITHOUT ROWID;

-- +goose StatementBegin
CREATE TRIGGER deliveries_backlog_insert AFTER INSERT ON deliveries WHEN NEW.status = 'PENDING'
BEGIN
	INSERT INTO webhook_backlog (webhook_id, shard, n) VALUES (NEW.webhook_id, 0, 1)
	ON CONFLICT (webhook_id, shard) DO UPDATE SET n = n + 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER deliveries_backlog_update AFTER UPDATE OF status ON deliveries
WHEN (OLD.status = 'PENDING') <> (NEW.status = 'PENDING')
BEGIN
	INSERT INTO webhook_backlog (webhook_id, shard, n)
	VALUES (NEW.webhook_id, 0, CASE WHEN NEW.status = 'PENDING' THEN 1 ELSE -1 END)
	ON CONFLICT (webhook_id, shard) DO UPDATE SET n = n + excluded.n;
END;
-- +goose StatementEnd

-- A delivery deleted with its webhook finds the webhook's row gone: nothing
-- to count down.
-- +goose StatementBegin
CREATE TRIGGER deliveries_backlog_delete AFTER DELETE ON deliveries WHEN OLD.status = 'PENDING'
BEGIN
	UPDATE webhook_backlog SET n = n - 1 WHERE webhook_id = OLD.webhook_id AND shard = 0;
END;
-- +goose StatementEnd

INSERT INTO webhook_backlog (webhook_id, shard, n)
	SELECT webhook_id, 0, COUNT(*) FROM deliveries WHERE status = 'PENDING' GROUP BY webhook_id;

-- +goose Down
DROP TRIGGER deliveries_backlog_delete;
DROP TRIGGER deliveries_backlog_update;
DROP TRIGGER deliveries_backlog_insert;
DROP TABLE webhook_backlog;
